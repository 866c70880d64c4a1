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
    with pytest.raises(NetAdaptError, match=r"layer b0: 3 filters is not allowed; choose one of \[2, 4"):
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
    narrow = build_supernet("mobilenet_v3_small_cifar", num_classes=10, min_width_fraction=0.5, removal="layer")
    removable = build_supernet(
        "mobilenet_v3_small_cifar", num_classes=10, min_width_fraction=0.5, keep_removal=True, removal="layer"
    )
    for a, b in zip(narrow.space.layers, removable.space.layers, strict=True):
        assert min(a.widths) >= 0.5 * a.max_filters
        assert {w for w in b.widths if w > 0} == set(a.widths)
        # zero stays exactly where a bypass (or an SE gate) makes removal valid
        assert (0 in b.widths) == (b.kind == "se" or b.bypass != 0)
    assert any(0 in layer.widths for layer in removable.space.layers)
    with pytest.raises(NetAdaptError, match="min_width_fraction"):
        build_supernet("mobilenet_v1_cifar", num_classes=10, min_width_fraction=1.5)


def test_block_removal_ties_zero_within_each_removable_block():
    net = netadapt.build_supernet("mobilenet_v3_small_cifar", num_classes=10)
    space = net.space
    groups = space.removal_groups()
    residual = [b for b in net.blocks if getattr(b, "residual", False)]
    assert len(groups) == len(residual) == 7  # every residual block, nothing else
    in_blocks = {i for g in groups for i in g}
    for i, layer in enumerate(space.layers):  # outside removable blocks no convolution keeps 0
        if i not in in_blocks and layer.kind != "se":
            assert 0 not in layer.widths, layer.name
    full = space.full()
    group = groups[0]
    filters = list(full.filters)
    filters[group[0]] = 0  # one layer of a block alone
    with pytest.raises(NetAdaptError, match="removed whole or not at all") as info:
        space.validate(full.replace(filters=filters))
    assert "\n" not in str(info.value)
    for i in group:
        filters[i] = 0
    removed = space.validate(full.replace(filters=filters))
    assert space.removed_blocks(removed) == [group]
    se = [i for i in group if space.layers[i].kind == "se"]
    if se:  # a kept block may still drop its squeeze-excitation
        kept = list(full.filters)
        kept[se[0]] = 0
        space.validate(full.replace(filters=kept))
    # random architectures remove blocks whole, some of them
    archs = [space.sample(random.Random(i)) for i in range(40)]
    assert any(space.removed_blocks(a) for a in archs)
    assert space.smallest() == space.validate(space.smallest())
    assert len(space.removed_blocks(space.smallest())) == len(groups)


def test_removal_modes():
    def space(**kw):
        return netadapt.build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, **kw).space

    layer, block, none = space(removal="layer"), space(), space(removal="none")
    assert sum(0 in s.widths for s in layer.layers) == 27  # the paper's space: every layer
    assert not layer.removal_groups() and not none.removal_groups()
    assert not any(0 in s.widths for s in none.layers)
    # MobileNetV1 pairs that keep their input's width and resolution: b3, b5, b7..b11 and b13
    assert [block.layers[g[0]].name for g in block.removal_groups()] == [f"b{i}.dw" for i in (3, 5, 7, 8, 9, 10, 11, 13)]
    with pytest.raises(NetAdaptError, match="unknown removal mode"):
        space(removal="sometimes")
