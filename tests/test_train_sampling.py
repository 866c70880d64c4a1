"""Ordered-dropout choices: stratified per layer, shuffled independently, ties respected."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from netadapt import build_supernet
from netadapt.train import OrderedDropoutSampler, stratified_column
from netadapt.train.sampling import stratified_columns


@pytest.mark.parametrize("batch,n", [(64, 9), (9, 9), (5, 9), (100, 3)])
def test_stratified_column_counts(batch: int, n: int) -> None:
    choices = list(range(10, 10 + n))
    column = stratified_column(choices, batch, torch.Generator().manual_seed(0))
    counts = Counter(column.tolist())
    assert column.shape == (batch,) and set(counts) <= set(choices)
    assert all(counts.get(c, 0) in (batch // n, batch // n + 1) for c in choices)  # almost equally often (§2.3)


@pytest.mark.parametrize("batch", [64, 9, 5, 1])
def test_stratified_columns_count_every_column_apart(batch: int) -> None:
    """Columns of different lengths drawn together: each stratified over its own choices (the
    padding of the shorter ones never drawn), each shuffled on its own."""
    choices = [list(range(10, 19)), [0, 2, 4], [7], list(range(30, 38))]
    drawn = stratified_columns(choices, batch, torch.Generator().manual_seed(0))
    assert drawn.shape == (batch, len(choices)) and drawn.dtype == torch.long
    for j, options in enumerate(choices):
        counts = Counter(drawn[:, j].tolist())
        n = len(options)
        assert set(counts) <= set(options)
        assert all(counts.get(c, 0) in (batch // n, batch // n + 1) for c in options)
    if batch >= 9:  # two 9- and 8-choice columns in the same order would be a shared shuffle
        assert not torch.equal(drawn[:, 0] - 10, drawn[:, 3] - 30)


def test_stratified_columns_leftovers_are_uniform() -> None:
    gen = torch.Generator().manual_seed(1)
    totals = Counter()
    for _ in range(300):
        totals.update(stratified_columns([list(range(9))], 10, gen)[:, 0].tolist())  # one left-over image per draw
    extra = [totals[c] - 300 for c in range(9)]
    assert sum(extra) == 300 and min(extra) > 15 and max(extra) < 55  # expected 33 each


def test_leftover_choices_are_not_biased_to_small_widths() -> None:
    gen = torch.Generator().manual_seed(1)
    totals = Counter()
    for _ in range(300):
        totals.update(stratified_column(list(range(9)), 10, gen).tolist())  # one left-over image per draw
    extra = [totals[c] - 300 for c in range(9)]
    assert sum(extra) == 300 and min(extra) > 15  # every choice gets the left-over image sometimes


def test_sampler_stratifies_every_layer_and_respects_ties() -> None:
    net = build_supernet("mobilenet_v2_cifar", width_mult=0.35, input_size=16, num_classes=10, bypass="none", removal="layer")
    space = net.space
    ties = [g for g in space.tie_groups() if len(g) > 1]
    assert ties  # without bypass, depthwise layers are tied to the layer feeding them
    widths, kernels = OrderedDropoutSampler(space).sample(45, torch.Generator().manual_seed(2))
    assert widths.shape == kernels.shape == (45, len(space))
    for i, layer in enumerate(space.layers):
        counts = Counter(widths[:, i].tolist())
        assert set(counts) <= set(layer.widths)
        assert max(counts.values()) - min(counts.get(w, 0) for w in layer.widths) <= 1
        assert set(kernels[:, i].tolist()) <= set(layer.kernels)
    for group in ties:
        for i in group[1:]:
            assert torch.equal(widths[:, group[0]], widths[:, i])
    # Columns are shuffled independently: two untied layers with the same choices differ.
    untied = [g[0] for g in space.tie_groups() if len(g) == 1]
    same = [(a, b) for a in untied for b in untied if a < b and space.layers[a].widths == space.layers[b].widths]
    assert same and any(not torch.equal(widths[:, a], widths[:, b]) for a, b in same)
    for row in range(45):  # every row is an architecture of the space
        space.make(widths[row].tolist(), kernels[row].tolist())


def test_sampler_kernels_and_sandwich() -> None:
    net = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, input_size=16, num_classes=10)
    space = net.space
    assert any(len(layer.kernels) > 1 for layer in space.layers)  # superkernel layers exist
    sampler = OrderedDropoutSampler(space, sandwich=True)
    widths, kernels = sampler.sample(20, torch.Generator().manual_seed(3))
    assert widths[0].tolist() == [layer.max_filters for layer in space.layers]
    assert kernels[0].tolist() == [layer.max_kernel for layer in space.layers]
    assert widths[1].tolist() == [min(layer.widths) for layer in space.layers]
    assert kernels[1].tolist() == [min(layer.kernels) for layer in space.layers]
    for i, layer in enumerate(space.layers):
        if len(layer.kernels) > 1:
            counts = Counter(kernels[2:, i].tolist())
            assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == len(layer.kernels)
    _, none = OrderedDropoutSampler(space, kernels=False).sample(4, torch.Generator().manual_seed(3))
    assert none is None


def test_largest_share_gives_rows_to_the_initial_network() -> None:
    space = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, input_size=16, num_classes=10).space
    full = [layer.max_filters for layer in space.layers]
    smallest = OrderedDropoutSampler(space).smallest()[0]
    gen = torch.Generator().manual_seed(4)
    widths, _ = OrderedDropoutSampler(space, sandwich=True, largest_share=0.25).sample(16, gen)
    assert all(widths[r].tolist() == full for r in range(4)) and widths[4].tolist() == smallest
    # with groups: the share is of the groups (2 of 8 groups of 4 images), then the smallest group
    widths, _ = OrderedDropoutSampler(space, sandwich=True, group_size=4, largest_share=0.25).sample(32, gen)
    assert all(widths[r].tolist() == full for r in range(8)) and widths[8].tolist() == smallest
    # without the sandwich rule, no smallest row; every row but one at most
    widths, _ = OrderedDropoutSampler(space, largest_share=0.5).sample(10, gen)
    assert all(widths[r].tolist() == full for r in range(5))
    assert OrderedDropoutSampler(space, largest_share=0.99)._largest_rows(10) == 9
    # the default keeps today's draws: the sandwich alone is the same as a share that rounds to one
    a = OrderedDropoutSampler(space, sandwich=True).sample(16, torch.Generator().manual_seed(5))
    b = OrderedDropoutSampler(space, sandwich=True, largest_share=0.05).sample(16, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_largest_share_is_validated() -> None:
    from netadapt.errors import NetAdaptError
    from netadapt.train.config import OrderedDropoutConfig

    with pytest.raises(NetAdaptError, match="largest_share"):
        OrderedDropoutConfig(largest_share=1.0).validate()


def test_sampler_is_a_function_of_its_generator() -> None:
    space = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10).space
    assert space.removal_groups()  # removable pairs draw their own columns too
    sampler = OrderedDropoutSampler(space)
    a = sampler.sample(16, torch.Generator().manual_seed(7))
    b = sampler.sample(16, torch.Generator().manual_seed(7))
    c = sampler.sample(16, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("name", ["mobilenet_v3_small_cifar", "mobilenet_v1_cifar"])
def test_removable_blocks_are_removed_whole_in_a_stratified_share(name: str) -> None:
    space = build_supernet(name, width_mult=0.5, input_size=16, num_classes=10).space
    groups = space.removal_groups()
    assert len(groups) >= 5  # residual blocks (V3) or width-keeping pairs (V1)
    batch = 90
    widths, kernels = OrderedDropoutSampler(space).sample(batch, torch.Generator().manual_seed(4))
    for group in groups:
        convs = [i for i in group if space.layers[i].kind != "se"]
        gone = (widths[:, convs] == 0).all(1)
        rate = 1 / len(space.layers[convs[0]].widths)
        assert abs(int(gone.sum()) - rate * batch) <= 1  # a stratified share, not a coin per image
        assert not (widths[~gone][:, convs] == 0).any()  # kept blocks keep every convolution
        assert not widths[gone][:, list(group)].any()  # removed blocks keep nothing
    for row in range(batch):
        space.make(widths[row].tolist(), kernels[row].tolist())
    # Each block draws its own rows: the removal patterns of two blocks differ.
    patterns = {tuple((widths[:, g[0]] == 0).tolist()) for g in groups}
    assert len(patterns) > 1


def test_phases_restrict_what_a_batch_varies() -> None:
    space = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, input_size=16, num_classes=10).space
    sampler = OrderedDropoutSampler(space, sandwich=True)
    full, _ = sampler.sample(8, torch.Generator().manual_seed(0), phase="full")
    assert (full == torch.tensor([space.full().filters])).all()
    width, _ = sampler.sample(40, torch.Generator().manual_seed(0), phase="width")
    convs = [i for i, layer in enumerate(space.layers) if layer.kind != "se"]
    assert not (width[:, convs] == 0).any()  # no block removed, no convolution at 0
    assert len(set(width[2:, convs[3]].tolist())) > 3  # widths still vary
    every, _ = sampler.sample(40, torch.Generator().manual_seed(0), phase="all")
    assert (every[:, convs] == 0).any()
    assert every[1].tolist() == list(space.smallest().filters)
    with pytest.raises(ValueError, match="phase"):
        sampler.sample(4, torch.Generator(), phase="depth")


def test_spread_keeps_each_image_within_k_choices_of_its_level() -> None:
    space = build_supernet("mobilenet_v1_cifar", width_mult=0.5, input_size=16, num_classes=10).space
    batch = 72
    widths, _ = OrderedDropoutSampler(space, spread=1).sample(batch, torch.Generator().manual_seed(5))
    convs = [i for i, layer in enumerate(space.layers) if layer.kind != "se" and layer.block is None]
    index = torch.stack(
        [torch.tensor([[w for w in space.layers[i].widths if w > 0].index(int(v)) for v in widths[:, i]]) for i in convs], 1
    )  # (B, layers): each layer's choice index (0 = fewest filters)
    assert int((index.max(1).values - index.min(1).values).max()) <= 2  # all within ±1 of one level
    levels = Counter(torch.round(index.double().mean(1)).long().tolist())
    assert len(levels) >= 6  # images cover the levels, narrow to wide
    zero, _ = OrderedDropoutSampler(space, spread=0).sample(batch, torch.Generator().manual_seed(5))
    ratios = zero[:, convs].double() / torch.tensor([space.layers[i].max_filters for i in convs])
    assert torch.allclose(ratios, ratios[:, :1].expand_as(ratios), atol=0.07)  # one width multiplier per image
    for row in range(batch):
        space.make(widths[row].tolist())


def test_a_floor_leaves_out_narrow_widths() -> None:
    space = build_supernet("mobilenet_v1_cifar", width_mult=0.5, input_size=16, num_classes=10).space
    widths, _ = OrderedDropoutSampler(space, sandwich=True).sample(40, torch.Generator().manual_seed(6), "width", floor=0.5)
    full = torch.tensor([layer.max_filters for layer in space.layers])
    assert (widths >= 0.5 * full).all()
    assert (widths < full).any()


def test_largest_pass_adds_the_initial_networks_gradient_and_teaches_the_rest() -> None:
    """``largest_pass``: the step's gradient is the full network's loss on the whole batch plus
    the ordered-dropout loss distilled from that pass's outputs, computed by hand here."""
    import torch.nn.functional as F

    from netadapt.tasks import task_named
    from netadapt.train.config import SupernetTrainConfig
    from netadapt.train.loop import _forward_backward

    torch.manual_seed(0)
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10)
    x, y = torch.randn(8, 3, 16, 16), torch.randint(10, (8,))
    widths, _ = OrderedDropoutSampler(net.space).sample(8, torch.Generator().manual_seed(0))
    config = SupernetTrainConfig()
    config.ordered_dropout.largest_pass, config.ordered_dropout.distill = True, 0.5
    sums = _forward_backward(net, net, task_named("classification"), (x, y), widths, None, config, None, None)
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)

    full = net(x)
    sub = net(x, widths=widths)
    soft = F.softmax(full.detach(), dim=1)
    ce = F.cross_entropy(sub, y, label_smoothing=config.label_smoothing)
    expected = F.cross_entropy(full, y, label_smoothing=config.label_smoothing) + 0.5 * ce + 0.5 * F.cross_entropy(sub, soft)
    expected.backward()
    assert set(got) == {n for n, p in net.named_parameters() if p.grad is not None}
    for name, p in net.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert sums[2].item() == 8  # the ordered-dropout pass's images, as without the largest pass


def test_a_fixed_architecture_trained_masked_gets_no_largest_pass() -> None:
    """Final training of one architecture inside the super-network (``masked``) runs with
    ordered dropout disabled and fixed widths: the recipe's largest pass and distillation, kept in
    the config, do not apply -- the gradient is the architecture's own loss's."""
    import torch.nn.functional as F

    from netadapt.tasks import task_named
    from netadapt.train.config import SupernetTrainConfig
    from netadapt.train.loop import _forward_backward

    torch.manual_seed(0)
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(10, (4,))
    arch = [max(1, f // 2) for f in net.space.full().filters]
    widths = torch.tensor([arch]).expand(4, -1)
    grads = []
    for largest_pass in (True, False):
        config = SupernetTrainConfig()
        config.ordered_dropout.enabled, config.ordered_dropout.distill = False, 0.5
        config.ordered_dropout.largest_pass = largest_pass
        _forward_backward(net, net, task_named("classification"), (x, y), widths, None, config, None, None)
        grads.append({n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
        net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x, widths=widths), y, label_smoothing=SupernetTrainConfig().label_smoothing).backward()
    for name, p in net.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[0][name], p.grad, msg=name)
            torch.testing.assert_close(grads[1][name], p.grad, msg=name)
