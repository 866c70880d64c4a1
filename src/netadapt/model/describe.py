"""Per-layer tables of an architecture in the columns of the paper's Table 8."""

from __future__ import annotations

from torch import nn

from netadapt.arch.space import Architecture
from netadapt.model.blocks import ClassifierHead, ConvBlock, DecoderStage, InvertedResidual, Sequential, chosen_se
from netadapt.model.layers import ArchView, ElasticConv
from netadapt.model.supernet import SuperNet

__all__ = ["COLUMNS", "cell", "describe", "format_table"]

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

    Where that is fewer than the architecture keeps -- a depthwise layer computes one filter per
    input channel, so it computes at most its input's width -- the row's ``chosen`` mapping holds
    the architecture's number for that column, and ``notes`` (one sentence per such layer) says
    why the two differ; :func:`format_table` marks the cell with ``*``.
    """
    if not isinstance(supernet, SuperNet):  # a traced GraphSuperNet (netadapt.trace builds on this package)
        return supernet.describe(arch)
    arch = supernet.space.full() if arch is None else supernet.space.validate(arch)
    table = _Table(supernet, arch)
    has_se = any(isinstance(b, InvertedResidual) and b.se is not None for b in supernet.blocks)
    block_type = "mnv3 block" if has_se else "mnv2 block"
    for block in supernet.blocks:
        table.add_block(block, block_type)
    total = list(table.costs.values())
    return {
        "model": supernet.name,
        "input_size": supernet.input_size,
        "num_classes": supernet.num_classes,
        "macs": sum(c.macs for c in total),
        "params": sum(c.params for c in total),
        "searchable_layers": len(supernet.space),
        "architecture": arch.to_dict(supernet.space),
        "layers": table.rows,
        "notes": table.notes,
    }


class _Table:
    """The rows of :func:`describe` for one architecture, added block by block, and its notes."""

    def __init__(self, supernet: SuperNet, arch: Architecture) -> None:
        self.arch = arch
        self.view = ArchView(arch.filters, arch.kernels)
        self.costs = {c.name: c for c in supernet.costs(arch)}
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.chosen: dict[str, int] = {}  # layer name -> filters the architecture keeps, where more than compute

    def row(self, kind: str, layer: ElasticConv | None, **widths: object) -> dict:
        r: dict = {c: "-" for c in COLUMNS}
        r.update(index=len(self.rows) + 1, type=kind)
        if layer is not None:
            cost = self.costs[layer.name]
            r.update(T=_t(layer), kernel=cost.kernel if cost.filters else 0, stride=layer.stride,
                     bn="yes" if layer.norm_layer is not None else "-", act=_act(layer),
                     macs=cost.macs, params=cost.params)  # fmt: skip
        r.update(widths)
        self.rows.append(r)
        return r

    def filters(self, layer: ElasticConv) -> int:
        """The filters ``layer`` computes; a note where the architecture keeps more."""
        cost = self.costs[layer.name]
        kept = self.arch.filters[layer.index] if layer.index is not None else cost.filters
        if 0 < cost.filters < kept:
            self.chosen[layer.name] = kept
            self.notes.append(
                f"{layer.name} keeps {kept} filters in the architecture but computes {cost.filters}: a depthwise layer "
                f"has one filter per input channel, and its input has {cost.in_channels} channels"
            )
        return cost.filters

    def mark(self, r: dict, column: str, layer: ElasticConv | None) -> None:
        if layer is not None and layer.name in self.chosen:
            r.setdefault("chosen", {})[column] = self.chosen[layer.name]

    def add_block(self, block: nn.Module, block_type: str) -> None:
        f, row, mark = self.filters, self.row, self.mark
        if isinstance(block, ConvBlock):
            row("conv", block.conv, exp=f(block.conv))
        elif isinstance(block, Sequential):
            for layer in block.layers:
                column = "dw" if layer.depthwise else "pw"
                mark(row(column, layer, **{column: f(layer)}), column, layer)
        elif isinstance(block, InvertedResidual):
            self._inverted_residual(block, block_type)
        elif isinstance(block, DecoderStage):
            mark(row("dw", block.depthwise, dw=f(block.depthwise)), "dw", block.depthwise)
            row("pw", block.pointwise, pw=f(block.pointwise))
            row("upsample", None)
        elif isinstance(block, ClassifierHead):
            row("global avg pool", None)
            if block.hidden is not None:
                row("conv", block.hidden, exp=f(block.hidden))
            linear = self.costs["head.classifier"]
            row("fc", None, kernel=1, stride=1, exp=linear.filters, macs=linear.macs, params=linear.params)

    def _inverted_residual(self, block: InvertedResidual, block_type: str) -> None:
        f, costs = self.filters, self.costs
        r = self.row(block_type, block.depthwise)
        layers = [m for m in (block.expand, block.project) if m is not None]
        r.update(
            exp=f(block.expand) if block.expand is not None else "-",
            dw=f(block.depthwise),
            pw=f(block.project),
            se=chosen_se(block.se, self.view) if block.se is not None else "-",
            T=_t(block.project),
            act=_act(block.depthwise),
            macs=sum(costs[m.name].macs for m in [*layers, block.depthwise])
            + (costs[block.se.name].macs if block.se is not None else 0),
            params=sum(costs[m.name].params for m in [*layers, block.depthwise])
            + (costs[block.se.name].params if block.se is not None else 0),
        )
        self.mark(r, "dw", block.depthwise)


def format_table(rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    """A plain-text table with aligned columns."""
    cells = [[str(c) for c in columns]] + [[cell(r, c) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cell(row: dict, column: str) -> str:
    """A table cell; ``*`` marks a width the architecture keeps more of than compute (see
    :func:`describe`'s ``notes``)."""
    return _fmt(row[column]) + ("*" if column in row.get("chosen", {}) else "")


def _fmt(value: object) -> str:
    if isinstance(value, int) and value >= 100_000:
        return f"{value / 1e6:.2f}M"
    return str(value)
