"""One builder: decode a :class:`NetworkDef` into a super-network and its search space."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

from torch import nn

from netadapt.arch.space import LayerSpec, SearchSpace, kernel_choices, width_choices
from netadapt.config import check_fields
from netadapt.errors import NetAdaptError
from netadapt.model.blocks import ClassifierHead, ConvBlock, DecoderStage, InvertedResidual, Sequential
from netadapt.model.definitions import Conv, Decoder, DepthwiseSeparable, MBConv, NetworkDef
from netadapt.model.layers import ElasticConv, SqueezeExcite

__all__ = ["ACTIVATIONS", "BuildOptions", "build_from_definition"]

ACTIVATIONS = {
    "relu": partial(nn.ReLU),
    "relu6": partial(nn.ReLU6),
    "hswish": partial(nn.Hardswish),
    "none": None,
}
BYPASS_MODES = ("resolution", "none", "unlimited")
REMOVAL_MODES = ("block", "layer", "none")


@dataclass(frozen=True)
class BuildOptions:
    """Search-space options of a super-network.

    ``bypass``: ``"resolution"`` (the paper's per-resolution ``T``, appendix B), ``"none"`` (no
    channel-level bypass: the "without CBC" ablation; depthwise layers are tied to the layer
    feeding them and no layer may reach 0 filters) or ``"unlimited"`` (``T = ∞`` everywhere).

    ``removal`` says how depth is searched: ``"block"`` (default) — 0 filters only for whole
    removable blocks (residual inverted-residual blocks, and MobileNetV1 pairs that keep their
    input's width and resolution), removed together and computing exactly their input;
    ``"layer"`` — the paper's per-layer form: any layer with a bypass may keep 0 filters on its
    own (channel-level bypass, §2.2; a residual block whose convolutions all keep 0 is removed);
    ``"none"`` — no convolution keeps 0 filters.  ``docs/training.md`` has the measurements
    behind the default.
    """

    num_widths: int | None = None  # None: the definition's (9, or 11 for netadaptv2_macs)
    width_divisor: int = 1
    bypass: str = "resolution"
    bypass_base: int | None = None  # None: the definition's
    tie_depthwise: bool | None = None  # None: tied exactly when bypass is "none"
    superkernel: bool = True  # search kernel sizes (odd sizes from 3 to full)
    # Narrowest width a layer may keep, as a fraction of its full width (0 = the paper's space,
    # down to 0 filters).  Small data and short schedules train a super-network far better when
    # the space excludes near-empty layers; see docs/training.md.
    min_width_fraction: float = 0.0
    # With a min_width_fraction, still allow 0 filters where a bypass makes that valid (the layer
    # or block is removed): depth stays searchable while near-empty widths are left out.
    keep_removal: bool = False
    removal: str = "block"


class _Registry:
    """Collects the searchable layers in build order; their order is the architecture's order."""

    def __init__(self, model: str, options: BuildOptions, num_widths: int) -> None:
        self.model = model
        self.options = options
        self.num_widths = num_widths
        self.layers: list[LayerSpec] = []
        self._next_tie = 0
        self._next_block = 0

    def new_tie(self) -> int:
        self._next_tie += 1
        return self._next_tie - 1

    def new_block(self) -> int:
        self._next_block += 1
        return self._next_block - 1

    def _zero(self, kind: str, bypass: int | None, block: int | None) -> bool:
        """Whether the layer may keep 0 filters (see ``BuildOptions.removal``)."""
        floor, mode = self.options.min_width_fraction, self.options.removal
        if mode == "layer":
            return (kind == "se" or bypass != 0) and (floor == 0 or self.options.keep_removal)
        return block is not None or (kind == "se" and floor == 0)

    def add(
        self,
        name: str,
        kind: str,
        filters: int,
        kernel: int,
        bypass: int | None,
        tie: int | None = None,
        block: int | None = None,
    ) -> int:
        floor = self.options.min_width_fraction
        zero = self._zero(kind, bypass, block)
        widths = width_choices(filters, self.num_widths, self.options.width_divisor, allow_zero=zero)
        if floor > 0:
            widths = tuple(w for w in widths if w >= floor * filters or (zero and w == 0)) or (filters,)
        kernels = kernel_choices(kernel) if self.options.superkernel else (kernel,)
        self.layers.append(LayerSpec(name, kind, filters, kernel, widths, kernels, bypass, tie, block))
        return len(self.layers) - 1


def build_from_definition(
    definition: NetworkDef,
    *,
    input_size: int,
    in_channels: int = 3,
    options: BuildOptions = BuildOptions(),
) -> tuple[list[nn.Module], tuple[int | None, ...], SearchSpace]:
    """Decode ``definition`` into (blocks, skips, search space).

    ``skips[i]`` is the index of an earlier block whose output is added (zero-padded) to block
    ``i``'s output, or ``None``.
    """
    _check_options(options)
    builder = _Builder(definition, options, input_size)
    blocks: list[nn.Module] = []
    skips: list[int | None] = []
    sizes: list[int] = []  # output resolution of every block, for skips
    c, size = in_channels, input_size
    for i, row in enumerate(definition.blocks):
        blk, c, size, skip = builder.block(f"b{i}", row, c, size, sizes)
        blocks.append(blk)
        skips.append(skip)
        sizes.append(size)
    if definition.head is not None:
        blocks.append(builder.head(c))
        skips.append(None)
    return blocks, tuple(skips), SearchSpace(definition.name, tuple(builder.reg.layers))


def _check_options(options: BuildOptions) -> None:
    check_fields(options, "option ")
    if options.num_widths is not None and options.num_widths < 2:
        raise NetAdaptError(f"option num_widths must be at least 2, got {options.num_widths}")
    if options.width_divisor < 1:
        raise NetAdaptError(f"option width_divisor must be at least 1, got {options.width_divisor}")
    if options.bypass_base is not None and options.bypass_base < 1:
        raise NetAdaptError(f"option bypass_base must be at least 1, got {options.bypass_base}")
    if not 0.0 <= options.min_width_fraction <= 1.0:
        raise NetAdaptError(f"min_width_fraction must be in [0, 1], got {options.min_width_fraction}")
    if options.bypass not in BYPASS_MODES:
        raise NetAdaptError(f"unknown bypass mode {options.bypass!r}; choose one of {', '.join(BYPASS_MODES)}")
    if options.removal not in REMOVAL_MODES:
        raise NetAdaptError(f"unknown removal mode {options.removal!r}; choose one of {', '.join(REMOVAL_MODES)}")


class _Builder:
    """Builds a definition's blocks one row at a time, registering searchable layers in order.

    ``block`` takes a row, the input channels and resolution, and returns (block, output
    channels, output resolution, skip source or ``None``).
    """

    def __init__(self, definition: NetworkDef, options: BuildOptions, input_size: int) -> None:
        self.definition = definition
        self.options = options
        self.input_size = input_size
        self.norm = partial(nn.BatchNorm2d, eps=definition.bn_eps, momentum=definition.bn_momentum)
        self.base = options.bypass_base or definition.bypass_base
        self.tie_dw = options.tie_depthwise if options.tie_depthwise is not None else options.bypass == "none"
        self.by_block = options.removal == "block"
        self.reg = _Registry(definition.name, options, options.num_widths or definition.num_widths)

    def limit(self, filters: int, out_size: int, depthwise: bool = False) -> int | None:
        """The bypass limit T of a layer (appendix B: one T per resolution, ∞ for depthwise)."""
        if self.options.bypass == "none":
            return 0
        if depthwise or self.options.bypass == "unlimited":
            return None
        d = max(0, round(math.log2(self.input_size / out_size)))
        # A T above the layer's own filter count would make its output wider than in the initial
        # network; clamp it so the full sub-network is the initial network.
        return min(filters, max(1, self.base * 2**d // 2))

    def conv(
        self,
        name,
        c_in,
        filters,
        kernel,
        stride,
        size,
        act,
        *,
        depthwise=False,
        searchable=True,
        tie=None,
        bypass="auto",
        block=None,
    ):
        reg = self.reg
        out_size = math.ceil(size / stride)
        t = self.limit(filters, out_size, depthwise) if bypass == "auto" else bypass
        index = reg.add(name, "depthwise" if depthwise else "conv", filters, kernel, t, tie, block) if searchable else None
        return ElasticConv(
            name, c_in, filters, kernel, in_size=size, stride=stride, depthwise=depthwise, bypass=t,
            norm_layer=self.norm, act_layer=ACTIVATIONS[act], index=index,
            kernels=reg.layers[index].kernels if index is not None else None,
        )  # fmt: skip

    def _tie_previous(self, tie: int) -> None:
        self.reg.layers[-1] = _with_tie(self.reg.layers[-1], tie)

    def block(self, name: str, row, c: int, size: int, sizes: list[int]) -> tuple[nn.Module, int, int, int | None]:
        if isinstance(row, Conv):
            return (*self._conv_block(name, row, c, size), None)
        if isinstance(row, DepthwiseSeparable):
            return (*self._separable(name, row, c, size), None)
        if isinstance(row, MBConv):
            return (*self._mbconv(name, row, c, size), None)
        if isinstance(row, Decoder):
            return self._decoder(name, row, c, size, sizes)
        raise TypeError(f"unknown block row {row!r}")  # pragma: no cover - definitions are typed

    def _conv_block(self, name: str, row: Conv, c: int, size: int) -> tuple[nn.Module, int, int]:
        if not row.searchable:
            blk = ConvBlock(self.conv(name, c, row.filters, row.kernel, row.stride, size, row.act, searchable=False, bypass=0))
        else:
            blk = ConvBlock(self.conv(name, c, row.filters, row.kernel, row.stride, size, row.act))
        return blk, row.filters, math.ceil(size / row.stride)

    def _separable(self, name: str, row: DepthwiseSeparable, c: int, size: int) -> tuple[nn.Module, int, int]:
        reg = self.reg
        tie = reg.new_tie() if self.tie_dw else None
        # Without bypass the depthwise layer must match the layer feeding it: tie both.
        if tie is not None and reg.layers:
            self._tie_previous(tie)
        # A pair that keeps its input's width and resolution can be removed whole.
        removable = self.by_block and row.stride == 1 and c == row.filters and tie is None
        block = reg.new_block() if removable else None
        dw = self.conv(f"{name}.dw", c, c, row.kernel, row.stride, size, row.act, depthwise=True, tie=tie, block=block)
        size = math.ceil(size / row.stride)
        pw = self.conv(f"{name}.pw", c, row.filters, 1, 1, size, row.act, block=block)
        return Sequential(dw, pw, removable=removable), row.filters, size

    def _mbconv(self, name: str, row: MBConv, c: int, size: int) -> tuple[nn.Module, int, int]:
        reg = self.reg
        expand = None
        exp_c = c
        tie = reg.new_tie() if self.tie_dw else None
        has_expand = row.expand != c or row.force_expand
        residual = row.stride == 1 and c == row.filters
        # A residual block is removable unless its depthwise layer is tied to the layer before it.
        block = reg.new_block() if self.by_block and residual and (has_expand or tie is None) else None
        if has_expand:
            expand = self.conv(f"{name}.expand", c, row.expand, 1, 1, size, row.act, tie=tie, block=block)
            exp_c = row.expand
        elif tie is not None and reg.layers:
            self._tie_previous(tie)
        dw = self.conv(f"{name}.dw", exp_c, exp_c, row.kernel, row.stride, size, row.act, depthwise=True, tie=tie, block=block)
        size = math.ceil(size / row.stride)
        se = None
        if row.se:
            index = reg.add(f"{name}.se", "se", row.se, 1, None, block=block)
            se = SqueezeExcite(f"{name}.se", exp_c, row.se, index=index)
        pw = self.conv(f"{name}.project", exp_c, row.filters, 1, 1, size, "none", block=block)
        return InvertedResidual(expand, dw, se, pw, residual=residual), row.filters, size

    def _decoder(self, name: str, row: Decoder, c: int, size: int, sizes: list[int]) -> tuple[nn.Module, int, int, int | None]:
        tie = self.reg.new_tie() if self.tie_dw else None
        if tie is not None:
            self._tie_previous(tie)
        dw = self.conv(f"{name}.dw", c, c, row.kernel, 1, size, "relu", depthwise=True, tie=tie)
        pw = self.conv(f"{name}.pw", c, row.filters, 1, 1, size, "relu")
        c, size = row.filters, size * 2
        if row.skip is not None and sizes[row.skip] != size:
            raise NetAdaptError(
                f"{self.definition.name} at input size {self.input_size}: skip from block {row.skip} has resolution "
                f"{sizes[row.skip]}, not {size}; use an input size that is a multiple of 32"
            )
        return DecoderStage(dw, pw), c, size, row.skip

    def head(self, c: int) -> nn.Module:
        """The classifier head of the definition, on ``c`` input channels."""
        head = self.definition.head
        no_bypass = self.options.bypass == "none"
        hidden = None
        if head.hidden:
            hidden = ElasticConv(
                "head.hidden", c, head.hidden, 1, in_size=1, bypass=None if not no_bypass else 0,
                norm_layer=None, act_layer=ACTIVATIONS[head.act], bias=True,
                index=self.reg.add("head.hidden", "conv", head.hidden, 1, None if not no_bypass else 0),
            )  # fmt: skip
            c = head.hidden
        return ClassifierHead(hidden, nn.Linear(c, self.definition.num_classes), head.dropout)


def _with_tie(spec: LayerSpec, tie: int) -> LayerSpec:
    return replace(spec, tie=tie)
