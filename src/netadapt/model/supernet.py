"""The super-network (paper §2.1) and the compact networks extracted from it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, replace

import torch
from torch import Tensor, nn

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.model.builder import BuildOptions, build_from_definition
from netadapt.model.definitions import NetworkDef
from netadapt.model.elastic import ElasticNet
from netadapt.model.layers import ArchView, Choice, LayerCost
from netadapt.model.registry import build_source, is_source_name
from netadapt.model.slicing import pad_add
from netadapt.model.zoo import get_definition

__all__ = ["CompactNet", "SuperNet", "build_supernet", "extract"]


def _run_plain(blocks: nn.ModuleList, skips: Sequence[int | None], x: Tensor) -> Tensor:
    kept = {s for s in skips if s is not None}
    saved: dict[int, Tensor] = {}
    for i, (block, skip) in enumerate(zip(blocks, skips, strict=True)):
        x = block(x)
        if skip is not None:
            x = pad_add(x, saved[skip])
        if i in kept:
            saved[i] = x
    return x


class CompactNet(nn.Module):
    """An extracted sub-network: real convolutions with fewer channels, bypass as slice +
    concatenation, removed layers gone.  Loadable without the super-network
    (see :mod:`netadapt.export`)."""

    def __init__(self, blocks: list[nn.Module], skips: Sequence[int | None], *, in_channels: int, input_size: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.skips = tuple(skips)
        self.in_channels = in_channels
        self.input_size = input_size

    def forward(self, x: Tensor) -> Tensor:
        return _run_plain(self.blocks, self.skips, x)


class SuperNet(ElasticNet):
    """A network allocated at its initial (largest) size whose sub-networks share its weights.

    Call it with one architecture, ``supernet(x, arch)``, or with per-image choices for ordered
    dropout, ``supernet(x, widths=W, kernels=K)`` where ``W`` and ``K`` are (B, L) integer
    tensors (column ``i`` = search-space layer ``i``; ``K`` defaults to full kernels).  With
    neither it runs the initial network.
    """

    def __init__(
        self,
        definition: NetworkDef,
        *,
        num_classes: int | None = None,
        input_size: int | None = None,
        in_channels: int = 3,
        options: BuildOptions = BuildOptions(),
        width_mult: float | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(num_classes=num_classes, input_size=input_size, in_channels=in_channels)
        self.width_mult = width_mult  # recorded so that checkpoints can rebuild the network
        if num_classes is not None and definition.task == "classification":
            definition = _with_classes(definition, num_classes)
        self.definition = definition
        self.options = options
        self.input_size = int(input_size or definition.input_size)
        self.in_channels = in_channels
        if self.input_size < 8:
            raise NetAdaptError(f"input size {self.input_size} is too small (at least 8 pixels)")
        blocks, skips, space = build_from_definition(
            definition, input_size=self.input_size, in_channels=in_channels, options=options
        )
        self.blocks = nn.ModuleList(blocks)
        self.skips = skips
        self.space: SearchSpace = space
        init_weights_(self)
        self.register_buffer(
            "_max_filters", torch.tensor([s.max_filters for s in space.layers], dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "_full_kernels", torch.tensor([s.max_kernel for s in space.layers], dtype=torch.long), persistent=False
        )

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def num_classes(self) -> int:
        return self.definition.num_classes

    @property
    def task(self) -> str:
        return self.definition.task

    def build_config(self) -> dict:
        """Everything needed to rebuild this super-network (stored in checkpoints)."""
        return {
            "model": self.definition.name,
            "num_classes": self.definition.num_classes,
            "input_size": self.input_size,
            "in_channels": self.in_channels,
            "width_mult": self.width_mult,
            "options": asdict(self.options),
        }

    # -- forward passes (ElasticNet.forward checks and dispatches) ---------------------------
    def _forward_plain(self, x: Tensor) -> Tensor:
        return _run_plain(self.blocks, self.skips, x)

    def _forward_choice(self, x: Tensor, choice: Choice) -> Tensor:
        width = torch.full((x.shape[0],), self.in_channels, dtype=torch.long, device=x.device)
        kept = {s for s in self.skips if s is not None}
        saved: dict[int, tuple[Tensor, Tensor]] = {}
        for i, (block, skip) in enumerate(zip(self.blocks, self.skips, strict=True)):
            x, width = block.forward_masked(x, width, choice)
            if skip is not None:  # same full width; zero beyond each image's own width
                sx, sw = saved[skip]
                x, width = x + sx, width.maximum(sw)
            if i in kept:
                saved[i] = (x, width)
        return x

    # -- shapes, costs, extraction ------------------------------------------------------------
    def macs(self, arch: Architecture | None = None, *, validate: bool = True) -> int:
        """MACs of ``arch`` (default: the full network) for one image."""
        return sum(c.macs for c in self.costs(arch, validate=validate))

    def costs(self, arch: Architecture | None = None, *, validate: bool = True) -> list[LayerCost]:
        """Per-layer shapes, MACs and parameters of ``arch`` (default: the full network)."""
        arch = self.space.full() if arch is None else (self.space.validate(arch) if validate else arch)
        view = ArchView(arch.filters, arch.kernels)
        costs: list[LayerCost] = []
        width = self.in_channels
        widths: list[int] = []
        for block, skip in zip(self.blocks, self.skips, strict=True):
            width = block.trace(width, view, costs)
            if skip is not None:
                width = max(width, widths[skip])
            widths.append(width)
        return costs

    def extract(self, arch: Architecture) -> CompactNet:
        """The compact network of ``arch`` with weights copied from this super-network."""
        self.space.validate(arch)
        view = ArchView(arch.filters, arch.kernels)
        blocks, widths = [], []
        width = self.in_channels
        for block, skip in zip(self.blocks, self.skips, strict=True):
            blocks.append(block.extract(width, view))
            width = block.trace(width, view, None)
            if skip is not None:
                width = max(width, widths[skip])
            widths.append(width)
        net = CompactNet(blocks, self.skips, in_channels=self.in_channels, input_size=self.input_size)
        net.train(self.training)
        return net.to(self._max_filters.device)

    def implant_(self, compact: CompactNet, arch: Architecture) -> SuperNet:
        """Write the weights of ``compact`` (extracted at ``arch``, then trained) back into this
        super-network's tensors: afterwards ``self(x, arch)`` equals ``compact(x)``.  The inverse
        of :meth:`extract`, through the same slicing functions; weights outside ``arch`` stay."""
        self.space.validate(arch)
        if len(compact.blocks) != len(self.blocks):
            raise NetAdaptError(f"the compact network has {len(compact.blocks)} blocks, {self.name} has {len(self.blocks)}")
        for block, small in zip(self.blocks, compact.blocks, strict=True):
            block.implant_(small)
        return self


def init_weights_(module: nn.Module) -> None:
    """torchvision's MobileNet initialisation (kaiming-normal fan-out convs, unit BN, small linear)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def _check_sizes(**sizes: object) -> None:
    """One-line errors for a size that is not a positive integer (``None``: the default)."""
    for key, value in sizes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise NetAdaptError(f"{key} must be a positive integer, got {value!r}")


def _check_width_mult(width_mult: object) -> None:
    if isinstance(width_mult, bool) or not isinstance(width_mult, int | float) or not 0 < width_mult < math.inf:
        raise NetAdaptError(f"width_mult must be a positive number, got {width_mult!r}")


def _check_scaled(definition: NetworkDef, width_mult: float) -> None:
    """A ``width_mult`` small enough to leave a layer without filters is an error, not a crash."""
    for i, row in enumerate(definition.blocks):
        for part in ("filters", "expand"):
            if getattr(row, part, 1) < 1:
                raise NetAdaptError(
                    f"width_mult {width_mult} leaves block b{i} of {definition.name} without filters; use a larger width_mult"
                )


def _with_classes(definition: NetworkDef, num_classes: int) -> NetworkDef:
    return replace(definition, num_classes=num_classes)


def build_supernet(
    name: str,
    *,
    num_classes: int | None = None,
    input_size: int | None = None,
    in_channels: int = 3,
    width_mult: float | None = None,
    **options: object,
) -> SuperNet:
    """Build zoo model ``name`` as a super-network.

    ``options`` are :class:`~netadapt.model.builder.BuildOptions` fields: ``num_widths``,
    ``width_divisor``, ``bypass`` ("resolution", "none", "unlimited"), ``bypass_base``,
    ``tie_depthwise``, ``superkernel``.

    A *source* instead of a zoo name (``"torchvision:resnet50"``, ``"timm:efficientnet_b0"``,
    ``"module:my_model.py:build"``) builds that model and traces it
    (:func:`netadapt.supernet_from_module`); ``options`` are then
    :class:`~netadapt.trace.TraceOptions` fields.
    """
    if not isinstance(name, str):
        raise NetAdaptError(f"the model name must be a string (netadapt zoo lists them), got {name!r}")
    if is_source_name(name):  # a source to trace (netadapt.trace registers its builder)
        if width_mult is not None:
            raise NetAdaptError("width_mult applies to zoo models; a traced network keeps its own widths")
        return build_source(name, num_classes=num_classes, input_size=input_size or 224, in_channels=in_channels, **options)
    fields = set(BuildOptions.__dataclass_fields__)
    unknown = set(options) - fields
    if unknown:
        raise NetAdaptError(f"unknown super-network option(s) {sorted(unknown)}; known: {sorted(fields)}")
    if width_mult is not None:
        _check_width_mult(width_mult)
    definition = get_definition(name, **({"width_mult": width_mult} if width_mult is not None else {}))
    if width_mult is not None:
        _check_scaled(definition, width_mult)
    return SuperNet(
        definition,
        num_classes=num_classes,
        input_size=input_size,
        in_channels=in_channels,
        options=BuildOptions(**options),
        width_mult=width_mult,
    )


def extract(supernet: SuperNet, arch: Architecture) -> CompactNet:
    """The compact ``nn.Module`` of ``arch``, weights sliced from ``supernet`` (see :meth:`SuperNet.extract`;
    a traced super-network gives a ``torch.fx.GraphModule``)."""
    return supernet.extract(arch)
