"""Pure slicing functions shared by the elastic forward pass and extraction.

Parameters are allocated at the super-network's full size; a sub-network uses the *first*
filters and input channels of every layer (ordered dropout always removes the last filters,
paper §2.3) and the centre of every superkernel.  The same functions compute the masks of the
elastic forward pass and slice the weights copied into an extracted network, so the two cannot
drift apart.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bypass_mix",
    "bypass_slice",
    "crop_kernel",
    "fit_channels",
    "fit_layout",
    "layout_mask",
    "layout_ranges",
    "pad_add",
    "prefix_mask",
    "put_channels_",
    "slice_conv_weight",
    "slice_vector",
    "take_channels",
]


def prefix_mask(widths: Tensor, channels: int) -> Tensor:
    """Per-image masks keeping the first ``widths[b]`` of ``channels`` channels.

    ``widths``: (B,) integer tensor.  Returns a (B, channels, 1, 1) bool tensor.
    """
    index = torch.arange(channels, device=widths.device).view(1, channels, 1, 1)  # (1, C, 1, 1)
    return index < widths.view(-1, 1, 1, 1)  # (B, C, 1, 1); views, not indexing: this runs in every layer


def crop_kernel(weight: Tensor, kernel: int) -> Tensor:
    """Centre ``kernel``×``kernel`` crop of a (O, I, K, K) weight: the nested superkernel."""
    full = weight.shape[-1]
    if kernel == full:  # every layer of every ordered-dropout step asks: skip the four slices
        return weight
    if kernel > full or (full - kernel) % 2:
        raise ValueError(f"cannot crop a {full}x{full} kernel to {kernel}x{kernel}")
    start = (full - kernel) // 2
    return weight[:, :, start : start + kernel, start : start + kernel]


def slice_conv_weight(weight: Tensor, out_channels: int, in_channels: int | None, kernel: int) -> Tensor:
    """First ``out_channels`` filters over the first ``in_channels`` inputs, kernel centre-cropped.

    ``in_channels=None`` keeps the weight's input dimension (depthwise weights have one input
    channel per filter).
    """
    w = weight[:out_channels] if in_channels is None else weight[:out_channels, :in_channels]
    return crop_kernel(w, kernel)


def slice_vector(vector: Tensor | None, size: int) -> Tensor | None:
    """First ``size`` entries of a per-channel vector (bias, BatchNorm parameters and statistics)."""
    return None if vector is None else vector[:size]


def fit_channels(x: Tensor, channels: int) -> Tensor:
    """Zero-pad or truncate the channel dimension of (B, C, H, W) or (B, C) ``x`` to ``channels``."""
    c = x.shape[1]
    if c == channels:
        return x
    if c > channels:
        return x[:, :channels]
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, channels - c))


def pad_add(a: Tensor, b: Tensor) -> Tensor:
    """Residual addition of two maps of different widths: the narrower is zero-padded."""
    channels = max(a.shape[1], b.shape[1])
    return fit_channels(a, channels) + fit_channels(b, channels)


def bypass_slice(x: Tensor, start: int, stop: int, stride: int) -> Tensor:
    """Input channels ``start..stop`` passed through a layer of the given stride.

    A strided layer's bypass takes every ``stride``-th pixel: the centre of each window of a
    ``k//2``-padded convolution, so the bypassed map has the layer's output resolution.
    """
    return x[:, start:stop, ::stride, ::stride]


def bypass_mix(conv_out: Tensor, x: Tensor, filters: Tensor, limit: int, stride: int, limits: Tensor | None = None) -> Tensor:
    """Channel-level bypass under ordered dropout (paper §2.2, Fig. 5).

    Output channel ``j`` of image ``b`` is the convolution path's channel when
    ``j < filters[b]``, the (strided) input channel ``j`` when ``filters[b] <= j < limit``, and
    zero otherwise.  Input channels beyond the image's own width are already zero, so this is
    ``Z = max(min(C, T), M)`` per image.  ``conv_out``: (B, F, H', W'); ``x``: (B, C, H, W).
    ``limits``: (B,) per-image limits, each at most ``limit``, replacing it (a removed block's
    layers pass their whole input).
    """
    channels = conv_out.shape[1]
    # Input channels at or beyond the limit are never passed: cut them before padding, so one
    # select does the whole mix (this runs after every layer of every training step).
    # Under autocast the convolution path is bf16/fp16 while the input may still be fp32 (the
    # image at the stem): the bypass takes the convolution's dtype, as lerp needs one dtype.
    bypass = fit_channels(bypass_slice(x, 0, min(limit, x.shape[1]), stride), channels).to(conv_out.dtype)  # (B, F, H', W')
    if limits is not None:
        bypass = bypass * prefix_mask(limits, channels).to(conv_out.dtype)
    keep = prefix_mask(filters, channels).to(conv_out.dtype)  # conv path, (B, F, 1, 1)
    # lerp with 0/1 weights selects exactly (it computes `end - diff * 0` for weight 1 and
    # `start + weight * diff` for weight 0) and is one fused op: ~1.5x faster than where() on CPU.
    return torch.lerp(bypass, conv_out, keep)


# -- channel layouts -------------------------------------------------------------------------
# A traced network's tensors may be concatenations of several independently pruned parts
# (``torch.cat`` of two branches): a *layout* lists the full size of every part, and a
# sub-network keeps a prefix of each part.  These functions generalise the prefix functions
# above to layouts; with one part they reduce to them.


def layout_ranges(sizes: tuple[int, ...], widths: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The channel ranges ``[start, stop)`` a sub-network keeps: a prefix of every part."""
    ranges, offset = [], 0
    for size, width in zip(sizes, widths, strict=True):
        if width:
            ranges.append((offset, offset + width))
        offset += size
    return tuple(ranges)


def layout_mask(widths: tuple[Tensor | None, ...], sizes: tuple[int, ...], ndim: int) -> Tensor:
    """Per-image masks of a layout: part ``i`` keeps its first ``widths[i][b]`` channels
    (``None``: the whole part).  Returns a (B, C, 1, 1) or (B, C) bool tensor for ``ndim`` 4 or 2."""
    batch = next(w for w in widths if w is not None)
    if len(sizes) == 1:
        mask = prefix_mask(batch, sizes[0])  # (B, C, 1, 1)
        return mask if ndim == 4 else mask[:, :, 0, 0]
    parts = [
        prefix_mask(w, size)[:, :, 0, 0]
        if w is not None
        else torch.ones(batch.shape[0], size, dtype=torch.bool, device=batch.device)
        for w, size in zip(widths, sizes, strict=True)
    ]
    mask = parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # (B, C)
    return mask if ndim == 2 else mask[:, :, None, None]


def take_channels(tensor: Tensor, dim: int, ranges: tuple[tuple[int, int], ...]) -> Tensor:
    """The channels ``ranges`` of ``tensor`` along ``dim`` (a view for a single range)."""
    if len(ranges) == 1:
        start, stop = ranges[0]
        return tensor.narrow(dim, start, stop - start)
    if not ranges:
        return tensor.narrow(dim, 0, 0)
    return torch.cat([tensor.narrow(dim, a, b - a) for a, b in ranges], dim)


def put_channels_(tensor: Tensor, dim: int, ranges: tuple[tuple[int, int], ...], value: Tensor) -> None:
    """Write ``value`` into the channels ``ranges`` of ``tensor``: the inverse of :func:`take_channels`."""
    offset = 0
    for a, b in ranges:
        tensor.narrow(dim, a, b - a).copy_(value.narrow(dim, offset, b - a))
        offset += b - a


def fit_layout(x: Tensor, widths: tuple[int, ...], targets: tuple[int, ...]) -> Tensor:
    """Zero-pad every part of ``x`` (kept widths ``widths``) to the widths ``targets``: the
    operand of a residual sum whose other operand keeps more channels of some part."""
    if len(widths) == 1:
        return fit_channels(x, targets[0])
    parts = torch.split(x, list(widths), 1)
    return torch.cat([fit_channels(p, t) for p, t in zip(parts, targets, strict=True)], 1)
