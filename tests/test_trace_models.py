"""Traced torchvision and timm networks as super-networks (issue 18), random weights only.

For every listed architecture at 64x64: the full architecture reproduces the model, random
architectures' extracted networks equal the super-network run at them, the analytic MACs and
parameters equal ``torch.utils.flop_counter`` and the parameter count on the extracted network,
and at least 90% of the convolutions are searchable.  Two models run 20 architectures in the
default suite; the others run 3 or 4 (all 20 under ``-m slow``).
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import torch

import netadapt
from netadapt.model.checks import randomize_norm_
from netadapt.resources.counting import counted_macs, counted_params
from netadapt.trace import supernet_from_module
from netadapt.trace.report import coverage

torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

SIZE = 64


def _tv(name: str):
    return lambda: torchvision.models.get_model(name, weights=None)


def _timm(name: str):
    return lambda: timm.create_model(name, pretrained=False)


MODELS = {
    "resnet18": _tv("resnet18"),
    "resnet50": _tv("resnet50"),
    "mobilenet_v2": _tv("mobilenet_v2"),
    "mobilenet_v3_large": _tv("mobilenet_v3_large"),
    "efficientnet_b0": _tv("efficientnet_b0"),
    "regnet_x_400mf": _tv("regnet_x_400mf"),
    "mnasnet1_0": _tv("mnasnet1_0"),
    "timm:resnet26d": _timm("resnet26d"),
    "timm:regnety_002": _timm("regnety_002"),
}
# (model, architectures checked): two models fully in the default run, the rest sampled.
DEFAULT = [("resnet18", 20), ("mobilenet_v2", 20), ("resnet50", 3), ("mobilenet_v3_large", 4), ("efficientnet_b0", 3),
           ("regnet_x_400mf", 3), ("mnasnet1_0", 3), ("timm:resnet26d", 3), ("timm:regnety_002", 3)]  # fmt: skip
SLOW = [(name, 20) for name in MODELS if name not in ("resnet18", "mobilenet_v2")]


def traced(name: str):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    randomize_norm_(model, torch.Generator().manual_seed(1))  # non-trivial BatchNorm statistics
    return model, supernet_from_module(model, torch.zeros(1, 3, SIZE, SIZE)).eval()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def check_model(name: str, samples: int) -> None:
    model, net = traced(name)
    searchable, total = coverage(net)
    assert searchable >= 0.9 * total, f"{name}: only {searchable}/{total} convolutions searchable"
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    rng = random.Random(0)
    archs = [net.space.smallest(), *(net.space.sample(rng) for _ in range(samples - 1))]
    with torch.no_grad():
        reference = model(x)
        assert (net(x) - reference).abs().max() <= 1e-5
        assert (net(x, net.space.full()) - reference).abs().max() <= 1e-5
        for arch in archs:
            compact = net.extract(arch).eval()
            assert rel(compact(x), net(x, arch)) <= 1e-5, f"{name}: extraction differs at {arch.filters}"
            assert netadapt.count_macs(net, arch) == counted_macs(compact, input_size=SIZE)
            assert netadapt.count_params(net, arch) == counted_params(compact)
    assert netadapt.count_macs(net) == counted_macs(model, input_size=SIZE)


@pytest.mark.parametrize(("name", "samples"), DEFAULT, ids=[n for n, _ in DEFAULT])
def test_traced_model(name: str, samples: int) -> None:
    check_model(name, samples)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "samples"), SLOW, ids=[n for n, _ in SLOW])
def test_traced_model_twenty_archs(name: str, samples: int) -> None:
    check_model(name, samples)


def test_ordered_dropout_batch_equals_per_image_runs() -> None:
    """One batch with a different sub-network per image equals each image run alone."""
    _, net = traced("mobilenet_v3_large")
    rng = random.Random(3)
    archs = [net.space.sample(rng) for _ in range(4)]
    widths = torch.tensor([a.filters for a in archs])
    x = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        batch = net(x, widths=widths)
        for i, arch in enumerate(archs):
            assert rel(batch[i : i + 1], net(x[i : i + 1], arch)) <= 1e-5


def test_zoo_mobilenet_v2_equals_traced_torchvision() -> None:
    """The zoo's hand-written MobileNetV2 (without bypass) and torchvision's, traced: the same
    search space layer by layer (names aside) and the same MACs at every architecture."""
    zoo = netadapt.build_supernet("mobilenet_v2", input_size=SIZE, bypass="none")
    ours = netadapt.build_supernet("torchvision:mobilenet_v2", input_size=SIZE)
    assert [replace(s, name="") for s in ours.space.layers] == [replace(s, name="") for s in zoo.space.layers]
    rng = random.Random(5)
    for _ in range(20):
        arch = zoo.space.sample(rng)
        mapped = ours.space.make(arch.filters, arch.kernels)
        assert netadapt.count_macs(ours, mapped) == netadapt.count_macs(zoo, arch)
    assert netadapt.count_macs(ours) == netadapt.count_macs(zoo)


def test_torchvision_mobilenet_v3_and_efficientnet_find_their_squeeze_excitations() -> None:
    _, net = traced("efficientnet_b0")
    kinds = [s.kind for s in net.space.layers]
    assert kinds.count("se") == 16 and kinds.count("depthwise") == 16
    assert len(net.plan.blocks) == 9  # the stride-1 blocks with a residual sum
