"""A sub-network as a list of operations: the unit a latency lookup table measures and sums.

A compact network (:class:`~netadapt.model.supernet.CompactNet`) runs, block by block, a chain
of *steps*: elastic convolutions (convolution → BN → activation, plus the channel-level bypass
slice and concatenation of paper §2.2), squeeze-excitation modules, residual and skip
additions of maps of different widths, upsampling, pooling and the classifier.  Each step of
one architecture is one :class:`Op`: a *family* (everything fixed by the super-network: layer
type, kernel, stride, resolution, bypass limit ``T``, activation) and *dims* (the channel counts
the search changes).  Two layers with the same family and dims compute the same thing, so the
table stores one entry for both.

:meth:`OpPlan.trace` lists the operations of one architecture (fast enough to call inside
the search); :meth:`OpPlan.reachable` lists every operation any architecture of the search space
can produce, by propagating the *set* of reachable widths through the steps instead of enumerating
architectures (their number is astronomical), together with a function that builds each op as
a small module for measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.model.blocks import ClassifierHead, ConvBlock, DecoderStage, InvertedResidual, Sequential, is_removed
from netadapt.model.layers import ArchView, ElasticConv, SqueezeExcite
from netadapt.model.slicing import pad_add
from netadapt.model.supernet import SuperNet

__all__ = ["Op", "OpMaker", "OpPlan"]


class Op(NamedTuple):
    """One operation of a compact network: a family (fixed by the super-network) and the channel
    counts the architecture chooses (``dims``)."""

    family: str
    dims: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.family}|{','.join(str(d) for d in self.dims)}"

    @classmethod
    def from_key(cls, key: str) -> Op:
        family, _, dims = key.rpartition("|")
        return cls(family, tuple(int(d) for d in dims.split(",")) if dims else ())


#: Builds the module of one op of a family at the given dims: ``dims -> (module, inputs)``.
OpMaker = Callable[[tuple[int, ...]], tuple[nn.Module, tuple[Tensor, ...]]]


def _factory_name(factory: object) -> str:
    if factory is None:
        return "none"
    fn = getattr(factory, "func", factory)  # functools.partial or a class
    return getattr(fn, "__name__", type(fn).__name__).lower()


def _input(channels: int, size: int) -> Tensor:
    """A batch-1 input; random values (seeded), since the time does not depend on them."""
    return torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0))


# -- steps: what a block computes, in order ------------------------------------------------------
class _LayerStep:
    """An elastic convolution with its bypass slice and concatenation."""

    def __init__(self, layer: ElasticConv) -> None:
        self.layer = layer
        t = "inf" if layer.bypass is None else layer.bypass
        norm = "bn" if layer.norm_layer is not None else "nonorm"
        kind = "dw" if layer.depthwise else "conv"
        bias = "/bias" if layer.has_bias else ""
        self._prefix = f"{kind}/s{layer.stride}/r{layer.in_size}/T{t}/{_factory_name(layer.act_layer)}/{norm}{bias}"
        self._index = layer.index  # plain attributes: nn.Module attribute lookup is slow in a hot loop
        self._fixed = (layer.filters, layer.kernel)
        self._out_size = math.ceil(layer.in_size / layer.stride)
        self._memo: dict[tuple[int, int, int], tuple[Op, int]] = {}

    def choices(self, space: SearchSpace) -> list[tuple[int, int]]:
        if self.layer.index is None:
            return [(self.layer.filters, self.layer.kernel)]
        spec = space.layers[self.layer.index]
        return [(m, k) for m in spec.widths for k in spec.kernels]

    def chosen(self, view: ArchView) -> tuple[int, int]:
        i = self._index
        return self._fixed if i is None else (view.filters[i], view.kernels[i])

    def apply(self, width: int, choice: tuple[int, int], size: int, other: int) -> tuple[Op | None, int]:
        key = (width, *choice)
        hit = self._memo.get(key)
        if hit is None:  # the search asks for the same few shapes many times: memoize
            m, k = choice
            if self.layer.depthwise:
                m = min(m, width)  # filter i reads input channel i (same rule as ElasticConv)
            limit = width if self.layer.bypass is None else min(self.layer.bypass, width)
            hit = self._memo[key] = (Op(f"{self._prefix}/k{k}", (width, m)), max(limit, m))  # Z = max(min(C, T), M), §2.2
        return hit

    def out_size(self, size: int) -> int:
        return self._out_size

    def maker(self, choice: tuple[int, int], size: int) -> OpMaker:
        return partial(_make_layer, self.layer, choice[1], self.layer.in_size)


def _make_layer(layer: ElasticConv, k: int, size: int, dims: tuple[int, ...]) -> tuple[nn.Module, tuple[Tensor, ...]]:
    # A fresh layer with ``layer``'s fixed attributes, as ElasticConv.shrink builds it (weights
    # do not change the time).  Not ``layer.shrink``: a family is shared by layers of different
    # full sizes, and the one that made the maker may be narrower than these dims.
    c, m = dims
    module = ElasticConv(
        layer.name, c, min(m, c) if layer.depthwise else m, k, in_size=layer.in_size, stride=layer.stride,
        depthwise=layer.depthwise, bypass=layer.bypass, norm_layer=layer.norm_layer, act_layer=layer.act_layer,
        bias=layer.has_bias,
    )  # fmt: skip
    return module, (_input(c, size),)


class _SEStep:
    def __init__(self, se: SqueezeExcite) -> None:
        self.se = se
        self._prefix = f"se/{_factory_name(se.act_layer)}/{_factory_name(se.gate_layer)}"

    def choices(self, space: SearchSpace) -> list[int]:
        return [self.se.hidden] if self.se.index is None else list(space.layers[self.se.index].widths)

    def chosen(self, view: ArchView) -> int:
        return self.se.hidden if self.se.index is None else view.filters[self.se.index]

    def apply(self, width: int, hidden: int, size: int, other: int) -> tuple[Op | None, int]:
        if hidden == 0:  # removed: the compact network has no module here
            return None, width
        return Op(f"{self._prefix}/r{size}", (width, hidden)), width

    def out_size(self, size: int) -> int:
        return size

    def maker(self, choice: int, size: int) -> OpMaker:
        return partial(_make_se, self.se, size)


def _make_se(se: SqueezeExcite, size: int, dims: tuple[int, ...]) -> tuple[nn.Module, tuple[Tensor, ...]]:
    c, s = dims  # a fresh module, for the reason given in _make_layer
    return SqueezeExcite(se.name, c, s, act_layer=se.act_layer, gate_layer=se.gate_layer), (_input(c, size),)


class _PadAdd(nn.Module):
    """Residual or skip addition of two maps of different widths (the narrower zero-padded)."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return pad_add(a, b)


class _AddStep:
    """Addition of the current map and an earlier one (block input or skip source)."""

    def __init__(self, source: int | None = None) -> None:
        self.source = source  # None: the block's own input (residual)

    def choices(self, space: SearchSpace) -> list[None]:
        return [None]

    def chosen(self, view: ArchView) -> None:
        return None

    def apply(self, width: int, choice: None, size: int, other: int) -> tuple[Op | None, int]:
        return Op(f"add/r{size}", (width, other)), max(width, other)

    def out_size(self, size: int) -> int:
        return size

    def maker(self, choice: None, size: int) -> OpMaker:
        return partial(_make_add, size)


def _make_add(size: int, dims: tuple[int, ...]) -> tuple[nn.Module, tuple[Tensor, ...]]:
    a, b = dims
    return _PadAdd(), (_input(a, size), _input(b, size))


class _Upsample(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


class _UpsampleStep:
    def __init__(self, scale: int) -> None:
        self.scale = scale

    def choices(self, space: SearchSpace) -> list[None]:
        return [None]

    def chosen(self, view: ArchView) -> None:
        return None

    def apply(self, width: int, choice: None, size: int, other: int) -> tuple[Op | None, int]:
        return Op(f"upsample{self.scale}/r{size}", (width,)), width

    def out_size(self, size: int) -> int:
        return size * self.scale

    def maker(self, choice: None, size: int) -> OpMaker:
        return partial(_make_single, _Upsample(self.scale), size)


def _make_single(module: nn.Module, size: int, dims: tuple[int, ...]) -> tuple[nn.Module, tuple[Tensor, ...]]:
    return module, (_input(dims[0], size),)


class _Pool(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, 1)


class _PoolStep:
    def choices(self, space: SearchSpace) -> list[None]:
        return [None]

    def chosen(self, view: ArchView) -> None:
        return None

    def apply(self, width: int, choice: None, size: int, other: int) -> tuple[Op | None, int]:
        return Op(f"pool/r{size}", (width,)), width

    def out_size(self, size: int) -> int:
        return 1

    def maker(self, choice: None, size: int) -> OpMaker:
        return partial(_make_single, _Pool(), size)


class _Classifier(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))  # dropout is the identity at inference


class _LinearStep:
    def __init__(self, linear: nn.Linear) -> None:
        self.out_features = linear.out_features

    def choices(self, space: SearchSpace) -> list[None]:
        return [None]

    def chosen(self, view: ArchView) -> None:
        return None

    def apply(self, width: int, choice: None, size: int, other: int) -> tuple[Op | None, int]:
        return Op(f"linear{self.out_features}", (width,)), self.out_features

    def out_size(self, size: int) -> int:
        return 1

    def maker(self, choice: None, size: int) -> OpMaker:
        return partial(_make_linear, self.out_features)


def _make_linear(out_features: int, dims: tuple[int, ...]) -> tuple[nn.Module, tuple[Tensor, ...]]:
    return _Classifier(nn.Linear(dims[0], out_features)), (_input(dims[0], 1),)


_Step = _LayerStep | _SEStep | _AddStep | _UpsampleStep | _PoolStep | _LinearStep


def _block_steps(block: nn.Module) -> list[_Step]:
    """The steps of one block in the order its ``forward`` runs them."""
    if isinstance(block, ConvBlock):
        return [_LayerStep(block.conv)]
    if isinstance(block, Sequential):
        return [_LayerStep(layer) for layer in block.layers]
    if isinstance(block, InvertedResidual):
        steps: list[_Step] = []
        if block.expand is not None:
            steps.append(_LayerStep(block.expand))
        steps.append(_LayerStep(block.depthwise))
        if block.se is not None:
            steps.append(_SEStep(block.se))
        steps.append(_LayerStep(block.project))
        if block.residual:
            steps.append(_AddStep())
        return steps
    if isinstance(block, DecoderStage):
        return [_LayerStep(block.depthwise), _LayerStep(block.pointwise), _UpsampleStep(block.scale)]
    if isinstance(block, ClassifierHead):
        head: list[_Step] = [_PoolStep()]
        if block.hidden is not None:
            head.append(_LayerStep(block.hidden))
        head.append(_LinearStep(block.classifier))
        return head
    raise TypeError(f"no latency model for block type {type(block).__name__}")


class OpPlan:
    """The steps of every block of one super-network, ready to trace architectures.

    Build it once per super-network (the search traces thousands of architectures); a skip
    addition is the last step of its block.
    """

    def __init__(self, supernet: SuperNet) -> None:
        if not hasattr(supernet, "blocks"):  # a traced network (netadapt.trace) has no zoo blocks
            raise NetAdaptError(
                f"latency lookup tables model the zoo's blocks; measure {supernet.name} with the metric "
                "measured:onnxruntime|torch|cuda or command:'CMD {model}' instead"
            )
        self.supernet = supernet
        self.blocks: list[list[_Step]] = []
        # The convolutions whose 0 filters remove each block (a removed block runs no operation).
        self.removal: list[tuple[int, ...] | None] = []
        for block, skip in zip(supernet.blocks, supernet.skips, strict=True):
            steps = _block_steps(block)
            if skip is not None:
                steps.append(_AddStep(skip))
            self.blocks.append(steps)
            self.removal.append(getattr(block, "removal", None))

    def trace(self, arch: Architecture, *, validate: bool = True) -> list[Op]:
        """The operations of ``arch``'s compact network, in execution order."""
        net = self.supernet
        if validate:
            net.space.validate(arch)
        view = ArchView(arch.filters, arch.kernels)
        width, size = net.in_channels, net.input_size
        ops: list[Op] = []
        outs: list[int] = []
        for steps, removal in zip(self.blocks, self.removal, strict=True):
            if is_removed(removal, view):
                outs.append(width)
                continue
            block_in = width
            for step in steps:
                other = 0
                if isinstance(step, _AddStep):
                    other = block_in if step.source is None else outs[step.source]
                op, width = step.apply(width, step.chosen(view), size, other)
                size = step.out_size(size)
                if op is not None:
                    ops.append(op)
            outs.append(width)
        return ops

    def reachable(self) -> tuple[dict[Op, OpMaker], dict[str, OpMaker]]:
        """Every operation an architecture of the search space can produce.

        Widths are propagated as sets: a step's reachable outputs are its outputs for every
        reachable input width and every choice of its layer.  Choices of different layers are
        treated as independent, so tied layers can add a few ops no architecture uses; the set
        is never missing one.  Returns the ops (each with the maker of its family) and the
        makers by family.
        """
        space = self.supernet.space
        widths, size = {self.supernet.in_channels}, self.supernet.input_size
        outs: list[set[int]] = []
        found: dict[Op, OpMaker] = {}
        makers: dict[str, OpMaker] = {}
        for steps, removal in zip(self.blocks, self.removal, strict=True):
            block_in = widths
            for step in steps:
                others = [0]
                if isinstance(step, _AddStep):
                    others = sorted(block_in if step.source is None else outs[step.source])
                new: set[int] = set()
                for choice in step.choices(space):
                    for width, other in _pairs(widths, others):
                        op, out = step.apply(width, choice, size, other)
                        new.add(out)
                        if op is not None and op not in found:
                            maker = makers.get(op.family)
                            if maker is None:
                                maker = makers[op.family] = step.maker(choice, size)
                            found[op] = maker
                widths = new
                size = step.out_size(size)
            if removal is not None:  # a removed block passes its input on unchanged
                widths = widths | block_in
            outs.append(widths)
        return found, makers


def _pairs(widths: set[int], others: list[int]) -> Iterator[tuple[int, int]]:
    for w in sorted(widths):
        for o in others:
            yield w, o
