"""Patterns over the channel groups: squeeze-excitation gates and removable residual blocks.

A gate ``x * gate(fc2(act(fc1(pool(x)))))`` whose ``fc1`` owns its group makes that group an
``se`` group (width 0 removes the module: its scale is 1).  A residual sum ``x + f(x)`` whose
branch ``f`` owns every group it computes is a removable block (depth search): with all those
groups at width 0 it computes exactly ``x``.  Nested blocks are left to the innermost.
"""

from __future__ import annotations

from torch import fx

from netadapt.trace.graph import Block, TracePlan

__all__ = ["find_blocks", "find_gates"]


def _chain_back(node: fx.Node, plan: TracePlan, stop: set[str]) -> tuple[fx.Node | None, list[fx.Node]]:
    """Walk back through channelwise ops from ``node`` to the first node in ``stop`` kinds."""
    path = []
    while True:
        op = plan.nodes[node.name].op
        if op.kind in stop:
            return node, path
        if op.kind not in ("channelwise", "reduce", "flatten") or not node.args or not isinstance(node.args[0], fx.Node):
            return None, path
        path.append(node)
        node = node.args[0]


def _walk_to(node: fx.Node, target: fx.Node, plan: TracePlan) -> list[fx.Node]:
    """The channelwise ops (a pooling among them) between ``target`` and ``node``; empty if none."""
    path = []
    while node is not target:
        if plan.nodes[node.name].op.kind not in ("channelwise", "reduce", "flatten") or not isinstance(node.args[0], fx.Node):
            return []
        path.append(node)
        node = node.args[0]
    return path


def find_gates(plan: TracePlan, candidates: list[tuple[fx.Node, fx.Node, fx.Node]]) -> None:
    """Squeeze-excitation gates: ``x * gate(fc2(act(fc1(pool(x)))))`` with ``fc1`` owning its group."""
    for mul, x, gate in candidates:
        fc2, path2 = _chain_back(gate, plan, {"conv"})
        if fc2 is None:
            continue
        fc1, path1 = _chain_back(fc2.args[0], plan, {"conv"})
        if fc1 is None:
            continue
        path0 = _walk_to(fc1.args[0], x, plan)
        if not path0:
            continue
        chain = [*path0, fc1, *path1, fc2, *path2]
        names = {n.name for n in chain}
        if any(u.name not in names and u is not mul for n in chain for u in n.users):
            continue  # part of the gate is used elsewhere
        group = plan.groups[plan.nodes[fc1.name].layout[0]]
        if group.kind != "free" or group.producers != (fc1.name,):
            continue
        if any(plan.nodes[n].layout is not None and group.id in plan.nodes[n].layout for n in plan.nodes if n not in names):
            continue
        group.se = True
        plan.gates[mul.name] = (group.id, frozenset(names))


def find_blocks(plan: TracePlan, gm: fx.GraphModule) -> None:
    """Removable residual blocks (see the module docstring); nested ones are left fixed in depth."""
    uses: dict[int, set[str]] = {}
    for info in plan.nodes.values():
        for g in info.layout or ():
            uses.setdefault(g, set()).add(info.name)
    claimed: set[str] = set()
    graph_nodes = {n.name: n for n in gm.graph.nodes}
    for add in (n for n in gm.graph.nodes if n.name in plan.nodes and plan.nodes[n.name].op.kind == "add"):
        maps = [a for a in add.all_input_nodes if plan.nodes[a.name].layout is not None]
        if len(maps) != 2 or plan.nodes[maps[0].name].shape != plan.nodes[maps[1].name].shape:
            continue
        for fork, branch in ((maps[0], maps[1]), (maps[1], maps[0])):
            nodes = None
            for source in _shortcut_sources(fork, plan):
                nodes = _branch(branch, source)
                if nodes is not None:
                    break
            if nodes is None or nodes & claimed:
                continue
            if any(u.name not in nodes and u is not add for n in nodes for u in graph_nodes[n].users):
                continue
            local = {g for n in nodes for g in plan.nodes[n].layout or () if uses[g] <= nodes}
            if not all(g in local for g in plan.nodes[branch.name].layout):
                continue
            convs = [c for c in plan.convs if c.node in nodes]
            if not convs or any(g not in local for c in convs for g in c.out_layout):
                continue
            if any(plan.groups[g].kind != "free" for g in local):
                continue
            if not any(not plan.groups[g].se for g in local):
                continue
            block = Block(len(plan.blocks), add.name, fork.name, frozenset(nodes), tuple(sorted(local)))
            for g in local:
                plan.groups[g].block = block.id
            plan.blocks.append(block)
            claimed |= nodes
            break


def _shortcut_sources(fork: fx.Node, plan: TracePlan) -> list[fx.Node]:
    """The shortcut operand and what it is computed from through channelwise ops (timm's
    ``nn.Identity`` shortcut, a drop path): the branch may start from any of them."""
    sources = [fork]
    node = fork
    while plan.nodes[node.name].op.kind == "channelwise" and node.args and isinstance(node.args[0], fx.Node):
        node = node.args[0]
        sources.append(node)
    return sources


def _branch(branch: fx.Node, fork: fx.Node) -> set[str] | None:
    """Nodes computing ``branch`` from ``fork`` (and constants); ``None`` if it reads anything else."""
    nodes: set[str] = set()
    stack = [branch]
    while stack:
        n = stack.pop()
        if n is fork or n.name in nodes or n.op == "get_attr":
            continue
        if n.op == "placeholder":
            return None
        nodes.add(n.name)
        stack.extend(n.all_input_nodes)
    return nodes
