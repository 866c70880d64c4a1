"""Depth loss and metrics against hand-computed values; the search's metric adapter."""

from __future__ import annotations

import math

import pytest
import torch

from netadapt.depth import HIGHER_IS_BETTER, METRICS, DepthMetrics, higher_is_better, masked_l1_loss, search_metric
from netadapt.errors import NetAdaptError

torch.set_num_threads(1)

# One 2x2 image: three valid pixels (gt 1, 2, 4) and one missing (0).
TARGET = torch.tensor([[[[1.0, 2.0], [0.0, 4.0]]]])
PRED = torch.tensor([[[[1.1, 3.0], [5.0, 4.0]]]])
# errors 0.1, 1, 0; relative 0.1, 0.5, 0; ratios 1.1, 1.5, 1.0
EXPECTED = {
    "rmse": math.sqrt((0.01 + 1.0) / 3),
    "rel": 0.6 / 3,
    "delta1": 2 / 3,  # 1.1 and 1.0 < 1.25; 1.5 is not
    "delta2": 1.0,  # 1.5 < 1.5625
    "delta3": 1.0,
    "mae": 1.1 / 3,
}


def test_metrics_match_hand_computed_values():
    m = DepthMetrics()
    m.update(PRED, TARGET)
    got = m.compute()
    assert set(got) == set(METRICS)
    for name, value in EXPECTED.items():
        assert got[name] == pytest.approx(value, abs=1e-6), name


def test_masked_l1_loss_ignores_missing_depth_and_its_gradient():
    pred = PRED.clone().requires_grad_(True)
    loss = masked_l1_loss(pred, TARGET)
    assert loss.item() == pytest.approx(1.1 / 3, abs=1e-6)
    loss.backward()
    assert pred.grad[0, 0, 1, 0] == 0  # the missing pixel gets no gradient
    assert pred.grad.abs().sum() > 0
    nan_target = TARGET.clone()
    nan_target[0, 0, 1, 0] = float("nan")  # NaN counts as missing, and does not poison the loss
    assert masked_l1_loss(PRED, nan_target).item() == pytest.approx(1.1 / 3, abs=1e-6)


def test_loss_of_a_batch_without_valid_pixels_is_zero_with_a_gradient_path():
    pred = torch.ones(2, 1, 3, 3, requires_grad=True)
    loss = masked_l1_loss(pred, torch.zeros(2, 1, 3, 3))
    loss.backward()
    assert loss.item() == 0 and pred.grad is not None


def test_image_and_pixel_reductions_differ_as_documented():
    # Second image: 4 valid pixels, predicted exactly.
    pred = torch.cat([PRED, torch.full((1, 1, 2, 2), 2.0)])
    target = torch.cat([TARGET, torch.full((1, 1, 2, 2), 2.0)])
    image, pixel = DepthMetrics("image"), DepthMetrics("pixel")
    image.update(pred, target)
    pixel.update(pred, target)
    assert image.count == 2 and pixel.count == 7
    assert image.compute()["rmse"] == pytest.approx(EXPECTED["rmse"] / 2, abs=1e-6)
    assert pixel.compute()["rmse"] == pytest.approx(math.sqrt(1.01 / 7), abs=1e-6)
    assert pixel.compute()["delta1"] == pytest.approx(6 / 7, abs=1e-6)


def test_accumulating_batches_equals_one_batch_and_empty_images_are_ignored():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(6, 1, 5, 5, generator=g) * 4
    target[target < 0.5] = 0  # some missing pixels
    target[3] = 0  # an image without any measurement
    pred = target + torch.randn(6, 1, 5, 5, generator=g) * 0.3
    for reduction in ("image", "pixel"):
        whole, parts = DepthMetrics(reduction), DepthMetrics(reduction)
        whole.update(pred, target)
        parts.update(pred[:2], target[:2])
        parts.update(pred[2:], target[2:])
        a, b = whole.compute(), parts.compute()
        assert a == pytest.approx(b)
    assert whole.count == int((target > 0).sum())
    image = DepthMetrics("image")
    image.update(pred, target)
    assert image.count == 5  # image 3 has no valid pixel


def test_non_positive_predictions_never_count_as_within_threshold():
    target = torch.full((1, 1, 1, 2), 1.0)
    pred = torch.tensor([[[[0.0, -1.0]]]])
    m = DepthMetrics()
    m.update(pred, target)
    out = m.compute()
    assert out["delta3"] == 0.0
    assert out["rel"] == pytest.approx(1.5)


def test_metric_directions_and_errors():
    assert not higher_is_better("rmse") and not higher_is_better("rel")
    assert all(higher_is_better(f"delta{k}") for k in (1, 2, 3))
    assert set(HIGHER_IS_BETTER) == set(METRICS)
    with pytest.raises(NetAdaptError, match="unknown depth metric"):
        higher_is_better("accuracy")
    with pytest.raises(NetAdaptError, match="no valid depth"):
        DepthMetrics().compute()
    with pytest.raises(NetAdaptError, match="shape"):
        DepthMetrics().update(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(NetAdaptError, match="reduction"):
        DepthMetrics("mean")


@pytest.mark.parametrize("reduction", ["image", "pixel"])
@pytest.mark.parametrize("name", METRICS)
def test_search_metric_reproduces_the_accumulator(name, reduction):
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(3):
        target = torch.rand(3, 1, 4, 4, generator=g) * 3
        target[target < 0.3] = 0
        batches.append((target * (1 + 0.2 * torch.randn(3, 1, 4, 4, generator=g)), target))
    metric_fn, finalize, better = search_metric(name, reduction)
    acc = DepthMetrics(reduction)
    total, count = 0.0, 0
    for pred, target in batches:
        s, n = metric_fn(pred, target)
        total, count = total + s, count + n
        acc.update(pred, target)
    value = total / count
    if finalize is not None:
        value = finalize(value)
    assert value == pytest.approx(acc.compute()[name], rel=1e-9)
    assert better == HIGHER_IS_BETTER[name]


def test_search_evaluator_scores_fastdepth_samples_by_a_depth_metric():
    import netadapt
    from netadapt.search.evaluate import SampleEvaluator, SharedWeights

    net = netadapt.build_supernet("fastdepth", input_size=32).eval()
    g = torch.Generator().manual_seed(0)
    heldout = [(torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 1, 32, 32, generator=g) * 3 + 0.5)]
    metric_fn, finalize, _ = search_metric("rmse")
    evaluator = SampleEvaluator(net, heldout, SharedWeights(None), metric_fn=metric_fn, finalize=finalize)
    arch = net.space.uniform(0.5)
    expected = DepthMetrics()
    with torch.no_grad():
        expected.update(net.extract(arch).eval()(heldout[0][0]), heldout[0][1])
    assert evaluator([arch])[0] == pytest.approx(expected.compute()["rmse"], rel=1e-5)
