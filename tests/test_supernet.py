"""The headline invariants: super-network at an architecture == extracted network; an
ordered-dropout batch == per-image runs; bypass widths follow Z = max(min(C, T), M)."""

import random

import pytest
import torch

import netadapt
from netadapt import NetAdaptError
from netadapt.model.checks import randomize_norm_
from netadapt.model.layers import Choice, ElasticConv
from netadapt.model.zoo import list_models

SMALL_INPUT = {"fastdepth": 64}


def small(name: str, **kw) -> netadapt.SuperNet:
    """Every zoo model at a small input (ImageNet models at 64 px) for fast CPU tests."""
    size = SMALL_INPUT.get(name, 32 if name.endswith("_cifar") else 64)
    return randomized(netadapt.build_supernet(name, input_size=size, **kw))


def randomized(net):
    randomize_norm_(net, torch.Generator().manual_seed(0))
    return net.eval()


def extremes(net: netadapt.SuperNet) -> list[netadapt.Architecture]:
    space = net.space
    smallest = space.make([s.widths[0] for s in space.layers], [s.kernels[0] for s in space.layers])
    return [space.full(), smallest]


@pytest.mark.parametrize("name", list_models())
def test_supernet_at_architecture_equals_extracted_network(name):
    net = small(name)
    x = torch.randn(2, 3, net.input_size, net.input_size)
    archs = extremes(net) + [net.space.sample(random.Random(i)) for i in range(3)]
    assert any(0 in a.filters for a in archs[1:]), "some layer must be bypassed"
    with torch.no_grad():
        for arch in archs:
            ref = net(x, arch)
            out = net.extract(arch)(x)
            assert out.shape == ref.shape
            assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * ref.abs().max()), f"{name}: {arch.filters}"
        # the full super-network run plainly is the initial network
        assert torch.allclose(net(x), net(x, net.space.full()), atol=1e-6)


@pytest.mark.parametrize("name", ["mobilenet_v3_large_cifar", "netadaptv2_latency"])
def test_every_kernel_choice(name):
    net = small(name)
    x = torch.randn(2, 3, net.input_size, net.input_size)
    kmax = max(s.max_kernel for s in net.space.layers)
    with torch.no_grad():
        for k in range(3, kmax + 1, 2):
            kernels = [max(c for c in s.kernels if c <= k) if min(s.kernels) <= k else s.kernels[0] for s in net.space.layers]
            arch = net.space.make(net.space.uniform(0.5).filters, kernels)
            assert torch.allclose(net.extract(arch)(x), net(x, arch), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["mobilenet_v2_cifar", "mobilenet_v3_small_cifar", "fastdepth", "netadaptv2_macs"])
def test_ordered_dropout_batch_equals_per_image_runs(name):
    net = small(name)
    b = 6
    archs = extremes(net) + [net.space.sample(random.Random(i)) for i in range(b - 2)]
    widths = torch.tensor([a.filters for a in archs])
    kernels = torch.tensor([a.kernels for a in archs])
    x = torch.randn(b, 3, net.input_size, net.input_size)
    with torch.no_grad():
        batch = net(x, widths=widths, kernels=kernels)
        single = torch.cat([net(x[i : i + 1], archs[i]) for i in range(b)])
    assert torch.allclose(batch, single, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # tracing with torch.compile: 8-50 s per model on a CPU (run with -m slow)
@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v3_small_cifar"])
def test_ordered_dropout_forward_compiles_to_one_graph(name):
    """torch.compile (the GPU path of issue 3) sees the whole ordered-dropout forward as one
    graph: no data-dependent step breaks it (per-layer graph breaks made torch.compile recompile
    once per layer and fall back to eager), and the compiled batch equals the eager one,
    forward and backward, with per-image kernel sizes."""
    torch._dynamo.reset()
    net = small(name, width_mult=0.5).train()  # BatchNorm on batch statistics, as in training
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # the classifier's dropout would draw other masks in each run
    b = 6
    archs = extremes(net) + [net.space.sample(random.Random(i)) for i in range(b - 2)]
    widths = torch.tensor([a.filters for a in archs])
    kernels = torch.tensor([a.kernels for a in archs])
    assert name != "mobilenet_v3_small_cifar" or kernels.unique(dim=0).shape[0] > 1  # several kernel sizes per layer
    x = torch.randn(b, 3, net.input_size, net.input_size)
    explained = torch._dynamo.explain(net)(x, widths=widths, kernels=kernels)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    eager_out = net(x, widths=widths, kernels=kernels)
    eager_out.square().sum().backward()
    eager_grads = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    out = compiled(x, widths=widths, kernels=kernels)
    out.square().sum().backward()
    assert torch.allclose(out, eager_out, rtol=1e-4, atol=1e-5)
    for n, p in net.named_parameters():
        assert torch.allclose(p.grad, eager_grads[n], rtol=1e-3, atol=1e-5), n
    torch._dynamo.reset()


def test_ordered_dropout_trains_every_parameter():
    net = netadapt.build_supernet("mobilenet_v3_small_cifar").train()
    b = 8
    gen = random.Random(0)
    archs = [net.space.full()] + [net.space.sample(gen) for _ in range(b - 1)]
    widths = torch.tensor([a.filters for a in archs])
    out = net(torch.randn(b, 3, 32, 32), widths=widths)
    out.logsumexp(1).sum().backward()
    assert torch.isfinite(out).all()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


# -- channel-level bypass: the four cases of Fig. 3 ----------------------------------------------
@pytest.mark.parametrize(
    "c, filters, t, expected",  # expected Z for M = filters, filters-1, ..., 0
    [
        (4, 4, 4, [4, 4, 4, 4, 4]),  # case 1: C = T
        (2, 4, None, [4, 3, 2, 2, 2]),  # case 2: C < T, bypass starts once M < C
        (4, 2, 2, [2, 2, 2]),  # case 3: C > T, the extra input channels are not bypassed
        (4, 4, 2, [4, 3, 2, 2, 2]),  # case 4: T as a hyper-parameter forms a bottleneck
    ],
)
def test_bypass_width_follows_the_rule(c, filters, t, expected):
    layer = randomized(ElasticConv("l", c, filters, 3, in_size=8, bypass=t, act_layer=torch.nn.ReLU, index=0))
    x = torch.randn(len(expected), c, 8, 8)
    ms = torch.arange(filters, -1, -1)
    masked, z = layer.forward_masked(x, torch.full((len(ms),), c), Choice(ms[:, None], torch.full((len(ms), 1), 3)))
    assert z.tolist() == expected
    for i, m in enumerate(ms.tolist()):
        small = layer.shrink(c, m, 3)
        out = small(x[i : i + 1])
        assert out.shape[1] == expected[i] == max(min(c, t if t is not None else c), m)
        # bypassed channels are the input channels themselves
        assert torch.equal(out[0, m:], x[i, m : expected[i]])
        assert torch.allclose(masked[i, : expected[i]], out[0], atol=1e-6)
        assert not masked[i, expected[i] :].any()
        if m == 0:
            assert small.conv is None  # every filter removed: the layer is gone


def test_strided_bypass_takes_window_centres():
    layer = ElasticConv("l", 4, 4, 3, in_size=8, stride=2, bypass=None, index=0).eval()
    x = torch.randn(1, 4, 8, 8)
    out = layer.shrink(4, 1, 3)(x)
    assert out.shape == (1, 4, 4, 4)
    assert torch.equal(out[:, 1:], x[:, 1:, ::2, ::2])


def test_squeeze_excitation_width_zero_removes_it():
    net = small("mobilenet_v3_small_cifar")
    se = [i for i, s in enumerate(net.space.layers) if s.kind == "se"]
    full = net.space.full()
    no_se = full.replace(filters=[0 if i in se else f for i, f in enumerate(full.filters)])
    compact = net.extract(no_se)
    assert not any(type(m).__name__ == "SqueezeExcite" for m in compact.modules())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(compact(x), net(x, no_se), rtol=1e-4, atol=1e-6)
    assert netadapt.count_macs(net, no_se) < netadapt.count_macs(net)


def test_a_whole_block_can_vanish():
    net = small("mobilenet_v3_large_cifar")
    names = [s.name for s in net.space.layers]
    block = [i for i, n in enumerate(names) if n.startswith("b5.")]
    full = net.space.full()
    arch = full.replace(filters=[0 if i in block else f for i, f in enumerate(full.filters)])
    compact = net.extract(arch)
    assert not any(isinstance(m, torch.nn.Conv2d) for m in compact.blocks[5].modules())
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(compact(x), net(x, arch), rtol=1e-4, atol=1e-6)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_give_one_line_errors():
    net = netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25)
    cases = [
        (lambda: net(torch.zeros(1, 3, 64, 64)), "built for 32x32"),
        (lambda: net(torch.zeros(1, 1, 32, 32)), "expects input of shape"),
        (lambda: net(torch.zeros(2, 3, 32, 32), widths=torch.zeros(2, 3, dtype=torch.long)), "widths must have shape"),
        (lambda: netadapt.build_supernet("resnet50"), "unknown model 'resnet50'"),
        (lambda: netadapt.build_supernet("mobilenet_v2", depth=3), "unknown super-network option"),
        (lambda: netadapt.build_supernet("mobilenet_v2", bypass="sometimes"), "unknown bypass mode"),
        (lambda: netadapt.build_supernet(3), "model name must be a string"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0), "width_mult must be a positive number, got 0"),
        (lambda: netadapt.build_supernet("mobilenet_v2_cifar", width_mult=-1), "width_mult must be a positive number"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", width_mult=float("nan")), "positive number, got nan"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", width_mult="0.5"), "positive number, got '0.5'"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.01), "leaves block b0 .* without filters"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", num_classes="3"), "num_classes must be a positive integer"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", in_channels=-1), "in_channels must be a positive integer"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", input_size=0), "input_size must be a positive integer"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", num_widths="abc"), "option num_widths: expected an integer"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", num_widths=1), "option num_widths must be at least 2"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", width_divisor=0), "option width_divisor must be at least 1"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", superkernel="no"), "option superkernel: expected true or false"),
        (lambda: netadapt.build_supernet("mobilenet_v1_cifar", bypass_base=-1), "option bypass_base must be at least 1"),
        (
            lambda: netadapt.build_supernet("mobilenet_v1_cifar", min_width_fraction="x"),
            "option min_width_fraction: expected a number",
        ),
    ]
    for fn, message in cases:
        with pytest.raises(NetAdaptError, match=message) as info:
            fn()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["mobilenet_v3_small_cifar", "mobilenet_v1_cifar", "mobilenet_v2_cifar"])
def test_a_removed_block_computes_exactly_its_input(name):
    """removal: block — a removed block is the identity in the ordered-dropout forward and in
    the extracted network (no operation left), and its MACs and parameters drop by exactly the
    block's own."""
    net = small(name, width_mult=0.5)
    space = net.space
    group = space.removal_groups()[1]
    full = space.full()
    arch = space.validate(full.replace(filters=[0 if i in group else f for i, f in enumerate(full.filters)]))
    block = next(i for i, b in enumerate(net.blocks) if getattr(b, "removal", None) and set(b.removal) <= set(group))
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        # the masked forward with the block skipped by hand, block by block
        choice = net.choice(arch, 3)
        h, width = x, torch.full((3,), 3)
        for i, b in enumerate(net.blocks):
            if i != block:
                h, width = b.forward_masked(h, width, choice)
        assert torch.allclose(net(x, arch), h, atol=1e-6)
        compact = net.extract(arch)
        assert isinstance(compact.blocks[block], torch.nn.Identity)
        assert torch.allclose(compact(x), h, rtol=1e-4, atol=1e-5)
    block_costs = [c for c in net.costs(full) if c.name in {space.layers[i].name for i in group}]
    assert netadapt.count_macs(net, full) - netadapt.count_macs(net, arch) == sum(c.macs for c in block_costs)
    assert netadapt.count_params(net, full) - netadapt.count_params(net, arch) == sum(c.params for c in block_costs)


def test_ordered_dropout_batch_with_removed_blocks_equals_per_image_runs():
    from netadapt.train import OrderedDropoutSampler

    net = small("mobilenet_v3_small_cifar", width_mult=0.5)
    widths, kernels = OrderedDropoutSampler(net.space, sandwich=True).sample(12, torch.Generator().manual_seed(1))
    archs = [net.space.make(w.tolist(), k.tolist()) for w, k in zip(widths, kernels, strict=True)]
    assert sum(bool(net.space.removed_blocks(a)) for a in archs) >= 3
    x = torch.randn(12, 3, 32, 32)
    with torch.no_grad():
        batch = net(x, widths=widths, kernels=kernels)
        single = torch.cat([net.extract(a)(x[i : i + 1]) for i, a in enumerate(archs)])
    assert torch.allclose(batch, single, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mobilenet_v3_small_cifar", "mobilenet_v1_cifar", "fastdepth", "netadaptv2_macs"])
def test_implant_is_the_inverse_of_extraction(name):
    """Train-extracted-then-implant: a changed compact network written back into the
    super-network makes the super-network at that architecture compute the changed network."""
    net = small(name)
    arch = net.space.sample(random.Random(5))
    compact = net.extract(arch)
    with torch.no_grad():
        for p in compact.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        for m in compact.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(0.1)
    x = torch.randn(2, 3, net.input_size, net.input_size)
    other = netadapt.build_supernet(name, input_size=net.input_size)  # untouched weights elsewhere
    other.load_state_dict(net.state_dict())
    other.implant_(compact, arch).eval()
    again = other.extract(arch).state_dict()
    assert again.keys() == compact.state_dict().keys()
    assert all(torch.equal(again[k], v) for k, v in compact.state_dict().items())  # exactly the inverse
    with torch.no_grad():
        assert torch.allclose(other(x, arch), compact.eval()(x), rtol=1e-4, atol=1e-5)


def test_ordered_dropout_under_bf16_autocast():
    """GPU training autocasts to bf16: the bypass of the stem (whose input is the fp32 image)
    must follow the convolution's dtype (torch.lerp needs one dtype)."""
    from netadapt.train import OrderedDropoutSampler

    net = small("mobilenet_v3_small_cifar", width_mult=0.5).train()
    widths, kernels = OrderedDropoutSampler(net.space).sample(4, torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.randn(4, 3, 32, 32), widths=widths, kernels=kernels)
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()


def test_torchvision_weights_of_the_wrong_kind_are_a_one_line_error():
    from netadapt.model.pretrained import load_torchvision_weights

    with pytest.raises(NetAdaptError, match="give a torchvision mobilenet_v2 model or its state dict, got str"):
        load_torchvision_weights(netadapt.build_supernet("mobilenet_v2"), "weights.pth")
