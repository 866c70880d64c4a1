import json
import random

import pytest
import torch

import netadapt
from netadapt import Architecture, NetAdaptError
from netadapt.arch.space import kernel_choices, width_choices


def test_width_choices_follow_appendix_a():
    assert width_choices(64) == (0, 8, 16, 24, 32, 40, 48, 56, 64)
    assert width_choices(40, 11) == (0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40)
    assert width_choices(24, 9, 8) == (0, 8, 16, 24)
    assert width_choices(64, allow_zero=False)[0] == 8
    assert width_choices(20, 9)[-1] == 20  # full width kept exactly even when not a multiple


def test_kernel_choices_are_odd_sizes_from_3():
    assert kernel_choices(7) == (3, 5, 7)
    assert kernel_choices(3) == (3,)
    assert kernel_choices(1) == (1,)


@pytest.fixture(scope="module")
def net():
    return netadapt.build_supernet("mobilenet_v3_small_cifar")


def test_json_round_trip(net):
    arch = net.space.sample(random.Random(3))
    text = arch.to_json(net.space)
    again = Architecture.from_json(text)
    assert again == arch and hash(again) == hash(arch)
    data = json.loads(text)
    assert data["format"] == "netadapt.architecture" and data["version"] == 1
    assert [row["name"] for row in data["layers"]] == [layer.name for layer in net.space.layers]
    net.space.validate(again)


def test_sampling_is_reproducible_and_inside_the_space(net):
    a = [net.space.sample(random.Random(7)) for _ in range(2)]
    b = [net.space.sample(torch.Generator().manual_seed(7)) for _ in range(2)]
    assert a[0] == a[1] and b[0] == b[1]
    assert a[0] != net.space.sample(random.Random(8))
    for arch in a + b:
        assert net.space.validate(arch) is arch


def test_uniform_keeps_every_layer(net):
    arch = net.space.uniform(0.5)
    assert all(f > 0 for f in arch.filters)
    assert netadapt.count_macs(net, arch) < 0.5 * netadapt.count_macs(net)
    assert net.space.uniform(1.0) == net.space.full()


def test_rejects_width_outside_the_space_naming_layer_and_choices(net):
    full = net.space.full()
    bad = full.replace(filters=(3,) + full.filters[1:])
    with pytest.raises(NetAdaptError, match=r"layer b0: 3 filters is not allowed; choose one of \[0, 2, 4"):
        net.space.validate(bad)
    bad_kernel = full.replace(kernels=(5,) + full.kernels[1:])
    with pytest.raises(NetAdaptError, match="layer b0: kernel 5 is not allowed"):
        net.space.validate(bad_kernel)


def test_rejects_architecture_of_another_space(net):
    other = netadapt.build_supernet("mobilenet_v3_small_cifar", num_widths=5)
    with pytest.raises(NetAdaptError, match="another search space"):
        net.space.validate(other.space.full())
    with pytest.raises(NetAdaptError, match="another search space"):
        net(torch.zeros(1, 3, 32, 32), other.space.full())


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json", "not valid JSON"),
        ('{"format": "other"}', "not a netadapt architecture"),
        ('{"format": "netadapt.architecture", "version": 9}', "version 9"),
        ('{"format": "netadapt.architecture", "version": 1, "model": "m", "space": "s", "layers": [{"filters": 1}]}', "missing"),
    ],
)
def test_malformed_json_gives_one_line_errors(text, message):
    with pytest.raises(NetAdaptError, match=message) as info:
        Architecture.from_json(text)
    assert "\n" not in str(info.value)


def test_ties_without_bypass():
    net = netadapt.build_supernet("mobilenet_v1_cifar", bypass="none", width_mult=0.25, input_size=16)
    groups = [g for g in net.space.tie_groups() if len(g) > 1]
    assert len(groups) == 13  # each depthwise layer is tied to the layer feeding it
    assert all(0 not in net.space.layers[i].widths for i in range(len(net.space)))
    arch = net.space.sample(random.Random(0))
    for g in groups:
        assert len({arch.filters[i] for i in g}) == 1
    i, j = groups[0]
    filters = list(arch.filters)
    filters[i] = net.space.layers[i].widths[0]
    filters[j] = net.space.layers[j].widths[-1]
    with pytest.raises(NetAdaptError, match="tied layers"):
        net.space.validate(arch.replace(filters=filters))


def test_space_serialization_round_trip(net):
    from netadapt import SearchSpace

    again = SearchSpace.from_dict(json.loads(json.dumps(net.space.to_dict())))
    assert again == net.space and again.fingerprint == net.space.fingerprint


def test_min_width_fraction_with_and_without_removal():
    build_supernet = netadapt.build_supernet
    narrow = build_supernet("mobilenet_v3_small_cifar", num_classes=10, min_width_fraction=0.5)
    removable = build_supernet("mobilenet_v3_small_cifar", num_classes=10, min_width_fraction=0.5, keep_removal=True)
    for a, b in zip(narrow.space.layers, removable.space.layers, strict=True):
        assert min(a.widths) >= 0.5 * a.max_filters
        assert {w for w in b.widths if w > 0} == set(a.widths)
        # zero stays exactly where a bypass (or an SE gate) makes removal valid
        assert (0 in b.widths) == (b.kind == "se" or b.bypass != 0)
    assert any(0 in layer.widths for layer in removable.space.layers)
    with pytest.raises(NetAdaptError, match="min_width_fraction"):
        build_supernet("mobilenet_v1_cifar", num_classes=10, min_width_fraction=1.5)
