"""Per-layer tables of an architecture in the columns of the paper's Table 8."""

from __future__ import annotations

from torch import nn

from netadapt.arch.space import Architecture
from netadapt.model.blocks import ClassifierHead, ConvBlock, DecoderStage, InvertedResidual, Sequential, chosen_se
from netadapt.model.layers import ArchView, ElasticConv
from netadapt.model.supernet import SuperNet

__all__ = ["COLUMNS", "describe", "format_table"]

COLUMNS = ("index", "type", "T", "kernel", "stride", "bn", "act", "exp", "dw", "pw", "se", "macs", "params")
_ACT_NAMES = {nn.ReLU: "RE", nn.ReLU6: "RE6", nn.Hardswish: "HS"}


def _act(layer: ElasticConv) -> str:
    if layer.act_layer is None:
        return "-"
    cls = getattr(layer.act_layer, "func", layer.act_layer)
    return _ACT_NAMES.get(cls, cls.__name__)


def _t(layer: ElasticConv) -> str | int:
    return "inf" if layer.bypass is None else layer.bypass


def describe(supernet: SuperNet, arch: Architecture | None = None) -> dict:
    """MACs, parameters and one row per layer or block of ``arch`` (default: the full network).

    Rows follow the paper's Tables 8–10: an inverted-residual block is one row with its
    expansion (Exp), depthwise (DW), projection (PW) and squeeze-excitation (SE) widths; a plain
    convolution puts its filters under Exp; depthwise-separable pairs and decoder stages get one
    row per layer.  Widths are the filters actually computing (0 = bypassed or removed).  A traced
    network gets :func:`netadapt.trace.report.describe_traced`'s table instead.
    """
    from netadapt.trace.elastic import GraphSuperNet  # the trace package builds on this one

    if isinstance(supernet, GraphSuperNet):
        from netadapt.trace.report import describe_traced

        return describe_traced(supernet, arch)
    arch = supernet.space.full() if arch is None else supernet.space.validate(arch)
    view = ArchView(arch.filters, arch.kernels)
    costs = {c.name: c for c in supernet.costs(arch)}
    rows: list[dict] = []

    def row(kind: str, layer: ElasticConv | None, **widths: object) -> dict:
        r: dict = {c: "-" for c in COLUMNS}
        r.update(index=len(rows) + 1, type=kind)
        if layer is not None:
            cost = costs[layer.name]
            r.update(T=_t(layer), kernel=cost.kernel if cost.filters else 0, stride=layer.stride,
                     bn="yes" if layer.norm_layer is not None else "-", act=_act(layer),
                     macs=cost.macs, params=cost.params)  # fmt: skip
        r.update(widths)
        rows.append(r)
        return r

    def f(layer: ElasticConv) -> int:
        return costs[layer.name].filters

    has_se = any(isinstance(b, InvertedResidual) and b.se is not None for b in supernet.blocks)
    block_type = "mnv3 block" if has_se else "mnv2 block"
    for block in supernet.blocks:
        if isinstance(block, ConvBlock):
            row("conv", block.conv, exp=f(block.conv))
        elif isinstance(block, Sequential):
            for layer in block.layers:
                row("dw" if layer.depthwise else "pw", layer, **{"dw" if layer.depthwise else "pw": f(layer)})
        elif isinstance(block, InvertedResidual):
            r = row(block_type, block.depthwise)
            layers = [m for m in (block.expand, block.project) if m is not None]
            r.update(
                exp=f(block.expand) if block.expand is not None else "-",
                dw=f(block.depthwise),
                pw=f(block.project),
                se=chosen_se(block.se, view) if block.se is not None else "-",
                T=_t(block.project),
                act=_act(block.depthwise),
                macs=sum(costs[m.name].macs for m in [*layers, block.depthwise])
                + (costs[block.se.name].macs if block.se is not None else 0),
                params=sum(costs[m.name].params for m in [*layers, block.depthwise])
                + (costs[block.se.name].params if block.se is not None else 0),
            )
        elif isinstance(block, DecoderStage):
            row("dw", block.depthwise, dw=f(block.depthwise))
            row("pw", block.pointwise, pw=f(block.pointwise))
            row("upsample", None)
        elif isinstance(block, ClassifierHead):
            row("global avg pool", None)
            if block.hidden is not None:
                row("conv", block.hidden, exp=f(block.hidden))
            linear = costs["head.classifier"]
            row("fc", None, kernel=1, stride=1, exp=linear.filters, macs=linear.macs, params=linear.params)
    total = list(costs.values())
    return {
        "model": supernet.name,
        "input_size": supernet.input_size,
        "num_classes": supernet.num_classes,
        "macs": sum(c.macs for c in total),
        "params": sum(c.params for c in total),
        "searchable_layers": len(supernet.space),
        "architecture": arch.to_dict(supernet.space),
        "layers": rows,
    }


def format_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(c) for c in columns]] + [[_fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, int) and value >= 100_000:
        return f"{value / 1e6:.2f}M"
    return str(value)
