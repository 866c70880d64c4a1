"""The ordered-dropout tail of an elastic layer -- activation, ordered-dropout mask, channel-level
bypass -- as one hand-written autograd function for eager training.

The reference definition is the composition ``act(z)`` followed by
:func:`~netadapt.model.slicing.bypass_mix` (or a prefix-mask multiply for a layer without
bypass).  Composed from autograd operations it costs a training step on the CPU about a third
more than plain training of the same network (``benchmarks/bench_train_step.py``): every layer
adds a full-size mixed copy of its activation, kept alive for the backward pass next to the
activation's own output, two full-size gradients from ``lerp``, a zero-padded copy of the bypass
and a strided ``lerp`` the CPU kernels cannot vectorize.  :func:`activate_and_mix` computes the
same values (exactly: every selection is by 0/1 weights) with the mix written in place into the
activation's output, so that a layer keeps no more memory for its backward pass than in plain
training, and a backward that applies the activation's derivative and the mask together.
``tests/test_fused.py`` checks it against the reference, forward and gradients.

Under ``torch.compile`` the reference composition runs instead: the compiler fuses it itself,
and it traces into one graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.model.slicing import bypass_mix, bypass_slice, prefix_mask

__all__ = [
    "FUSED_ACTIVATIONS",
    "BypassLink",
    "activate_and_mix",
    "bypass_link",
    "conv2d_linked",
    "reference_activate_and_mix",
]

aten = torch.ops.aten

#: Activation modules the fused function knows (by exact type), with the name it uses for them.
FUSED_ACTIVATIONS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hardswish"}


def reference_activate_and_mix(
    z: Tensor,
    x: Tensor,
    filters: Tensor,
    limit: int,
    stride: int,
    act: nn.Module | None,
    limits: Tensor | None = None,
) -> Tensor:
    """The definition: ``act(z)`` with the last channels of every image zeroed (``limit == 0``)
    or mixed with the bypassed input (:func:`~netadapt.model.slicing.bypass_mix`).

    ``z``: (B, F, H', W') the normalized convolution output; ``x``: (B, C, H, W) the layer input;
    ``filters``: (B,) filters kept per image; ``limits``: optional (B,) per-image bypass limits,
    each at most ``limit``.
    """
    y = act(z) if act is not None else z
    # Ordered dropout zeroes the last channels *after* BN and activation, where zero stays zero
    # whatever BN's bias or the activation maps 0 to.
    if limit == 0:
        return y * prefix_mask(filters, y.shape[1]).to(y.dtype)
    return bypass_mix(y, x, filters, limit, stride, limits)


class BypassLink:
    """Hands the bypass's gradient from a layer's activate-and-mix node to its convolution node.

    The layer input ``x`` feeds both the convolution and the bypass, so autograd would add two
    full-size input gradients, the bypass's zero everywhere but in the passed channels (and, for
    a strided layer, pixels).  Linked, the convolution's backward adds the bypass's share in
    place into its own input gradient, over the passed channels and pixels only.  One link per
    layer call; nothing outlives the backward pass.
    """

    __slots__ = ("grads",)

    def __init__(self) -> None:
        self.grads: list[tuple[Tensor, Tensor]] = []  # (output gradient's passed channels, bypass weight)


def bypass_link(x: Tensor, act: nn.Module | None, limit: int) -> BypassLink | None:
    """A :class:`BypassLink` for a layer whose eager fused forward can use one, else ``None``
    (compiled, no gradient wanted, autocast -- the convolution would run in another dtype than
    its saved input --, no bypass, or an activation the fused function does not know)."""
    if limit == 0 or torch.compiler.is_compiling() or not (torch.is_grad_enabled() and x.requires_grad):
        return None
    if (act is not None and type(act) not in FUSED_ACTIVATIONS) or torch.is_autocast_enabled(x.device.type):
        return None
    return BypassLink()


def conv2d_linked(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, groups: int, link: BypassLink | None
) -> Tensor:
    """``F.conv2d`` whose input gradient also takes the bypass gradients handed over by ``link``."""
    if link is None:
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)
    return _ConvLinked.apply(x, weight, bias, stride, padding, groups, link)


class _ConvLinked(torch.autograd.Function):
    """A convolution (dilation 1) with the backward of ``aten.convolution_backward``, plus the
    linked bypass gradients added into the input gradient's passed channels and pixels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int, groups: int, link: BypassLink
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.groups, ctx.has_bias, ctx.link = stride, padding, groups, bias is not None, link
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, weight = ctx.saved_tensors
        s, p = ctx.stride, ctx.padding
        needs = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2]]
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None
        grad_x, grad_w, grad_b = aten.convolution_backward(
            grad, x, weight, bias_sizes, [s, s], [p, p], [1, 1], False, [0, 0], ctx.groups, needs
        )
        if grad_x is not None:
            for head, bypassed in ctx.link.grads:  # (B, passed, H', W'), (B, passed, 1, 1)
                bypass_slice(grad_x, 0, head.shape[1], s).addcmul_(head, bypassed)
        ctx.link.grads.clear()
        return grad_x, grad_w, grad_b, None, None, None, None


def activate_and_mix(
    z: Tensor,
    x: Tensor,
    filters: Tensor,
    limit: int,
    stride: int,
    act: nn.Module | None,
    limits: Tensor | None = None,
    link: BypassLink | None = None,
) -> Tensor:
    """:func:`reference_activate_and_mix`, computed by :class:`_ActivateMix` in eager mode for the
    activations it knows (ReLU, ReLU6, hard-swish, none), by the reference otherwise.  With a
    ``link`` (from :func:`bypass_link`, given to the layer's :func:`conv2d_linked` too), the
    bypass's gradient goes to the convolution node instead of to ``x``."""
    kind = "identity" if act is None else FUSED_ACTIVATIONS.get(type(act))
    if kind is None or torch.compiler.is_compiling():
        return reference_activate_and_mix(z, x, filters, limit, stride, act, limits)
    channels = z.shape[1]
    keep = prefix_mask(filters, channels).to(z.dtype)  # conv path, (B, F, 1, 1)
    # Input channels the bypass passes: at most the limit, the input's and the layer's widths
    # (as bypass_mix: channels beyond them are never passed).
    passed = min(limit, x.shape[1], channels)
    bypassed = None  # (B, passed, 1, 1): the bypass's weight
    if passed:
        bypassed = 1 - (keep if passed == channels else keep[:, :passed])
        if limits is not None:
            bypassed = bypassed * prefix_mask(limits, passed).to(z.dtype)
    return _ActivateMix.apply(z, x, keep, bypassed, passed, stride, kind, limits is not None, link)


def _activate(z: Tensor, kind: str) -> Tensor:
    if kind == "relu":
        return torch.relu(z)
    if kind == "relu6":
        return F.hardtanh(z, 0.0, 6.0)  # nn.ReLU6
    return F.hardswish(z)


class _ActivateMix(torch.autograd.Function):
    """Activation, ordered-dropout mask and bypass in one autograd node.

    Forward: the activation (out of place, as in plain training), then the mask and the bypass in
    place: channels below ``passed`` by ``lerp`` towards the bypass with weight ``bypassed`` =
    ``1 - keep`` (or, with per-image limits, masked by ``keep`` plus the bypass times
    ``bypassed``), the others multiplied by ``keep``.  Saved for backward: the (B, F, 1, 1)
    weights and the output (ReLU, ReLU6: where ``keep`` = 1 it is the activation's output and
    says where the derivative is 1, where ``keep`` = 0 the gradient is masked anyway; the next
    layer keeps it alive in any case) or ``z`` (hard-swish).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        z: Tensor,
        x: Tensor,
        keep: Tensor,
        bypassed: Tensor | None,
        passed: int,
        stride: int,
        kind: str,
        per_image_limits: bool,
        link: BypassLink | None,
    ) -> Tensor:
        channels = z.shape[1]
        if kind == "identity":
            out = torch.mul(z, keep) if not passed or per_image_limits else torch.empty_like(z)
        else:
            out = _activate(z, kind)
            if not passed or per_image_limits:
                out.mul_(keep)
        if passed:
            bypass = bypass_slice(x, 0, passed, stride)  # (B, passed, H', W')
            if stride > 1:  # a strided view defeats the vectorized CPU kernels; a compact copy is cheaper
                bypass = bypass.contiguous()
            if bypass.dtype != z.dtype:  # autocast: the stem's fp32 image under a bf16 convolution
                bypass = bypass.to(z.dtype)
            head = out if passed == channels else out[:, :passed]
            if per_image_limits:
                head.addcmul_(bypass, bypassed)  # exact: adds 0, or the bypass to 0
            else:
                # lerp with weight 0 is `start + 0 * diff` and with weight 1 `end - diff * 0`: exact
                if kind == "identity":
                    torch.lerp(z if passed == channels else z[:, :passed], bypass, bypassed, out=head)
                else:
                    head.lerp_(bypass, bypassed)
                if passed < channels:
                    rest = out[:, passed:]
                    if kind == "identity":
                        torch.mul(z[:, passed:], keep[:, passed:], out=rest)
                    else:
                        rest.mul_(keep[:, passed:])
        ctx.save_for_backward(keep, bypassed, z if kind == "hardswish" else out if kind != "identity" else None)
        ctx.passed, ctx.stride, ctx.kind, ctx.x_shape, ctx.x_dtype = passed, stride, kind, x.shape, x.dtype
        ctx.link = link
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        keep, bypassed, saved = ctx.saved_tensors
        passed, stride, kind = ctx.passed, ctx.stride, ctx.kind
        grad_z = grad_x = None
        needs_z, needs_x = ctx.needs_input_grad[:2]
        if needs_z and kind in ("relu", "relu6"):
            # Beyond the passed channels the saved output is 0 wherever ``keep`` is 0, so the
            # activation's own backward zeroes the dropped channels there: the mask multiplies the
            # passed channels only (an expansion layer's few of many; all of a depthwise layer's,
            # as many passes as masking first).  Exact: masking before or after selects the same values.
            relu = kind == "relu"
            grad_z = aten.threshold_backward(grad, saved, 0) if relu else aten.hardtanh_backward(grad, saved, 0.0, 6.0)
            if passed:
                grad_z[:, :passed].mul_(keep[:, :passed])
        elif needs_z:
            grad_z = grad * keep  # (B, F, H', W')
            if kind == "hardswish":
                grad_z = aten.hardswish_backward(grad_z, saved)
        if passed and ctx.link is not None:  # the convolution adds it into its input gradient
            ctx.link.grads.append((grad if passed == grad.shape[1] else grad[:, :passed], bypassed))
        elif passed and needs_x:
            head = grad if passed == grad.shape[1] else grad[:, :passed]
            if passed == ctx.x_shape[1] and stride == 1:  # the bypass is the whole input
                grad_x = (head * bypassed).to(ctx.x_dtype)
            else:  # zero except at the passed channels (and pixels, for a strided layer)
                grad_x = grad.new_zeros(ctx.x_shape, dtype=ctx.x_dtype)
                into = bypass_slice(grad_x, 0, passed, stride)  # (B, passed, H', W') view
                if grad.dtype == ctx.x_dtype:
                    torch.mul(head, bypassed, out=into)
                else:
                    into.copy_(head * bypassed)
        return grad_z, grad_x, None, None, None, None, None, None, None
