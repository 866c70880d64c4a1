"""Blocks made of elastic layers: inverted residuals, depthwise-separable pairs, the FastDepth
decoder stage and the classification head.

Every block offers the same four operations, each a few lines over its layers:
``forward(x)`` at its own size, ``forward_masked(x, width, choice)`` for per-image
sub-networks, ``trace(width, arch, costs)`` for integer shapes and costs, and
``extract(width, arch)`` returning the block built at the sub-network's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.model.layers import ArchView, Choice, ElasticConv, LayerCost, SqueezeExcite
from netadapt.model.slicing import pad_add, slice_conv_weight, slice_vector

__all__ = ["ClassifierHead", "ConvBlock", "DecoderStage", "InvertedResidual", "Sequential"]


def chosen(layer: ElasticConv, arch: ArchView) -> tuple[int, int]:
    """(filters, kernel) of ``layer`` in ``arch``; a fixed layer keeps its own size."""
    if layer.index is None:
        return layer.filters, layer.kernel
    return arch.filters[layer.index], arch.kernels[layer.index]


def extract_layer(layer: ElasticConv, width: int, arch: ArchView) -> ElasticConv:
    return layer.shrink(width, *chosen(layer, arch))


def removal_indices(layers: list[ElasticConv]) -> tuple[int, ...] | None:
    """Search-space indices of a removable block's convolutions (``None`` if one is fixed)."""
    indices = tuple(layer.index for layer in layers)
    return None if any(i is None for i in indices) else indices  # type: ignore[return-value]


def is_removed(indices: tuple[int, ...] | None, arch: ArchView) -> bool:
    """Whether ``arch`` removes the block whose convolutions are ``indices``: all keep 0 filters."""
    return indices is not None and all(arch.filters[i] == 0 for i in indices)


def removed_rows(indices: tuple[int, ...] | None, choice: Choice) -> Tensor | None:
    """(B,) bool: the images whose sub-network removes the block (``None``: never removable)."""
    if indices is None:
        return None
    return (choice.filters[:, list(indices)] == 0).all(1)


def skip_removed(gone: Tensor | None, x: Tensor, width: Tensor, y: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """A residual block's output per image, ``(y + x, max(w, width))``, or its input ``(x,
    width)`` where it is removed: a removed block computes exactly its input (and its extracted
    network has no operation).  The narrower sub-network is zero beyond its width."""
    w = w.maximum(width)
    if gone is None:
        return y + x, w
    kept = (~gone).to(y.dtype)[:, None, None, None]  # (B, 1, 1, 1)
    # `x + y * 0` is exactly x: the selection rides on the residual addition's one pass over the
    # activation (torch.where with a broadcast bool mask is several times slower on the CPU).
    return torch.addcmul(x, y, kept), torch.where(gone, width, w)


def removed_costs(layers: list[nn.Module], width: int, costs: list[LayerCost] | None) -> int:
    """Zero-cost rows for the layers of a removed block (listed with 0 filters); its output is its input."""
    if costs is not None:
        for layer in layers:
            kind = "se" if isinstance(layer, SqueezeExcite) else ("depthwise" if layer.depthwise else "conv")
            kernel, stride, size = (1, 1, 1) if kind == "se" else (layer.kernel, layer.stride, layer.in_size)
            costs.append(LayerCost(layer.name, kind, width, 0, kernel, stride, size, width, 0, 0))
    return width


class ConvBlock(nn.Module):
    """A single elastic convolution used as a block (stem, last conv, FastDepth's final layer)."""

    kind = "conv"

    def __init__(self, conv: ElasticConv) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice) -> tuple[Tensor, Tensor]:
        return self.conv.forward_masked(x, width, choice)

    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        return self.conv.trace(width, arch, costs)

    def extract(self, width: int, arch: ArchView) -> ConvBlock:
        return ConvBlock(extract_layer(self.conv, width, arch))

    def implant_(self, small: ConvBlock) -> None:
        self.conv.implant_(small.conv)


class Sequential(nn.Module):
    """Elastic layers in a chain: MobileNetV1's depthwise-separable pair.

    ``removable``: the pair keeps its input's width and resolution, so when all its layers keep
    0 filters it is removed and computes exactly its input (the search space's ``removal:
    block``); otherwise a layer with 0 filters is a channel-level bypass (paper §2.2).
    """

    kind = "ds"

    def __init__(self, *layers: ElasticConv, removable: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.removable = removable
        self.removal = removal_indices(list(layers)) if removable else None

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice) -> tuple[Tensor, Tensor]:
        gone = removed_rows(self.removal, choice)
        for layer in self.layers:
            # A removed pair keeps 0 filters in both layers; passing the whole input through
            # both bypasses (stride 1, as the pair keeps its input's resolution) it computes
            # exactly its input, with no pass over the activations to select it.  (A layer whose
            # bypass passes every input channel anyway, the depthwise one, needs no override.)
            limits = None
            if gone is not None and layer.limit < layer.in_channels:
                limits = torch.where(gone, layer.in_channels, layer.limit)  # (B,)
            x, width = layer.forward_masked(x, width, choice, limits)
        return x, width

    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        if is_removed(self.removal, arch):
            return removed_costs(list(self.layers), width, costs)
        for layer in self.layers:
            width = layer.trace(width, arch, costs)
        return width

    def extract(self, width: int, arch: ArchView) -> nn.Module:
        if is_removed(self.removal, arch):
            return nn.Identity()
        layers = []
        for layer in self.layers:
            layers.append(extract_layer(layer, width, arch))
            width = layer.trace(width, arch, None)
        return Sequential(*layers)

    def implant_(self, small: nn.Module) -> None:
        if isinstance(small, Sequential):  # a removed pair (nn.Identity) has no weights
            for layer, part in zip(self.layers, small.layers, strict=True):
                layer.implant_(part)


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: expansion → depthwise → squeeze-excitation → projection.

    With a residual connection the block output is the zero-padded sum of the projection and
    the block input, so the output width is the larger of the two.  When every convolution of a
    residual block keeps 0 filters the block is removed: it computes exactly its input and its
    extracted network has no operation (paper Table 8 block 12, Table 9 blocks 7, 8, 12, 15).
    """

    kind = "mnv3"

    def __init__(
        self,
        expand: ElasticConv | None,
        depthwise: ElasticConv,
        se: SqueezeExcite | None,
        project: ElasticConv,
        *,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.se = se
        self.project = project
        self.residual = residual
        convs = [m for m in (expand, depthwise, project) if m is not None]
        self.removal = removal_indices(convs) if residual else None

    def _layers(self) -> list[nn.Module]:
        # Read the registry directly: nn.Module.__getattr__ is slow, and the search traces every
        # block of every sample (MAC counting at > 10,000 architectures/s).
        m = self._modules
        return [x for x in (m.get("expand"), m["depthwise"], m.get("se"), m["project"]) if x is not None]

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for layer in self._layers():
            y = layer(y)
        return pad_add(y, x) if self.residual else y

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice) -> tuple[Tensor, Tensor]:
        y, w = x, width
        for layer in self._layers():
            y, w = layer.forward_masked(y, w, choice)
        if not self.residual:
            return y, w
        return skip_removed(removed_rows(self.removal, choice), x, width, y, w)

    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        if is_removed(self.removal, arch):
            return removed_costs(self._layers(), width, costs)
        w = width
        for layer in self._layers():
            w = layer.trace(w, arch, costs)
        return max(w, width) if self.residual else w

    def extract(self, width: int, arch: ArchView) -> nn.Module:
        if is_removed(self.removal, arch):
            return nn.Identity()
        w = width
        expand = se = None
        if self.expand is not None:
            expand = extract_layer(self.expand, w, arch)
            w = self.expand.trace(w, arch, None)
        depthwise = extract_layer(self.depthwise, w, arch)
        w = self.depthwise.trace(w, arch, None)
        if self.se is not None:
            se = self.se.shrink(w, chosen_se(self.se, arch))
        project = extract_layer(self.project, w, arch)
        return InvertedResidual(expand, depthwise, se, project, residual=self.residual)

    def implant_(self, small: nn.Module) -> None:
        if not isinstance(small, InvertedResidual):  # a removed block (nn.Identity) has no weights
            return
        if self.expand is not None:
            self.expand.implant_(small.expand)
        self.depthwise.implant_(small.depthwise)
        if self.se is not None and small.se is not None:
            self.se.implant_(small.se)
        self.project.implant_(small.project)


def chosen_se(se: SqueezeExcite, arch: ArchView) -> int:
    return se.hidden if se.index is None else arch.filters[se.index]


class DecoderStage(nn.Module):
    """FastDepth NNConv5 stage: 5x5 depthwise → pointwise → nearest-neighbour upsampling ×2."""

    kind = "decoder"

    def __init__(self, depthwise: ElasticConv, pointwise: ElasticConv, scale: int = 2) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.pointwise = pointwise
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.pointwise(self.depthwise(x)), scale_factor=self.scale, mode="nearest")

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice) -> tuple[Tensor, Tensor]:
        x, width = self.depthwise.forward_masked(x, width, choice)
        x, width = self.pointwise.forward_masked(x, width, choice)
        return F.interpolate(x, scale_factor=self.scale, mode="nearest"), width

    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        return self.pointwise.trace(self.depthwise.trace(width, arch, costs), arch, costs)

    def extract(self, width: int, arch: ArchView) -> DecoderStage:
        depthwise = extract_layer(self.depthwise, width, arch)
        pointwise = extract_layer(self.pointwise, self.depthwise.trace(width, arch, None), arch)
        return DecoderStage(depthwise, pointwise, self.scale)

    def implant_(self, small: DecoderStage) -> None:
        self.depthwise.implant_(small.depthwise)
        self.pointwise.implant_(small.pointwise)


class ClassifierHead(nn.Module):
    """Global average pool → optional elastic 1x1 hidden layer → dropout → linear classifier."""

    kind = "head"

    def __init__(self, hidden: ElasticConv | None, classifier: nn.Linear, dropout: float) -> None:
        super().__init__()
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier

    def _classify(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(x, 1)
        if self.hidden is not None:
            x = self.hidden(x)
        return self._classify(x)

    def forward_masked(self, x: Tensor, width: Tensor, choice: Choice) -> tuple[Tensor, Tensor]:
        x = F.adaptive_avg_pool2d(x, 1)
        if self.hidden is not None:
            x, width = self.hidden.forward_masked(x, width, choice)
        return self._classify(x), width

    def trace(self, width: int, arch: ArchView, costs: list[LayerCost] | None) -> int:
        if self.hidden is not None:
            width = self.hidden.trace(width, arch, costs)
        n = self.classifier.out_features
        if costs is not None:
            costs.append(LayerCost("head.classifier", "linear", width, n, 1, 1, 1, n, width * n, width * n + n))
        return n

    def extract(self, width: int, arch: ArchView) -> ClassifierHead:
        hidden = None
        if self.hidden is not None:
            hidden = extract_layer(self.hidden, width, arch)
            width = self.hidden.trace(width, arch, None)
        classifier = nn.Linear(width, self.classifier.out_features)
        weight = slice_conv_weight(self.classifier.weight[:, :, None, None], self.classifier.out_features, width, 1)
        classifier.weight.data.copy_(weight[:, :, 0, 0])
        classifier.bias.data.copy_(slice_vector(self.classifier.bias, self.classifier.out_features))
        return ClassifierHead(hidden, classifier, self.dropout.p)

    def implant_(self, small: ClassifierHead) -> None:
        if self.hidden is not None:
            self.hidden.implant_(small.hidden)
        width = small.classifier.in_features
        with torch.no_grad():
            slice_conv_weight(self.classifier.weight[:, :, None, None], self.classifier.out_features, width, 1)[:, :, 0, 0].copy_(
                small.classifier.weight
            )
            self.classifier.bias.copy_(small.classifier.bias)
