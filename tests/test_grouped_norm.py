"""Grouped BatchNorm in ordered-dropout training: a batch of groups, each sharing one
sub-network, runs in training mode exactly as the groups run one by one (their own batch
statistics), for zoo and traced super-networks; the sampler gives every group one sub-network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netadapt import build_supernet
from netadapt.errors import NetAdaptError
from netadapt.model.layers import grouped_batch_norm
from netadapt.train.sampling import OrderedDropoutSampler, group_sizes


def _grouped_widths(net, sizes, seed=0):
    sampler = OrderedDropoutSampler(net.space, kernels=False, spread=1)
    rows, _ = sampler.sample(len(sizes), torch.Generator().manual_seed(seed))
    return rows.repeat_interleave(torch.tensor(sizes), 0)


@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v3_small_cifar"])
def test_grouped_batch_equals_the_groups_run_apart_in_training_mode(name):
    torch.manual_seed(0)
    net = build_supernet(name, width_mult=0.25, input_size=32, **({"removal": "block"} if "v1" in name else {}))
    net.train()
    for m in net.modules():  # dropout draws differ between one batch and its groups
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    sizes = (3, 5, 4)
    widths = _grouped_widths(net, sizes)
    x = torch.randn(sum(sizes), 3, 32, 32)
    together = net(x, widths=widths, groups=sizes)
    apart = torch.cat([net(xs, widths=ws) for xs, ws in zip(x.split(sizes), widths.split(sizes), strict=True)])
    torch.testing.assert_close(together, apart, rtol=1e-4, atol=1e-4)
    # ...and one set of statistics over the whole batch is something else
    mixed = net(x, widths=widths)
    assert (mixed - apart).abs().max() > 1e-2


def test_grouped_batch_gradients_equal_the_groups_run_apart():
    torch.manual_seed(0)
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=32, removal="block").train()
    sizes = (6, 10)
    widths = _grouped_widths(net, sizes, seed=2)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(10, (16,))

    def grads(backward) -> dict[str, torch.Tensor]:
        net.zero_grad()
        backward()
        return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    together = grads(lambda: nn.functional.cross_entropy(net(x, widths=widths, groups=sizes), y, reduction="sum").backward())

    def apart() -> None:
        for xs, ws, ys in zip(x.split(sizes), widths.split(sizes), y.split(sizes), strict=True):
            nn.functional.cross_entropy(net(xs, widths=ws), ys, reduction="sum").backward()

    separate = grads(apart)
    assert together.keys() == separate.keys()
    for name in together:
        torch.testing.assert_close(together[name], separate[name], rtol=1e-4, atol=1e-5, msg=name)


def test_grouped_forward_of_a_traced_network_equals_the_groups_run_apart():
    torchvision = pytest.importorskip("torchvision")
    from netadapt import supernet_from_module

    torch.manual_seed(0)
    net = supernet_from_module(torchvision.models.resnet18(num_classes=10), torch.zeros(1, 3, 32, 32))
    net.train()
    sizes = (4, 4)
    widths = _grouped_widths(net, sizes, seed=1)
    x = torch.randn(8, 3, 32, 32)
    together = net(x, widths=widths, groups=sizes)
    apart = torch.cat([net(xs, widths=ws) for xs, ws in zip(x.split(sizes), widths.split(sizes), strict=True)])
    torch.testing.assert_close(together, apart, rtol=1e-4, atol=1e-4)


def test_groups_change_nothing_in_eval_mode_and_must_cover_the_batch():
    torch.manual_seed(0)
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=32).eval()
    widths = _grouped_widths(net, (2, 2))
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(net(x, widths=widths, groups=(2, 2)), net(x, widths=widths))
    with pytest.raises(NetAdaptError, match="summing to the batch of 4"):
        net(x, widths=widths, groups=(2, 1))


def test_grouped_batch_norm_updates_running_statistics_once_per_group():
    bn = nn.BatchNorm2d(3, momentum=None)  # cumulative average: every call weighs the same
    y = torch.cat([torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2) + 10])
    out = grouped_batch_norm(bn, y, (4, 4))
    assert int(bn.num_batches_tracked) == 2
    torch.testing.assert_close(bn.running_mean, (y[:4].mean((0, 2, 3)) + y[4:].mean((0, 2, 3))) / 2)
    # every group normalized on its own: zero mean per group and channel
    torch.testing.assert_close(out[:4].mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[4:].mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)


def test_the_sampler_gives_every_group_one_sub_network():
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=32, removal="block")
    sampler = OrderedDropoutSampler(net.space, spread=1, sandwich=True, group_size=4)
    widths, kernels = sampler.sample(14, torch.Generator().manual_seed(0))
    assert widths.shape == (14, len(net.space.layers))
    for start in range(0, 14, 4):
        group, group_kernels = widths[start : start + 4], kernels[start : start + 4]
        assert (group == group[0]).all() and (group_kernels == group_kernels[0]).all()
    assert widths[0].tolist() == sampler.largest()[0]  # sandwich: the first group is the initial network
    assert widths[4].tolist() == sampler.smallest()[0]  # and the second the smallest
    assert len({tuple(r) for r in widths.tolist()}) == 4


def test_group_sizes_follow_rows_and_fold_single_images_into_a_neighbour():
    assert group_sizes(torch.arange(0, 8), None) is None
    assert group_sizes(torch.arange(0, 8), 4) == (4, 4)
    assert group_sizes(torch.arange(8, 16), 4) == (4, 4)  # another process's rows
    assert group_sizes(torch.tensor([0, 1, 2, 3, 4, 6, 7]), 4) == (4, 3)  # an unreadable image
    assert group_sizes(torch.tensor([0, 1, 2, 3, 7]), 4) == (5,)  # one image left of a group joins the one before
    assert group_sizes(torch.tensor([3, 4, 5, 6]), 4) == (4,)  # ...or the one after
