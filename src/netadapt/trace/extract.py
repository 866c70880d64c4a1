"""Extraction of a traced super-network: the same graph with smaller layers.

Every convolution, linear and per-channel layer (BatchNorm) is copied with the channels its
groups keep (:func:`netadapt.model.slicing.take_channels`, kernels centre-cropped by
``crop_kernel``: the functions whose masks the elastic forward applies); a removed residual
block is replaced by its input, a removed squeeze-excitation by its input map; a residual sum
of operands of different widths zero-pads the narrower (``fit_layout``).  The result is a
``torch.fx.GraphModule`` that needs neither netadapt nor the super-network to run.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import fx, nn

from netadapt.arch.space import Architecture
from netadapt.model.slicing import crop_kernel, fit_layout, layout_ranges, put_channels_, take_channels
from netadapt.trace.graph import ConvInfo, TracePlan

if TYPE_CHECKING:  # the super-network module imports this one
    from netadapt.trace.elastic import GraphSuperNet

__all__ = ["extract_graph", "implant_graph_"]

Ranges = tuple[tuple[int, int], ...]


def _ranges(plan: TracePlan, layout: tuple[int, ...], width: dict[int, int]) -> Ranges:
    return layout_ranges(tuple(plan.groups[g].size for g in layout), tuple(width[g] for g in layout))


def _removed(net: GraphSuperNet, arch: Architecture) -> tuple[dict[int, int], set[str], dict[str, str]]:
    """(width of every group, nodes gone, node -> the node that replaces it)."""
    plan: TracePlan = net.plan
    slots = net._tables.index
    w = net.group_widths(arch)
    width = {g: w[slots[g]] for g in plan.groups}
    dead: set[str] = set()
    replace: dict[str, str] = {}
    for block in plan.blocks:
        if all(width[g] == 0 for g in block.groups if not plan.groups[g].se):
            dead |= block.nodes
            replace[block.add] = block.fork
    for mul, (group, names) in plan.gates.items():
        if width[group] == 0 and mul not in dead:
            dead |= names
            replace[mul] = _gate_input(net, mul, names)
    return width, dead, replace


def _gate_input(net: GraphSuperNet, mul: str, names: frozenset[str]) -> str:
    node = next(n for n in net.model.graph.nodes if n.name == mul)
    return next(a.name for a in node.all_input_nodes if a.name not in names)


def _kernel(conv: ConvInfo, net: GraphSuperNet, arch: Architecture) -> int:
    layer = net.layer_of.get(conv.node)
    return arch.kernels[layer] if layer is not None else conv.kernel


def _parent(root: nn.Module, target: str) -> tuple[nn.Module, str]:
    """The module that holds ``target`` under ``root`` (created empty on the way) and its name."""
    *path, name = target.split(".")
    for part in path:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    return root, name


def _install(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, name = _parent(root, target)
    parent.add_module(name, module)


def _set(module: nn.Module, name: str, value: torch.Tensor) -> None:
    if name in module._parameters:
        old = module._parameters[name]
        module._parameters[name] = nn.Parameter(value.detach().clone(), requires_grad=old.requires_grad)
    else:
        module._buffers[name] = value.detach().clone()


def _shrink_conv(module: nn.Module, conv: ConvInfo, ins: Ranges, outs: Ranges, kernel: int) -> nn.Module:
    small = copy.deepcopy(module)
    if isinstance(module, nn.Linear):
        _set(small, "weight", take_channels(take_channels(module.weight, 0, outs), 1, ins))
        small.in_features, small.out_features = _count(ins), _count(outs)
    elif conv.kind == "grouped":
        weight = take_channels(module.weight, 0, ins)
        _set(small, "weight", crop_kernel(weight, kernel))
        small.in_channels = small.out_channels = _count(ins)
        small.groups = _count(ins) // conv.per_group
    else:
        _set(small, "weight", crop_kernel(take_channels(take_channels(module.weight, 0, outs), 1, ins), kernel))
        small.in_channels, small.out_channels = _count(ins), _count(outs)
    if module.bias is not None:
        _set(small, "bias", take_channels(module.bias, 0, ins if conv.kind == "grouped" else outs))
    if not isinstance(module, nn.Linear) and kernel != conv.kernel:
        small.kernel_size, small.padding = (kernel, kernel), (kernel // 2, kernel // 2)
    return small


def _shrink_channelwise(module: nn.Module, size: int, keep: Ranges) -> nn.Module:
    """A per-channel layer (BatchNorm, PReLU) keeping the channels ``keep`` of its ``size``."""
    small = copy.deepcopy(module)
    for sub in small.modules():
        for name, t in [*sub._parameters.items(), *sub._buffers.items()]:
            if t is not None and t.dim() == 1 and t.shape[0] == size:
                _set(sub, name, take_channels(t, 0, keep))
        for attr in ("num_features", "num_parameters"):
            if getattr(sub, attr, None) == size:
                setattr(sub, attr, _count(keep))
    return small


def _count(ranges: Ranges) -> int:
    return sum(b - a for a, b in ranges)


def extract_graph(net: GraphSuperNet, arch: Architecture) -> fx.GraphModule:
    """The compact ``fx.GraphModule`` of ``arch`` (see the module docstring)."""
    plan: TracePlan = net.plan
    gm: fx.GraphModule = net.model
    width, dead, replace = _removed(net, arch)
    convs = {c.node: c for c in plan.convs}
    root = nn.Module()
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for node in gm.graph.nodes:
        if node.name in dead:
            continue
        if node.name in replace:
            env[node.name] = env[replace[node.name]]
            continue
        info = plan.nodes[node.name]
        if node.op == "call_module":
            module = gm.get_submodule(node.target)
            if node.name in convs and convs[node.name].kind != "fixed":
                conv = convs[node.name]
                small = _shrink_conv(
                    module,
                    conv,
                    _ranges(plan, conv.in_layout, width),
                    _ranges(plan, conv.out_layout, width),
                    _kernel(conv, net, arch),
                )
            elif info.layout is not None and info.op.kind == "channelwise":
                size = sum(plan.groups[g].size for g in info.layout)
                small = _shrink_channelwise(module, size, _ranges(plan, info.layout, width))
            else:
                small = copy.deepcopy(module)
            _install(root, node.target, small)
        elif node.op == "get_attr":
            _install_attr(root, node.target, _get_attr(gm, node.target))
        if info.op.kind == "add" and info.layout is not None:
            env[node.name] = _padded_sum(graph, node, env, plan, width)
            continue
        env[node.name] = graph.node_copy(node, lambda n: env[n.name])
    graph.lint()
    compact = fx.GraphModule(root, graph, f"{type(gm).__name__}Compact")
    compact.train(net.training)
    compact.input_size = net.input_size
    compact.in_channels = net.in_channels
    return compact.to(net._max_filters.device)


def _get_attr(gm: fx.GraphModule, target: str) -> object:
    obj: object = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _install_attr(root: nn.Module, target: str, value: object) -> None:
    root, name = _parent(root, target)
    if isinstance(value, nn.Parameter):
        root.register_parameter(name, nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad))
    elif isinstance(value, torch.Tensor):
        root.register_buffer(name, value.detach().clone())
    elif isinstance(value, nn.Module):
        root.add_module(name, copy.deepcopy(value))
    else:
        setattr(root, name, copy.deepcopy(value))


def _padded_sum(graph: fx.Graph, node: fx.Node, env: dict[str, fx.Node], plan: TracePlan, width: dict[int, int]) -> fx.Node:
    """A residual sum whose operands keep different widths: the narrower parts zero-padded."""
    out = tuple(width[g] for g in plan.nodes[node.name].layout)

    def operand(a: object) -> object:
        if not isinstance(a, fx.Node):
            return a
        layout = plan.nodes[a.name].layout
        if layout is None:
            return env[a.name]
        own = tuple(width[g] for g in layout)
        return env[a.name] if own == out else graph.call_function(fit_layout, (env[a.name], own, out))

    args = tuple(operand(a) for a in node.args)
    kwargs = {k: operand(v) for k, v in node.kwargs.items()}
    return graph.create_node(node.op, node.target, args, kwargs, name=node.name)


def implant_graph_(net: GraphSuperNet, compact: fx.GraphModule, arch: Architecture) -> None:
    """Write ``compact``'s weights (extracted at ``arch``) into ``net``'s slices (the inverse of
    :func:`extract_graph`, through the same ranges)."""
    plan: TracePlan = net.plan
    gm: fx.GraphModule = net.model
    width, dead, _ = _removed(net, arch)
    convs = {c.node: c for c in plan.convs}
    with torch.no_grad():
        for node in gm.graph.nodes:
            if node.op != "call_module" or node.name in dead:
                continue
            big, small = gm.get_submodule(node.target), compact.get_submodule(node.target)
            info = plan.nodes[node.name]
            if node.name in convs and convs[node.name].kind != "fixed":
                conv = convs[node.name]
                ins = _ranges(plan, conv.in_layout, width)
                outs = _ranges(plan, conv.out_layout, width)
                kernel = _kernel(conv, net, arch)
                if isinstance(big, nn.Linear):
                    _put2(big.weight, small.weight, outs, ins)
                elif conv.kind == "grouped":
                    put_channels_(crop_kernel(big.weight, kernel), 0, ins, small.weight)
                else:
                    _put2(crop_kernel(big.weight, kernel), small.weight, outs, ins)
                if big.bias is not None:
                    put_channels_(big.bias, 0, ins if conv.kind == "grouped" else outs, small.bias)
            elif info.layout is not None and info.op.kind == "channelwise":
                size = sum(plan.groups[g].size for g in info.layout)
                keep = _ranges(plan, info.layout, width)
                for (_, t), (_, s) in zip(_tensors(big), _tensors(small), strict=True):
                    if t.dim() == 1 and t.shape[0] == size:
                        put_channels_(t, 0, keep, s)
                    elif t.shape == s.shape:
                        t.copy_(s)
            else:
                for (_, t), (_, s) in zip(_tensors(big), _tensors(small), strict=True):
                    t.copy_(s)


def _tensors(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*module.named_parameters(), *module.named_buffers()]


def _put2(big: torch.Tensor, small: torch.Tensor, outs: Ranges, ins: Ranges) -> None:
    offset = 0
    for a, b in outs:
        put_channels_(big.narrow(0, a, b - a), 1, ins, small.narrow(0, offset, b - a))
        offset += b - a
