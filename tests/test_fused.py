"""The fused ordered-dropout tail (activation, mask, bypass) equals its reference composition,
forward and backward, and keeps no more memory for the backward pass than plain training."""

import pytest
import torch
from torch import nn

import netadapt
from netadapt.model.fused import activate_and_mix, reference_activate_and_mix
from netadapt.train import OrderedDropoutSampler

ACTIVATIONS = [nn.ReLU(), nn.ReLU6(), nn.Hardswish(), None]


def _run(fn, z, x, filters, limit, stride, act, limits, grad):
    z = z.detach().requires_grad_()
    x = x.detach().requires_grad_()
    out = fn(z, x, filters, limit, stride, act, limits)
    out.backward(grad)
    return out.detach(), z.grad, x.grad


# (input channels C, filters F, bypass limit T, stride): the whole input passed (depthwise), a
# few channels passed into a wider layer (pointwise), a layer narrower than its input, no bypass
SHAPES = [(16, 16, 16, 1), (16, 16, 16, 2), (8, 24, 4, 1), (8, 24, 4, 2), (24, 8, 8, 1), (12, 20, 0, 1), (12, 20, 0, 2)]


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("c, f, limit, stride", SHAPES)
@pytest.mark.parametrize("per_image_limits", [False, True])
def test_fused_equals_reference(act, c, f, limit, stride, per_image_limits):
    gen = torch.Generator().manual_seed(c * f + limit + stride)
    b, size = 7, 6
    z = torch.randn(b, f, size, size, generator=gen) * 4  # reaches both sides of ReLU6 and hard-swish
    x = torch.randn(b, c, size * stride, size * stride, generator=gen)
    filters = torch.tensor([0, 1, f // 2, f, f, 3, 0])[:b].clamp(max=f)
    limits = None
    if per_image_limits:  # a removed block's layers pass their whole input; others keep T
        limit = c
        limits = torch.tensor([c, 0, c // 2, c, 0, 1, c])
    grad = torch.randn(b, f, size, size, generator=gen)
    ref = _run(reference_activate_and_mix, z, x, filters, limit, stride, act, limits, grad)
    got = _run(activate_and_mix, z, x, filters, limit, stride, act, limits, grad)
    if limit == 0:  # no bypass: the input gets no gradient through this path
        assert ref[2] is None and got[2] is None
        ref, got = ref[:2], got[:2]
    for r, g, what in zip(ref, got, ("output", "grad z", "grad x"), strict=False):
        assert torch.equal(r, g), what  # 0/1 selections: exact, not merely close


def test_fused_under_bf16_autocast_with_an_fp32_input():
    """The stem: an fp32 image bypassed into a bf16 convolution path; the image's gradient stays fp32."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 16, 8, 8, generator=gen).bfloat16()
    x = torch.randn(4, 3, 8, 8, generator=gen)
    filters = torch.tensor([0, 2, 8, 16])
    grad = torch.randn(4, 16, 8, 8, generator=gen).bfloat16()
    ref = _run(reference_activate_and_mix, z, x, filters, 3, 1, nn.Hardswish(), None, grad)
    got = _run(activate_and_mix, z, x, filters, 3, 1, nn.Hardswish(), None, grad)
    assert got[0].dtype == torch.bfloat16 and got[2].dtype == torch.float32
    for r, g in zip(ref, got, strict=True):
        assert torch.equal(r, g)


def test_unknown_activations_take_the_reference_path():
    z, x = torch.randn(2, 4, 3, 3, requires_grad=True), torch.randn(2, 4, 3, 3)
    filters = torch.tensor([1, 4])
    assert type(activate_and_mix(z, x, filters, 4, 1, nn.ReLU()).grad_fn).__name__ == "_ActivateMixBackward"
    out = activate_and_mix(z, x, filters, 4, 1, nn.GELU())
    assert type(out.grad_fn).__name__ != "_ActivateMixBackward"
    assert torch.equal(out, reference_activate_and_mix(z, x, filters, 4, 1, nn.GELU()))


def _saved_bytes(fn) -> int:
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v3_small_cifar"])
def test_ordered_dropout_keeps_no_more_for_backward_than_plain_training(name):
    """The masks and the bypass are written into the activation's own output: an ordered-dropout
    step keeps (almost) only what plain training keeps for the backward pass.  Composed from
    autograd operations it kept a third more, and the allocator's page faults came with it."""
    net = netadapt.build_supernet(name, width_mult=0.5, input_size=32, num_classes=10).train()
    x = torch.randn(16, 3, 32, 32)
    widths, kernels = OrderedDropoutSampler(net.space).sample(16, torch.Generator().manual_seed(0))
    plain = _saved_bytes(lambda: net(x))
    ordered = _saved_bytes(lambda: net(x, widths=widths, kernels=kernels))
    assert ordered <= 1.05 * plain, (ordered, plain)


# (C, F, T, stride, depthwise): depthwise layers (T = ∞, all channels passed), pointwise layers
# passing a few channels, and strided ones (the bypass takes window centres)
LAYERS = [(16, 16, None, 1, True), (16, 16, None, 2, True), (8, 24, 4, 1, False), (24, 8, 6, 2, False)]


@pytest.mark.parametrize("c, f, t, stride, depthwise", LAYERS)
@pytest.mark.parametrize("act_layer", [nn.ReLU, nn.Hardswish, None], ids=["relu", "hswish", "none"])
@pytest.mark.parametrize("per_image_limits", [False, True])
def test_linked_layer_gradients_equal_the_reference(c, f, t, stride, depthwise, act_layer, per_image_limits):
    """The layer's convolution takes the bypass's input gradient (BypassLink): the input and
    weight gradients equal those of the composed reference (convolution, BN, act, bypass_mix)."""
    from netadapt.model.layers import Choice, ElasticConv

    torch.manual_seed(0)
    layer = ElasticConv("l", c, f, 3, in_size=8, stride=stride, depthwise=depthwise, bypass=t, act_layer=act_layer, index=0)
    layer.train()
    b = 6
    x = torch.randn(b, c, 8, 8)
    width = torch.tensor([c, c, c // 2, 1, c, c])
    x = x * prefix_mask_float(width, c)  # inputs are zero beyond each image's width
    filters = torch.tensor([f, 0, f // 2, 1, 3, f])
    choice = Choice(filters[:, None], torch.full((b, 1), 3))
    limits = torch.tensor([c, 0, c, layer.limit, c, 0]) if per_image_limits else None
    grad = torch.randn(b, layer.out_channels, 8 // stride, 8 // stride)

    xa = x.clone().requires_grad_()
    out, w = layer.forward_masked(xa, width, choice, limits)
    out.backward(grad)
    got = (out.detach(), xa.grad, layer.conv.weight.grad.clone(), w)
    layer.zero_grad()

    xb = x.clone().requires_grad_()
    y = torch.nn.functional.conv2d(xb, layer.conv.weight, None, stride, 1, 1, layer.conv.groups)
    kept = torch.minimum(filters, width) if depthwise else filters
    limit = layer.limit if limits is None else c
    ref_out = reference_activate_and_mix(layer.bn(y), xb, kept, limit, stride, layer.act, limits)
    ref_out.backward(grad)
    assert torch.equal(got[0], ref_out.detach())
    assert torch.allclose(got[1], xb.grad, atol=1e-6)
    assert torch.allclose(got[2], layer.conv.weight.grad, atol=1e-6)
    assert type(out.grad_fn).__name__ == "_ActivateMixBackward"
    assert type(out.grad_fn.next_functions[0][0].next_functions[0][0]).__name__ == "_ConvLinkedBackward"


def prefix_mask_float(widths, channels):
    from netadapt.model.slicing import prefix_mask

    return prefix_mask(widths, channels).float()
