"""Elastic layers: a convolution with ordered dropout, channel-level bypass and a superkernel,
and an elastic squeeze-excitation module.

Each layer has two forward passes:

* ``forward(x)`` runs the layer at the size it was built with.  A super-network's layers are
  built at full size; an extracted network's layers are built at the sub-network's size by
  :meth:`ElasticConv.shrink`, with weights sliced by :mod:`netadapt.model.slicing`.  Bypassed
  channels are a slice of the input concatenated after the convolution's output.
* ``forward_masked(x, width, choice)`` runs the full-size layer for a batch in which every image
  has its own sub-network (ordered dropout, paper §2.3): ``width`` (B,) holds the number of
  active input channels per image and ``choice`` holds every searchable layer's filters and
  kernel size per image.  It returns the output and its per-image width.  In training mode,
  ``choice.groups`` (sizes of consecutive runs of images that share one sub-network) gives every
  group its own BatchNorm statistics (:func:`grouped_batch_norm`), so that a sub-network is
  normalized in training as it is when it runs alone.

Nothing about "which sub-network" is stored in a module: the choice is always an argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.model.fused import BypassLink, activate_and_mix, bypass_link, conv2d_linked
from netadapt.model.slicing import (
    bypass_slice,
    crop_kernel,
    prefix_mask,
    slice_conv_weight,
    slice_vector,
)

__all__ = ["ArchView", "Choice", "ElasticConv", "LayerCost", "SqueezeExcite", "check_groups", "grouped_batch_norm"]

ModuleFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class Choice:
    """Per-image sub-network choices for one batch.

    ``filters`` and ``kernels`` are (B, L) integer tensors, column ``i`` belonging to the
    search space's layer ``i``.
    """

    filters: Tensor
    kernels: Tensor
    # Sizes of consecutive runs of images that share one sub-network (summing to B), whose
    # BatchNorm statistics are computed apart in training mode; None: the whole batch at once.
    groups: tuple[int, ...] | None = None


def check_groups(groups: Sequence[int], batch: int) -> tuple[int, ...]:
    """``groups`` as a tuple of positive sizes summing to ``batch``; a clear error otherwise."""
    sizes = tuple(int(g) for g in groups)
    if any(g < 1 for g in sizes) or sum(sizes) != batch:
        raise NetAdaptError(f"groups must be positive sizes summing to the batch of {batch} images, got {list(sizes)}")
    return sizes


def grouped_batch_norm(bn: nn.Module, y: Tensor, groups: tuple[int, ...] | None) -> Tensor:
    """``bn(y)``, but in training mode every group of consecutive images (``groups``: their
    sizes) is normalized with its own batch statistics.

    Ordered dropout gives images different sub-networks; one set of statistics over the whole
    batch mixes channels that some images compute and others drop (their values are computed and
    then masked) and activations of narrow and wide, shallow and deep sub-networks.  A
    sub-network is then trained under a normalization that it never meets alone, where its
    BatchNorm is recalibrated on its own activations (search, validation) or trained alone
    (final training).  With one group per sub-network the training-mode forward of the batch
    equals the per-group forward passes (``tests/test_grouped_norm.py``).  The running
    statistics are updated once per group.
    """
    if groups is None or len(groups) == 1 or not bn.training or not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        return bn(y)
    return torch.cat([bn(part) for part in torch.split(y, list(groups))])


class ArchView(NamedTuple):
    """One architecture's choices as plain tuples, for integer shape and cost tracing."""

    filters: tuple[int, ...]
    kernels: tuple[int, ...]


class LayerCost(NamedTuple):
    """The shape and cost of one layer of one architecture."""

    name: str
    kind: str  # conv | depthwise | se | linear
    in_channels: int
    filters: int  # filters actually computing (0 = bypassed or removed)
    kernel: int
    stride: int
    in_size: int  # input resolution (square)
    out_channels: int
    macs: int
    params: int


def _conv_out_size(size: int, stride: int) -> int:
    return math.ceil(size / stride)  # odd kernels with k//2 padding


class ElasticConv(nn.Module):
    """Convolution → BatchNorm → activation with channel-level bypass (paper §2.2).

    ``bypass`` is ``T``: ``None`` for unlimited (∞), ``0`` for none.  With ``M`` filters kept
    and ``C`` input channels, the output has ``Z = max(min(C, T), M)`` channels: the ``M``
    convolution outputs followed by input channels ``M .. min(C, T)``.  A depthwise layer's
    filter ``i`` reads input channel ``i``, so it keeps at most ``C`` filters.  ``index`` is
    the layer's position in the search space, ``None`` for a fixed layer.
    """

    def __init__(
        self,
        name: str,
        in_channels: int,
        filters: int,
        kernel: int,
        *,
        in_size: int,
        stride: int = 1,
        depthwise: bool = False,
        bypass: int | None = 0,
        norm_layer: ModuleFactory | None = nn.BatchNorm2d,
        act_layer: ModuleFactory | None = None,
        bias: bool = False,
        index: int | None = None,
        kernels: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if depthwise and filters > in_channels:
            raise ValueError(f"{name}: a depthwise layer cannot have more filters ({filters}) than inputs ({in_channels})")
        self.name = name
        self.in_channels = in_channels
        self.filters = filters
        self.kernel = kernel
        self.in_size = in_size
        self.stride = stride
        self.depthwise = depthwise
        self.bypass = bypass
        self.index = index
        # The kernel sizes the search space lets this layer choose (superkernel), fixed at build
        # time: with one choice the ordered-dropout forward needs no per-image grouping.
        self.kernel_options = tuple(kernels) if kernels else (kernel,)
        self.norm_layer = norm_layer
        self.act_layer = act_layer
        self.has_bias = bias
        # Channels that bypass may pass through: the first min(C, T).
        self.limit = in_channels if bypass is None else min(bypass, in_channels)
        self.out_channels = max(self.limit, filters)
        self._trace_cache: dict[tuple[int, int, int], LayerCost] = {}
        if filters > 0:
            conv_in = filters if depthwise else in_channels
            self.conv = nn.Conv2d(conv_in, filters, kernel, stride, kernel // 2, groups=filters if depthwise else 1, bias=bias)
            self.bn = norm_layer(filters) if norm_layer is not None else None
            self.act = act_layer() if act_layer is not None else None
        else:  # every filter removed: the layer is only its bypass
            self.conv = self.bn = self.act = None

    # -- plain forward (the layer at its own size) -------------------------------------------
    def _post(self, y: Tensor) -> Tensor:
        if self.bn is not None:
            y = self.bn(y)
        return self.act(y) if self.act is not None else y

    def forward(self, x: Tensor) -> Tensor:
        m = self.filters
        parts = []
        if self.conv is not None:
            # a depthwise layer keeping fewer filters than inputs reads the first m channels; sliced
            # only then (an exported no-op Slice costs ONNX Runtime a copy of the activation)
            parts.append(self._post(self.conv(x[:, :m] if self.depthwise and m < self.in_channels else x)))
        if m < self.limit:
            parts.append(bypass_slice(x, m, self.limit, self.stride))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    # -- ordered-dropout forward (full-size layer, per-image sub-networks) -------------------
    def _conv_with_kernel(self, x: Tensor, kernel: int, link: BypassLink | None = None) -> Tensor:
        weight = crop_kernel(self.conv.weight, kernel)
        return conv2d_linked(x, weight, self.conv.bias, self.stride, kernel // 2, self.conv.groups, link)

    def _conv_per_image_kernel(self, x: Tensor, kernels: Tensor) -> Tensor:
        if len(self.kernel_options) == 1:  # the space gives this layer one kernel size
            return self._conv_with_kernel(x, self.kernel_options[0])
        if torch.compiler.is_compiling():
            # Grouping the batch by kernel size depends on the data (a graph break in every
            # layer, then one recompilation per layer until torch.compile gives up).  Compiled:
            # every kernel size over the whole batch, each image selecting its own -- more
            # arithmetic in the (cheap, depthwise) superkernel layers, one static graph.
            y = self._conv_with_kernel(x, self.kernel_options[0])
            for k in self.kernel_options[1:]:
                y = torch.where((kernels == k)[:, None, None, None], self._conv_with_kernel(x, k), y)
            return y
        values = torch.unique(kernels).tolist()
        if len(values) == 1:
            return self._conv_with_kernel(x, int(values[0]))
        # Group the batch by kernel size, run each group with its centre-cropped kernel and put
        # the images back in order.
        groups = [torch.nonzero(kernels == k).flatten() for k in values]
        parts = [self._conv_with_kernel(x[idx], int(k)) for idx, k in zip(groups, values, strict=True)]
        order = torch.argsort(torch.cat(groups))
        return torch.cat(parts)[order]

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice, limits: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``limits``: optional (B,) per-image bypass limits replacing ``T`` (at most the input
        width; a removed MobileNetV1 pair passes its whole input through both layers)."""
        # One convolution over the whole batch can take the bypass's input gradient itself.
        single = self.index is None or len(self.kernel_options) == 1
        link = bypass_link(x, self.act, self.limit if limits is None else self.in_channels) if single else None
        if self.index is None:
            filters = torch.full_like(width, self.filters)
            y = self._conv_with_kernel(x, self.kernel, link)
        elif single:
            filters = choice.filters[:, self.index]
            y = self._conv_with_kernel(x, self.kernel_options[0], link)
        else:
            filters = choice.filters[:, self.index]
            y = self._conv_per_image_kernel(x, choice.kernels[:, self.index])
        if self.depthwise:
            filters = torch.minimum(filters, width)  # filter i needs input channel i
        if self.bn is not None:
            y = grouped_batch_norm(self.bn, y, choice.groups)
        # activation, then the ordered-dropout mask and the bypass (one autograd node in eager mode)
        if limits is None:
            out = activate_and_mix(y, x, filters, self.limit, self.stride, self.act, link=link)
            if self.limit == 0:
                return out, filters
            return out, torch.maximum(torch.clamp(width, max=self.limit), filters)
        out = activate_and_mix(y, x, filters, self.in_channels, self.stride, self.act, limits, link)
        return out, torch.maximum(torch.minimum(width, limits), filters)

    # -- shape and cost tracing --------------------------------------------------------------
    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        """Output width for an input of ``width`` active channels; appends this layer's cost."""
        if self.index is None:
            m, k = self.filters, self.kernel
        else:
            m, k = arch.filters[self.index], arch.kernels[self.index]
        key = (width, m, k)
        cost = self._trace_cache.get(key)
        if cost is None:  # the search asks for the same few shapes many times: memoize
            cost = self._trace_cache[key] = self._cost(width, m, k)
        if costs is not None:
            costs.append(cost)
        return cost.out_channels

    def _cost(self, width: int, m: int, k: int) -> LayerCost:
        if self.depthwise:
            m = min(m, width)  # filter i needs input channel i
        limit = width if self.bypass is None else min(self.bypass, width)
        out = max(limit, m)  # Z = max(min(C, T), M), paper §2.2
        per_filter = k * k * (1 if self.depthwise else width)
        size = _conv_out_size(self.in_size, self.stride)
        params = m * per_filter + (m if self.has_bias else 0) + (2 * m if self.norm_layer is not None else 0)
        kind = "depthwise" if self.depthwise else "conv"
        return LayerCost(self.name, kind, width, m, k, self.stride, self.in_size, out, m * per_filter * size * size, params)

    # -- extraction --------------------------------------------------------------------------
    def shrink(self, in_channels: int, filters: int, kernel: int) -> ElasticConv:
        """A new layer of the given size holding this layer's sliced weights."""
        if self.depthwise:
            filters = min(filters, in_channels)
        small = ElasticConv(
            self.name,
            in_channels,
            filters,
            kernel,
            in_size=self.in_size,
            stride=self.stride,
            depthwise=self.depthwise,
            bypass=self.bypass,
            norm_layer=self.norm_layer,
            act_layer=self.act_layer,
            bias=self.has_bias,
        )
        if small.conv is not None:
            with torch.no_grad():
                small.conv.weight.copy_(
                    slice_conv_weight(self.conv.weight, filters, None if self.depthwise else in_channels, kernel)
                )
                if small.conv.bias is not None:
                    small.conv.bias.copy_(slice_vector(self.conv.bias, filters))
            if small.bn is not None:
                copy_norm_(small.bn, self.bn, filters)
        return small.train(self.training)

    def implant_(self, small: ElasticConv) -> None:
        """Write the weights of ``small`` (made by :meth:`shrink`) back into this layer's slices:
        the inverse of extraction, through the same slicing functions (views of the full tensors)."""
        if small.conv is None:
            return
        in_channels = None if self.depthwise else small.in_channels
        with torch.no_grad():
            slice_conv_weight(self.conv.weight, small.filters, in_channels, small.kernel).copy_(small.conv.weight)
            if small.conv.bias is not None:
                slice_vector(self.conv.bias, small.filters).copy_(small.conv.bias)
        if small.bn is not None:
            implant_norm_(self.bn, small.bn, small.filters)

    def extra_repr(self) -> str:
        t = "inf" if self.bypass is None else self.bypass
        return f"name={self.name}, in={self.in_channels}, filters={self.filters}, out={self.out_channels}, T={t}"


def copy_norm_(dst: nn.Module, src: nn.Module, size: int) -> None:
    """Copy the first ``size`` channels of a BatchNorm's parameters and statistics."""
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            d, s = getattr(dst, name, None), getattr(src, name, None)
            if d is not None and s is not None:
                d.copy_(slice_vector(s, size))
        if getattr(src, "num_batches_tracked", None) is not None:
            dst.num_batches_tracked.copy_(src.num_batches_tracked)


def implant_norm_(dst: nn.Module, src: nn.Module, size: int) -> None:
    """Write a small BatchNorm's parameters and statistics into the first ``size`` channels of ``dst``."""
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            d, s = getattr(dst, name, None), getattr(src, name, None)
            if d is not None and s is not None:
                slice_vector(d, size).copy_(s)
        if getattr(src, "num_batches_tracked", None) is not None:
            dst.num_batches_tracked.copy_(src.num_batches_tracked)


class SqueezeExcite(nn.Module):
    """Squeeze-excitation with an elastic hidden width; width 0 removes the module.

    Layout follows torchvision's MobileNetV3: average pool → 1x1 conv (bias) → ReLU → 1x1 conv
    (bias) → h-sigmoid gate.  The gate maps 0 to 0.5, so a removed SE is not "hidden channels
    zeroed" but "scale = 1"; the masked forward selects that per image.
    """

    def __init__(
        self,
        name: str,
        channels: int,
        hidden: int,
        *,
        index: int | None = None,
        act_layer: ModuleFactory = nn.ReLU,
        gate_layer: ModuleFactory = nn.Hardsigmoid,
    ) -> None:
        super().__init__()
        self.name = name
        self.channels = channels
        self.hidden = hidden
        self.index = index
        self.act_layer = act_layer
        self.gate_layer = gate_layer
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = gate_layer()

    def _scale(self, x: Tensor) -> Tensor:
        return self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))

    def forward(self, x: Tensor) -> Tensor:
        return x * self._scale(x)

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice) -> tuple[Tensor, Tensor]:
        hidden = choice.filters[:, self.index] if self.index is not None else torch.full_like(width, self.hidden)
        h = self.act(self.fc1(F.adaptive_avg_pool2d(x, 1))) * prefix_mask(hidden, self.hidden)  # (B, S, 1, 1)
        scale = self.gate(self.fc2(h))  # (B, C, 1, 1)
        scale = torch.where((hidden > 0)[:, None, None, None], scale, torch.ones_like(scale))
        return x * scale, width

    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        if costs is not None:
            s = arch.filters[self.index] if self.index is not None else self.hidden
            macs = 2 * width * s  # squeeze and excite 1x1 convolutions on the pooled vector
            params = (2 * width * s + s + width) if s else 0
            costs.append(LayerCost(self.name, "se", width, s, 1, 1, 1, width, macs, params))
        return width

    def shrink(self, channels: int, hidden: int) -> SqueezeExcite | None:
        """A new module of the given size with sliced weights, or ``None`` when removed."""
        if hidden == 0:
            return None
        small = SqueezeExcite(self.name, channels, hidden, act_layer=self.act_layer, gate_layer=self.gate_layer)
        with torch.no_grad():
            small.fc1.weight.copy_(slice_conv_weight(self.fc1.weight, hidden, channels, 1))
            small.fc1.bias.copy_(slice_vector(self.fc1.bias, hidden))
            small.fc2.weight.copy_(slice_conv_weight(self.fc2.weight, channels, hidden, 1))
            small.fc2.bias.copy_(slice_vector(self.fc2.bias, channels))
        return small.train(self.training)

    def implant_(self, small: SqueezeExcite) -> None:
        """Write the weights of ``small`` (made by :meth:`shrink`) back into this module's slices."""
        channels, hidden = small.channels, small.hidden
        with torch.no_grad():
            slice_conv_weight(self.fc1.weight, hidden, channels, 1).copy_(small.fc1.weight)
            slice_vector(self.fc1.bias, hidden).copy_(small.fc1.bias)
            slice_conv_weight(self.fc2.weight, channels, hidden, 1).copy_(small.fc2.weight)
            slice_vector(self.fc2.bias, channels).copy_(small.fc2.bias)
