"""The table of a traced network: which layers the search may shrink, which are fixed and why."""

from __future__ import annotations

from netadapt.arch.space import Architecture
from netadapt.trace.elastic import GraphSuperNet
from netadapt.trace.graph import where

__all__ = ["COLUMNS", "coverage", "describe_traced"]

COLUMNS = ("layer", "type", "kernel", "stride", "filters", "status", "choices", "tie", "block", "macs", "why")


def _type(net: GraphSuperNet, conv) -> str:
    if conv.kind == "fixed":
        module = net.model.get_submodule(conv.target)
        groups = getattr(module, "groups", 1)
        return "linear" if not hasattr(module, "groups") else ("conv" if groups == 1 else f"grouped/{conv.per_group}")
    if conv.kind == "linear":
        return "linear"
    if conv.kind == "grouped":
        return "depthwise" if conv.per_group == 1 else f"grouped/{conv.per_group}"
    return "conv"


def _status(net: GraphSuperNet, conv) -> tuple[str, str]:
    """(searchable | follows | fixed, why)."""
    plan = net.plan
    if conv.node in net.layer_of:
        return "searchable", ""
    if conv.kind == "fixed":
        return "fixed", plan.unknown[conv.node]
    layout = conv.in_layout if conv.kind == "grouped" else conv.out_layout
    groups = [plan.groups[g] for g in layout]
    fixed = [g for g in groups if g.kind == "fixed"]
    if fixed and len(fixed) == len(groups):
        return "fixed", fixed[0].reason
    if any(g.kind == "max" for g in groups):
        return "follows", "width of a residual sum (the largest of its terms)"
    if len(groups) > 1:
        return "follows", "widths of the concatenated maps it reads"
    producers = [p for g in groups for p in g.producers]
    target = next((n for n in (c.target for c in plan.convs if c.node in producers)), "another layer")
    return "follows", f"width of {target}"


def coverage(net: GraphSuperNet) -> tuple[int, int]:
    """(convolutions whose filters vary with the architecture, all convolutions)."""
    convs = [c for c in net.plan.convs if _type(net, c) != "linear"]
    return sum(1 for c in convs if _status(net, c)[0] != "fixed"), len(convs)


def describe_traced(net: GraphSuperNet, arch: Architecture | None = None) -> dict:
    """MACs, parameters and one row per convolution and linear layer of ``arch`` (default: the
    full network), with each layer's status, plus the operations that fixed channels."""
    arch = net.space.full() if arch is None else net.space.validate(arch)
    costs = {c.name: c for c in net.costs(arch)}
    rows = []
    for conv in net.plan.convs:
        status, why = _status(net, conv)
        layer = net.space.layers[net.layer_of[conv.node]] if conv.node in net.layer_of else None
        cost = costs[conv.target]
        rows.append(
            {
                "layer": conv.target,
                "type": "se" if layer is not None and layer.kind == "se" else _type(net, conv),
                "kernel": cost.kernel,
                "stride": conv.stride,
                "filters": cost.filters,
                "status": status,
                "choices": len(layer.widths) * len(layer.kernels) if layer is not None else "-",
                "tie": layer.tie if layer is not None and layer.tie is not None else "-",
                "block": layer.block if layer is not None and layer.block is not None else "-",
                "macs": cost.macs,
                "why": why or "-",
            }
        )
    searchable, total = coverage(net)
    nodes = {n.name: n for n in net.model.graph.nodes}
    return {
        "model": net.name,
        "input_size": net.input_size,
        "num_classes": net.num_classes,
        "macs": net.macs(arch),
        "params": sum(c.params for c in costs.values()),
        "searchable_layers": len(net.space),
        "searchable_convs": searchable,
        "convs": total,
        "removable_blocks": len(net.plan.blocks),
        "architecture": arch.to_dict(net.space),
        "layers": rows,
        "fixed_ops": [{"node": where(nodes[n]), "why": why} for n, why in net.plan.unknown.items()],
    }
