"""Channel groups of a traced network: which channels must shrink together, and which cannot.

Every 2-D or 4-D feature map of the graph has a *layout*: the channel groups its channels belong
to, in order (one group, or several after a concatenation).  A group is one of:

* ``free`` — the filters of one or more convolutions (``producers``) whose widths the search
  chooses; several producers in one group are tied (a product of two maps, a depthwise
  convolution reading them).  Ordered dropout keeps a prefix of the group's channels.
* ``max`` — a residual sum of other groups.  Each operand keeps its own width and the narrower
  is zero-padded (as the zoo's residual blocks do), so the sum's width is the largest of its
  operands' widths: no tie is needed, and a sum with a fixed tensor does not fix the branch.
* ``fixed`` — channels nothing may remove: the network's input and output, what an unknown op,
  a reshape or a channel read touches (``reason`` says which).  Fixing a sum fixes its operands.

Convolutions whose output width is decided elsewhere (squeeze-excitation's expanding 1x1, a
convolution feeding a sum that is fixed) are ``followers`` of their group.  A residual block
``x + f(x)`` whose branch ``f`` owns its groups is *removable* (depth search): with all of them
at width 0 the branch contributes nothing and the block computes exactly its input.  A
squeeze-excitation gate ``x * gate(fc2(act(fc1(pool(x)))))`` makes ``fc1``'s group an ``se``
group whose width 0 removes the module (the gate is then 1).

:func:`analyze` runs over the graph once in topological order and returns a :class:`TracePlan`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

from torch import fx, nn
from torch.fx.passes.shape_prop import TensorMetadata

from netadapt.trace.ops import Op, classify

__all__ = ["Block", "ConvInfo", "Group", "NodeInfo", "TracePlan", "analyze", "where"]


@dataclass
class Group:
    """One channel group (see the module docstring)."""

    id: int
    size: int
    kind: str  # free | max | fixed
    producers: tuple[str, ...] = ()
    followers: tuple[str, ...] = ()
    operands: tuple[int, ...] = ()
    reason: str = ""
    divisor: int = 1
    se: bool = False
    block: int | None = None


@dataclass(frozen=True)
class NodeInfo:
    """A node's op and the layout of its output (``None``: not a 2-D/4-D feature map)."""

    name: str
    op: Op
    layout: tuple[int, ...] | None = None
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class ConvInfo:
    """A convolution or linear layer: where its weight's dimensions come from, and its cost shape.

    ``kind``: ``conv`` (groups=1), ``grouped`` (depthwise or grouped, in = out), ``linear``, or
    ``fixed`` (a layer the tracer cannot shrink, listed and costed as it is).  ``per_group``:
    inputs per filter of a grouped or fixed layer (1 for depthwise).  Its MACs are
    ``filters × inputs × area × out_pixels``.
    """

    node: str
    target: str
    kind: str
    in_layout: tuple[int, ...]
    out_layout: tuple[int, ...]
    kernel: int
    area: int  # kernel height × width
    stride: int
    in_size: int  # input resolution (1 for a linear layer)
    out_pixels: int
    per_group: int
    bias: bool
    padding_ok: bool  # padding k//2, no dilation: its kernel may be centre-cropped


@dataclass(frozen=True)
class Block:
    """A removable residual block: ``add = fork + branch`` with the branch's own groups."""

    id: int
    add: str
    fork: str
    nodes: frozenset[str]
    groups: tuple[int, ...]


@dataclass
class TracePlan:
    """Everything the tracer learned about one graph."""

    nodes: dict[str, NodeInfo]
    groups: dict[int, Group]
    convs: list[ConvInfo]
    blocks: list[Block] = field(default_factory=list)
    gates: dict[str, tuple[int, frozenset[str]]] = field(default_factory=dict)  # mul -> (se group, its nodes)
    unknown: dict[str, str] = field(default_factory=dict)  # node -> why its channels are fixed

    def order(self) -> list[int]:
        """Group ids in an order where every sum comes after its operands."""
        done: list[int] = []
        seen: set[int] = set()

        def visit(g: int) -> None:
            if g in seen:
                return
            seen.add(g)
            for o in self.groups[g].operands:
                visit(o)
            done.append(g)

        for g in sorted(self.groups):
            visit(g)
        return done


# -- union-find over channel sets --------------------------------------------------------------
class _Sets:
    def __init__(self) -> None:
        self.parent: list[int] = []
        self.size: list[int] = []
        self.producers: list[list[str]] = []
        self.followers: list[list[str]] = []
        self.operands: list[tuple[int, ...]] = []
        self.reason: list[str] = []
        self.divisor: list[int] = []

    def new(self, size: int, *, producer: str | None = None, operands: tuple[int, ...] = (), reason: str = "") -> int:
        self.parent.append(len(self.parent))
        self.size.append(size)
        self.producers.append([producer] if producer else [])
        self.followers.append([])
        self.operands.append(operands)
        self.reason.append(reason)
        self.divisor.append(1)
        return len(self.parent) - 1

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        root, other = min(ra, rb), max(ra, rb)
        self.parent[other] = root
        self.producers[root] += self.producers[other]
        self.followers[root] += self.followers[other]
        if self.operands[root] and self.operands[other]:
            self.fix(root, "two residual sums multiplied together")
        self.operands[root] = self.operands[root] or self.operands[other]
        self.reason[root] = self.reason[root] or self.reason[other]
        self.divisor[root] = math.lcm(self.divisor[root], self.divisor[other])
        return root

    def fix(self, i: int, reason: str) -> None:
        r = self.find(i)
        if not self.reason[r]:
            self.reason[r] = reason

    def demote(self, i: int) -> None:
        """The producers of ``i``'s set follow a width decided elsewhere."""
        r = self.find(i)
        self.followers[r] += self.producers[r]
        self.producers[r] = []


def _meta(node: fx.Node) -> TensorMetadata | None:
    meta = node.meta.get("tensor_meta")
    return meta if isinstance(meta, TensorMetadata) else None


def where(node: fx.Node) -> str:
    """Where a node is, for a reader: a module's path, or an operation and the module around it."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    return f"{node.name} in {next(reversed(stack))}" if stack else node.name


def _dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


class _Analysis:
    """One pass over the graph in topological order (see :func:`analyze`)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.sets = _Sets()
        self.layout: dict[str, tuple[int, ...]] = {}
        self.ops: dict[str, Op] = {}
        self.convs: list[tuple[fx.Node, str]] = []
        self.adds: list[fx.Node] = []
        self.gate_candidates: list[tuple[fx.Node, fx.Node, fx.Node]] = []  # (mul, x, gate)
        self.unknown: dict[str, str] = {}

    # -- helpers ---------------------------------------------------------------------------
    def sizes(self, node: fx.Node) -> tuple[int, ...]:
        return tuple(self.sets.size[self.sets.find(s)] for s in self.layout[node.name])

    def has_layout(self, node: object) -> bool:
        return isinstance(node, fx.Node) and node.name in self.layout

    def fix_node(self, node: fx.Node, reason: str) -> None:
        for s in self.layout.get(node.name, ()):
            self.sets.fix(s, reason)

    def fresh(self, node: fx.Node, reason: str) -> None:
        """A new fixed group for a 2-D/4-D output of an op the tracer does not see through."""
        meta = _meta(node)
        if meta is not None and len(meta.shape) in (2, 4) and node.op != "get_attr":
            self.layout[node.name] = (self.sets.new(int(meta.shape[1]), reason=reason),)

    def unknown_op(self, node: fx.Node, reason: str) -> None:
        self.unknown[node.name] = reason
        self.ops[node.name] = Op("unknown", reason=reason)
        for arg in node.all_input_nodes:
            self.fix_node(arg, f"{reason} ({where(node)})")
        self.fresh(node, f"output of {reason} ({where(node)})")
        module = self.modules.get(node.target) if node.op == "call_module" else None
        x = node.args[0] if node.args else None
        if isinstance(module, (nn.Conv2d, nn.Linear)) and self.has_layout(x) and node.name in self.layout:
            self.convs.append((node, "fixed"))  # listed and costed, never shrunk

    def touches_channels(self, const: object, ndim: int) -> bool:
        """Whether a constant operand broadcast against a (B, C, ...) map varies along C."""
        if not isinstance(const, fx.Node):
            return False
        meta = _meta(const)
        if meta is None:
            return False
        shape = tuple(meta.shape)
        return len(shape) >= ndim - 1 and shape[len(shape) - (ndim - 1)] > 1

    # -- the pass --------------------------------------------------------------------------
    def run(self) -> None:
        calls: dict[str, int] = {}
        for node in self.gm.graph.nodes:
            if node.op == "call_module":
                calls[node.target] = calls.get(node.target, 0) + 1
        for node in self.gm.graph.nodes:
            op = classify(node, self.modules)
            if node.op == "call_module" and calls[node.target] > 1 and any(True for _ in self.modules[node.target].parameters()):
                op = Op("unknown", reason=f"module {node.target} with weights called {calls[node.target]} times")
            self.ops[node.name] = op
            handler = getattr(self, f"on_{op.kind}")
            handler(node, op)

    def on_input(self, node: fx.Node, op: Op) -> None:
        self.fresh(node, "network input")

    def on_constant(self, node: fx.Node, op: Op) -> None:
        pass  # parameters used directly: constants (checked where they meet a feature map)

    def on_output(self, node: fx.Node, op: Op) -> None:
        for arg in node.all_input_nodes:
            self.fix_node(arg, "network output")

    def on_unknown(self, node: fx.Node, op: Op) -> None:
        self.unknown_op(node, op.reason)

    def on_shape(self, node: fx.Node, op: Op) -> None:
        if node.op == "call_method" and node.target == "size":
            x = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        elif node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
            x, dim = node.args[0], None
        else:
            return
        if not self.has_layout(x):
            return
        ndim = len(_meta(x).shape)
        if dim is None:  # the whole size: fine when only other dimensions are read from it
            reads = [u.args[1] for u in node.users if u.target is operator.getitem]
            if len(reads) == len(node.users) and all(isinstance(d, int) and _dim(d, ndim) != 1 for d in reads):
                return
        elif isinstance(dim, int) and _dim(dim, ndim) != 1:
            return
        self.fix_node(x, f"its channel count is read ({where(node)})")

    def on_conv(self, node: fx.Node, op: Op) -> None:
        module = self.modules[node.target]
        x = node.args[0] if node.args else None
        want = 2 if isinstance(module, nn.Linear) else 4
        if not self.has_layout(x) or len(_meta(x).shape) != want:
            self.unknown_op(node, f"{type(module).__name__} on a {len(_meta(x).shape) if _meta(x) else 0}-D input")
            return
        filters = module.out_features if isinstance(module, nn.Linear) else module.out_channels
        self.layout[node.name] = (self.sets.new(filters, producer=node.name),)
        self.convs.append((node, "linear" if isinstance(module, nn.Linear) else "conv"))

    def on_grouped(self, node: fx.Node, op: Op) -> None:
        module = self.modules[node.target]
        x = node.args[0]
        if not self.has_layout(x):
            self.unknown_op(node, "grouped convolution of a constant")
            return
        per_group = module.in_channels // module.groups
        if any(size % per_group for size in self.sizes(x)):
            self.unknown_op(node, f"grouped convolution across concatenated parts ({module.groups} groups)")
            return
        for s in self.layout[x.name]:
            r = self.sets.find(s)
            self.sets.divisor[r] = math.lcm(self.sets.divisor[r], per_group)
        self.layout[node.name] = self.layout[x.name]
        self.convs.append((node, "grouped"))

    def _first(self, node: fx.Node) -> fx.Node | None:
        inputs = [a for a in node.all_input_nodes if self.has_layout(a)]
        return inputs[0] if len(inputs) == 1 else None

    def _same_channels(self, node: fx.Node, x: fx.Node) -> bool:
        out, inp = _meta(node), _meta(x)
        return out is not None and len(out.shape) == len(inp.shape) and out.shape[1] == inp.shape[1]

    def on_channelwise(self, node: fx.Node, op: Op) -> None:
        x = self._first(node)
        if x is None or not self._same_channels(node, x) or node.args[0] is not x:
            if any(self.has_layout(a) for a in node.all_input_nodes):
                self.unknown_op(node, f"{node.op.replace('call_', '')} {getattr(node.target, '__name__', node.target)}")
            else:
                self.fresh(node, f"computed from constants ({where(node)})")
            return
        self.layout[node.name] = self.layout[x.name]

    def on_reduce(self, node: fx.Node, op: Op) -> None:
        x = node.args[0]
        if not self.has_layout(x):
            self.fresh(node, f"computed from constants ({where(node)})")
            return
        ndim = len(_meta(x).shape)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
        out = _meta(node)
        if ndim == 4 and dims and {_dim(d, 4) for d in dims} == {2, 3} and out is not None and out.shape[1] == _meta(x).shape[1]:
            self.layout[node.name] = self.layout[x.name]
        else:
            self.unknown_op(node, f"reduction over dimensions {dims}")

    def on_flatten(self, node: fx.Node, op: Op) -> None:
        x = node.args[0]
        if not self.has_layout(x):
            self.fresh(node, f"computed from constants ({where(node)})")
            return
        shape, out = tuple(_meta(x).shape), _meta(node)
        # (B, C, 1, 1) -> (B, C), or (B, C) unchanged: the channels stay channels
        if out is not None and tuple(out.shape) == shape[:2] and all(s == 1 for s in shape[2:]):
            self.layout[node.name] = self.layout[x.name]
        else:
            self.unknown_op(node, "reshape of a feature map (widths fixed by a reshape)")

    def _binary(self, node: fx.Node, op: Op) -> tuple[list[fx.Node], list[object]] | None:
        """(feature-map operands, other operands); ``None`` after handling a constant-only op."""
        operands = [a for a in (*node.args, *node.kwargs.values()) if a is not None]
        maps = [a for a in operands if self.has_layout(a)]
        others = [a for a in operands if not self.has_layout(a)]
        if not maps:
            self.fresh(node, f"computed from constants ({where(node)})")
            return None
        ndim = len(_meta(node).shape) if _meta(node) else 0
        if any(self.touches_channels(c, ndim) for c in others):
            self.unknown_op(node, f"{getattr(node.target, '__name__', node.target)} with a per-channel constant")
            return None
        return maps, others

    def _channelwise_with_constant(self, node: fx.Node, x: fx.Node) -> None:
        self.layout[node.name] = self.layout[x.name]
        self.ops[node.name] = Op("channelwise", zero=self.ops[node.name].kind != "add")

    def _broadcast_channel(self, node: fx.Node, maps: list[fx.Node]) -> bool:
        """A (B, 1, ...) operand broadcast over the channels: fixed; the result keeps the other's."""
        a, b = maps
        ca, cb = _meta(a).shape[1], _meta(b).shape[1]
        if ca == cb:
            return False
        if 1 not in (ca, cb):
            self.unknown_op(node, "arithmetic on maps of different widths")
            return True
        one, other = (a, b) if ca == 1 else (b, a)
        self.fix_node(one, f"a one-channel map broadcast over channels ({where(node)})")
        self.layout[node.name] = self.layout[other.name]
        return True

    def _two_maps(self, node: fx.Node, op: Op, what: str) -> tuple[fx.Node, fx.Node] | None:
        """The two feature-map operands of an elementwise ``what`` (sum, product) with the same
        channel layout; ``None`` when the node was handled otherwise (a map with a constant, a
        one-channel broadcast) or is unknown."""
        split = self._binary(node, op)
        if split is None:
            return None
        maps, _ = split
        if len(maps) == 1:
            self._channelwise_with_constant(node, maps[0])
            return None
        if len(maps) != 2 or self._broadcast_channel(node, maps):
            if len(maps) != 2:
                self.unknown_op(node, f"{what} of more than two maps")
            return None
        a, b = maps
        if self.sizes(a) != self.sizes(b):
            self.unknown_op(node, f"{what} of differently concatenated maps")
            return None
        return a, b

    def on_add(self, node: fx.Node, op: Op) -> None:
        pair = self._two_maps(node, op, "sum")
        if pair is None:
            return
        a, b = pair
        layout = []
        for sa, sb in zip(self.layout[a.name], self.layout[b.name], strict=True):
            ra, rb = self.sets.find(sa), self.sets.find(sb)
            layout.append(ra if ra == rb else self.sets.new(self.sets.size[ra], operands=(ra, rb)))
        self.layout[node.name] = tuple(layout)
        self.adds.append(node)

    def on_mul(self, node: fx.Node, op: Op) -> None:
        pair = self._two_maps(node, op, "product")
        if pair is None:
            return
        a, b = pair
        pixels = [math.prod(_meta(m).shape[2:]) for m in (a, b)]
        if len(_meta(a).shape) == 4 and min(pixels) == 1 < max(pixels):
            # A per-channel gate (squeeze-excitation): its last convolution follows the map's width.
            x, gate = (a, b) if pixels[1] == 1 else (b, a)
            for s in self.layout[gate.name]:
                self.sets.demote(s)
            self.gate_candidates.append((node, x, gate))
        else:
            x = a
        for sa, sb in zip(self.layout[a.name], self.layout[b.name], strict=True):
            self.sets.union(sa, sb)
        self.layout[node.name] = self.layout[x.name]

    def on_div(self, node: fx.Node, op: Op) -> None:
        split = self._binary(node, op)
        if split is None:
            return
        maps, _ = split
        if len(maps) == 1 and node.args[0] is maps[0]:
            self._channelwise_with_constant(node, maps[0])
        else:
            self.unknown_op(node, "division by a feature map")

    def on_cat(self, node: fx.Node, op: Op) -> None:
        parts = node.args[0] if node.args else node.kwargs.get("tensors")
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        out = _meta(node)
        parts = list(parts) if isinstance(parts, (list, tuple)) else []
        if not parts or not all(self.has_layout(p) for p in parts) or out is None:
            self.unknown_op(node, "concatenation with constants")
            return
        if _dim(dim, len(out.shape)) == 1:
            self.layout[node.name] = tuple(s for p in parts for s in self.layout[p.name])
            return
        layouts = {tuple(self.sets.find(s) for s in self.layout[p.name]) for p in parts}
        if len(layouts) == 1:
            self.layout[node.name] = self.layout[parts[0].name]
        else:
            self.unknown_op(node, f"concatenation along dimension {dim}")


def analyze(gm: fx.GraphModule, *, removal: bool = True) -> TracePlan:
    """Channel groups, convolutions, removable blocks and squeeze-excitation gates of ``gm``,
    whose nodes carry ``ShapeProp`` metadata."""
    a = _Analysis(gm)
    a.run()
    sets = a.sets
    groups = _resolve(sets)
    find = sets.find
    nodes: dict[str, NodeInfo] = {}
    for node in gm.graph.nodes:
        layout = a.layout.get(node.name)
        meta = _meta(node)
        nodes[node.name] = NodeInfo(
            node.name,
            a.ops[node.name],
            None if layout is None else tuple(find(s) for s in layout),
            tuple(meta.shape) if meta is not None else (),
        )
    convs = [_conv_info(node, kind, nodes, a.modules[node.target]) for node, kind in a.convs]
    plan = TracePlan(nodes, groups, convs, unknown=a.unknown)
    from netadapt.trace.patterns import find_blocks, find_gates  # they read the plan built here

    find_gates(plan, a.gate_candidates)
    if removal:
        find_blocks(plan, gm)
    return plan


def _resolve(sets: _Sets) -> dict[int, Group]:
    """Turn the union-find sets into :class:`Group` values (fixing what a fixed sum needs)."""
    roots = sorted({sets.find(i) for i in range(len(sets.parent))})
    operands = {r: tuple(dict.fromkeys(sets.find(o) for o in sets.operands[r])) for r in roots}
    reason = {r: sets.reason[r] for r in roots}
    divisor = {r: sets.divisor[r] for r in roots}
    # A sum whose operands reach itself (a product of a sum with one of its terms) is fixed.
    for r in roots:
        stack, seen = list(operands[r]), set()
        while stack:
            o = stack.pop()
            if o == r:
                reason[r] = reason[r] or "a residual sum tied to one of its own terms"
                break
            if o not in seen:
                seen.add(o)
                stack.extend(operands[o])
    changed = True
    while changed:
        changed = False
        for r in roots:
            for o in operands[r]:
                if reason[r] and not reason[o]:
                    reason[o] = reason[r]  # a fixed sum needs every term at full width
                    changed = True
                d = math.lcm(divisor[o], divisor[r])
                if d != divisor[o]:
                    divisor[o] = d
                    changed = True
    groups = {}
    for r in roots:
        producers, followers = list(sets.producers[r]), list(sets.followers[r])
        size = sets.size[r]
        why = reason[r]
        if not why and size % divisor[r]:
            why = f"{size} channels are not a multiple of the group size {divisor[r]}"
        if not why and producers and size < 2:
            why = "a single channel"
        if why:
            kind = "fixed"
        elif operands[r]:
            kind = "max"
        elif producers:
            kind = "free"
        else:
            kind, why = "fixed", "no convolution decides its width"
        if kind != "free":
            followers, producers = producers + followers, []
        groups[r] = Group(
            r, size, kind, tuple(producers), tuple(followers), operands[r] if kind == "max" else (), why, divisor[r]
        )
    return groups


def _conv_info(node: fx.Node, kind: str, nodes: dict[str, NodeInfo], module: nn.Module) -> ConvInfo:
    x = node.args[0]
    layouts = (nodes[x.name].layout, nodes[node.name].layout)
    if isinstance(module, nn.Linear):
        per = module.in_features if kind == "fixed" else 1
        return ConvInfo(node.name, node.target, kind, *layouts, 1, 1, 1, 1, 1, per, module.bias is not None, False)
    kh, kw = module.kernel_size
    square = kh == kw and kh % 2 == 1
    padding_ok = (
        square
        and module.padding == (kh // 2, kh // 2)
        and module.dilation == (1, 1)
        and module.padding_mode == "zeros"
        and type(module).forward is nn.Conv2d.forward
    )
    return ConvInfo(
        node.name, node.target, kind, *layouts, kh, kh * kw, module.stride[0], nodes[x.name].shape[-1],
        math.prod(nodes[node.name].shape[2:]), module.in_channels // module.groups,
        module.bias is not None, padding_ok and kind != "fixed",
    )  # fmt: skip
