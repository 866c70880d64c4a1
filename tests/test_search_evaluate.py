"""Sample evaluation on a tiny super-network: BN recalibration, extracted vs masked, fine-tuning."""

from __future__ import annotations

import math

import pytest
import torch

import netadapt
from netadapt.model.layers import ElasticConv
from netadapt.search import SearchConfig, search
from netadapt.search.evaluate import (
    EvalConfig,
    recalibrate_bn_,
    recalibrated_bn,
    seeded_batches,
    shared_weight_evaluator,
    take_images,
)
from netadapt.search.finetune import finetune_evaluator


def tiny(name="mobilenet_v1_cifar", width=0.25):
    torch.manual_seed(0)
    net = netadapt.build_supernet(name, width_mult=width, input_size=16, num_classes=10)
    # give BN statistics the "mixed by ordered dropout" look of a trained super-network
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def batches(count, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 16, 16, generator=g), torch.randint(10, (size,), generator=g)) for _ in range(count)]


def half(net):
    space = net.space
    return space.uniform(0.5)


def test_bn_recalibration_is_the_cumulative_average_of_batch_statistics():
    net = tiny()
    compact = net.extract(half(net))
    calib = batches(3)
    first = next(m for m in compact.modules() if isinstance(m, ElasticConv) and m.conv is not None)
    before = first.bn.running_mean.clone()
    recalibrate_bn_(compact, (x for x, _ in calib))
    assert not compact.training and all(not m.training for m in compact.modules())
    with torch.no_grad():
        outs = [first.conv(x) for x, _ in calib]  # the first layer sees the raw images
    mean = torch.stack([o.mean((0, 2, 3)) for o in outs]).mean(0)
    var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs]).mean(0)
    torch.testing.assert_close(first.bn.running_mean, mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.bn.running_var, var, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(before, first.bn.running_mean)
    assert first.bn.momentum == 0.1 and int(first.bn.num_batches_tracked) == 3


def test_recalibrated_bn_restores_the_super_network():
    net = tiny()
    arch = half(net)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    with recalibrated_bn(net, (x for x, _ in batches(2)), forward=lambda x: net(x, arch)):
        assert not net.training
        assert any(not torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert net.training
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize(("name", "width"), [("mobilenet_v1_cifar", 0.25), ("mobilenet_v3_small_cifar", 0.5)])
@pytest.mark.parametrize("recalibrate", [True, False])
def test_extracted_and_masked_evaluation_agree(name, width, recalibrate):
    net = tiny(name, width)
    heldout, calib = batches(3, seed=1), batches(2, seed=2)

    def mean_logit(outputs, targets):  # continuous, so small differences would show
        return float(outputs.sum()), outputs.numel()

    scores = {}
    for mode in ("extract", "masked"):
        config = EvalConfig(mode=mode, recalibrate_bn=recalibrate, calibration_images=16)
        top1 = shared_weight_evaluator(net, heldout, calib, config)
        logits = shared_weight_evaluator(net, heldout, calib, config, metric_fn=mean_logit)
        archs = [half(net), net.space.sample(torch.Generator().manual_seed(3))]
        scores[mode] = (top1(archs), logits(archs))
    assert scores["extract"][0] == scores["masked"][0]
    assert scores["extract"][1] == pytest.approx(scores["masked"][1], rel=1e-4, abs=1e-5)


def test_recalibration_changes_the_score_and_uses_a_fixed_image_set():
    net = tiny()
    heldout, calib = batches(3, seed=1), batches(4, seed=2)

    def mean_logit(outputs, targets):
        return float(outputs.sum()), outputs.numel()

    on = shared_weight_evaluator(net, heldout, calib, EvalConfig(calibration_images=20), metric_fn=mean_logit)
    off = shared_weight_evaluator(net, heldout, None, EvalConfig(recalibrate_bn=False), metric_fn=mean_logit)
    arch = half(net)
    assert on([arch]) != off([arch])
    assert sum(x.shape[0] for x, _ in on.prepare.calibration) == 20  # cut to the asked image count
    again = shared_weight_evaluator(net, heldout, calib, EvalConfig(calibration_images=20), metric_fn=mean_logit)
    assert again([arch]) == on([arch])


def test_identical_samples_are_evaluated_once():
    net = tiny()
    evaluator = shared_weight_evaluator(net, batches(1), batches(1), EvalConfig(calibration_images=8))
    calls = []
    prepare = evaluator.prepare

    def spy(supernet, arch, device):
        calls.append(arch)
        return prepare(supernet, arch, device)

    evaluator.prepare = spy
    a, b = half(net), net.space.full()
    scores = evaluator([a, b, a, a])
    assert scores[0] == scores[2] == scores[3] and len(calls) == 2
    evaluator([b])
    assert len(calls) == 2


def test_lower_is_better_metric_with_finalize():
    net = tiny()
    heldout = batches(2)

    def squared_error(outputs, targets):
        return float(((outputs[:, 0] - targets.float()) ** 2).sum()), targets.shape[0]

    evaluator = shared_weight_evaluator(
        net, heldout, None, EvalConfig(recalibrate_bn=False), metric_fn=squared_error, finalize=math.sqrt
    )
    arch = half(net)
    compact = net.extract(arch).eval()
    with torch.no_grad():
        errors = torch.cat([compact(x)[:, 0] - y.float() for x, y in heldout])
    assert evaluator([arch])[0] == pytest.approx(float(errors.pow(2).mean().sqrt()), rel=1e-5)


def test_data_batches_with_extra_fields_are_accepted():
    from netadapt.data import Batch

    net = tiny()
    plain = batches(2)
    wrapped = [Batch(x, y, torch.arange(len(y)), ()) for x, y in plain]
    config = EvalConfig(calibration_images=16)
    arch = half(net)
    assert shared_weight_evaluator(net, wrapped, wrapped, config)([arch]) == shared_weight_evaluator(net, plain, plain, config)(
        [arch]
    )


def test_seeded_batches_and_take_images():
    data = [(torch.full((3, 4, 4), float(i)), i % 10) for i in range(50)]
    a = seeded_batches(data, 20, 8, seed=1)
    b = seeded_batches(data, 20, 8, seed=1)
    c = seeded_batches(data, 20, 8, seed=2)
    assert [x.shape[0] for x, _ in a] == [8, 8, 4]
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b, strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    assert sum(x.shape[0] for x, _ in take_images(a, 10)) == 10


def test_finetune_evaluator_trains_each_sample_from_the_same_weights():
    net = tiny()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    train, heldout = batches(2, seed=5), batches(2, seed=6)

    def mean_logit(outputs, targets):
        return float(outputs.sum()), outputs.numel()

    arch = half(net)
    tuned = finetune_evaluator(net, train, heldout, steps=3, lr=0.1, metric_fn=mean_logit)
    untuned = finetune_evaluator(net, train, heldout, steps=0, metric_fn=mean_logit)
    assert tuned([arch]) != untuned([arch])
    assert finetune_evaluator(net, train, heldout, steps=3, lr=0.1, metric_fn=mean_logit)([arch]) == tuned([arch])
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_finetune_evaluator_recomputes_batchnorm_after_the_fine_tuning():
    # NetAdaptV1's few fine-tuning batches barely move running statistics (momentum 0.01 in
    # MobileNetV3): with calibration images the fine-tuned network is scored with its own, i.e.
    # exactly the fine-tuned weights recalibrated on those images.
    from netadapt.search.finetune import FineTune

    net = tiny()
    train, heldout, calibration = batches(2, seed=5), batches(2, seed=6), batches(2, seed=7)
    arch = half(net)

    def mean_logit(outputs, targets):
        return float(outputs.sum()), outputs.numel()

    recalibrated = finetune_evaluator(net, train, heldout, steps=3, lr=0.1, metric_fn=mean_logit, calibration=calibration)
    stale = finetune_evaluator(net, train, heldout, steps=3, lr=0.1, metric_fn=mean_logit)
    assert recalibrated([arch]) != stale([arch])

    sub = FineTune(train, steps=3, lr=0.1).finetune_(net.extract(arch), torch.device("cpu"))
    recalibrate_bn_(sub, (x for x, _ in calibration))
    with torch.no_grad():
        expected = sum(float(sub(x).sum()) for x, _ in heldout) / sum(x.shape[0] * 10 for x, _ in heldout)
    assert recalibrated([arch])[0] == pytest.approx(expected, rel=1e-5)


def test_a_small_real_search_with_shared_weights(tmp_path):
    net = tiny()
    evaluator = shared_weight_evaluator(net, batches(2, seed=1), batches(2, seed=2), EvalConfig(calibration_images=16))
    space = net.space
    config = SearchConfig(samples=4, layers=4, initial_reduction=0.1, decay=1.0, target=0.7)
    result = search(space, space.full(), lambda a: netadapt.count_macs(net, a), evaluator, config, rng_seed=0, run_dir=tmp_path)
    assert result.reached_target
    assert result.resource <= 0.7 * netadapt.count_macs(net)
    assert (tmp_path / "final_arch.json").exists()
    compact = net.extract(result.final)
    assert netadapt.resources.counted_macs(compact) == result.resource


def test_take_images_keeps_the_first_images_in_order():
    data = batches(3, size=4)
    taken = take_images(iter(data), 6)
    assert torch.equal(taken[0][0], data[0][0]) and torch.equal(taken[1][0], data[1][0][:2])


def test_folding_bn_into_the_convolutions_keeps_the_outputs():
    from netadapt.search.evaluate import fold_bn_

    net = tiny("mobilenet_v3_small_cifar", 0.5)
    arch = half(net)
    x = batches(1)[0][0]
    plain = net.extract(arch).eval()
    folded = fold_bn_(net.extract(arch).eval())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        torch.testing.assert_close(folded(x), plain(x), rtol=1e-4, atol=1e-5)


def test_channels_last_sample_evaluation_scores_alike():
    """search.eval.channels_last (the default) runs each sample's network in the channels-last
    memory format: the same scores as the contiguous format, up to rounding."""
    net = tiny("mobilenet_v3_small_cifar", 0.5)
    heldout, calib = batches(3, seed=1), batches(2, seed=2)
    archs = [half(net), net.space.sample(torch.Generator().manual_seed(3))]

    def mean_logit(outputs, targets):
        return float(outputs.sum()), outputs.numel()

    scores = {}
    for channels_last in (True, False):
        config = EvalConfig(calibration_images=16, channels_last=channels_last)
        scores[channels_last] = (
            shared_weight_evaluator(net, heldout, calib, config)(archs),
            shared_weight_evaluator(net, heldout, calib, config, metric_fn=mean_logit)(archs),
        )
    assert scores[True][0] == scores[False][0]
    assert scores[True][1] == pytest.approx(scores[False][1], rel=1e-4, abs=1e-5)
    assert EvalConfig().channels_last
