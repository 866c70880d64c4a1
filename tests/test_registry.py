"""The model registry: the zoo registered through it, patterns, and a user's own model."""

from __future__ import annotations

import pytest
import torch

import netadapt
from netadapt.errors import NetAdaptError
from netadapt.model.definitions import Conv, DepthwiseSeparable, Head, NetworkDef
from netadapt.model.registry import MODELS
from netadapt.model.zoo import MODELS as ZOO_MODELS

ZOO = [
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "netadaptv2_latency",
    "netadaptv2_macs",
    "fastdepth",
    "mobilenet_v1_cifar",
    "mobilenet_v2_cifar",
    "mobilenet_v3_large_cifar",
    "mobilenet_v3_small_cifar",
]


def test_the_zoo_is_registered_in_order():
    assert ZOO_MODELS is MODELS
    assert list(MODELS)[: len(ZOO)] == ZOO
    assert netadapt.list_models() == sorted(MODELS)
    assert all(MODELS[name][1] for name in ZOO)  # every model has a description


def test_list_models_filters_by_pattern():
    assert netadapt.list_models("mobilenet_v3*") == [
        "mobilenet_v3_large",
        "mobilenet_v3_large_cifar",
        "mobilenet_v3_small",
        "mobilenet_v3_small_cifar",
    ]
    assert netadapt.list_models("*_cifar") == sorted(n for n in ZOO if n.endswith("_cifar"))
    assert netadapt.list_models("no_such_*") == []


@pytest.fixture
def user_model():
    """A two-block network registered from outside the package (removed afterwards)."""

    @netadapt.register_model
    def tiny_user_net(width_mult: float = 1.0) -> NetworkDef:
        """A user's two-block 16x16 network."""
        return NetworkDef(
            name="tiny_user_net",
            blocks=(Conv(int(8 * width_mult), 3, 2), DepthwiseSeparable(int(16 * width_mult), 2)),
            head=Head(hidden=0, dropout=0.0),
            input_size=16,
            num_classes=3,
        )

    try:
        yield "tiny_user_net"
    finally:
        MODELS.pop("tiny_user_net", None)


def test_a_user_model_builds_like_a_zoo_model(user_model):
    assert user_model in netadapt.list_models("tiny_*")
    assert MODELS[user_model][1] == "A user's two-block 16x16 network."
    net = netadapt.build_supernet(user_model, width_mult=0.5)
    arch = net.space.uniform(0.5)
    x = torch.randn(2, 3, 16, 16)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (2, 3)
        torch.testing.assert_close(net(x, arch), netadapt.extract(net, arch)(x))


def test_register_model_refuses_taken_and_source_names(user_model):
    def again() -> NetworkDef:
        raise AssertionError("never built")

    with pytest.raises(NetAdaptError, match="already registered"):
        netadapt.register_model(again, name=user_model)
    with pytest.raises(NetAdaptError, match="colon"):
        netadapt.register_model(again, name="torchvision:again")
    with pytest.raises(NetAdaptError, match="unknown model"):
        netadapt.build_supernet("again")
