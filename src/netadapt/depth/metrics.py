"""Depth-estimation loss and metrics (paper §4.2, Table 7; FastDepth's conventions).

Ground truth depth is in metres; a pixel is *valid* when its depth is finite and positive (NYU
Depth V2 marks missing measurements with 0).  Loss and metrics only look at valid pixels.

* Loss: FastDepth's ``MaskedL1Loss``, the mean absolute error over the batch's valid pixels.
* Metrics: RMSE (m), REL (mean |pred − gt| / gt), δk (share of pixels with
  ``max(pred/gt, gt/pred) < 1.25**k``, k = 1, 2, 3) and MAE (m).

FastDepth (and sparse-to-dense, whose evaluation code it reuses) computes the metrics on each
validation image and averages them over images; that is ``reduction="image"``, the default here.
``reduction="pixel"`` pools all valid pixels of the data set instead (RMSE = √(Σ err² / Σ n)).

For the search, :data:`HIGHER_IS_BETTER` says which way each metric points (RMSE, REL and MAE
are errors, the δs accuracies) and :func:`search_metric` adapts a metric to the
``metric_fn(outputs, targets) -> (sum, count)`` / ``finalize`` pair of
:class:`netadapt.search.evaluate.SampleEvaluator`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from netadapt.errors import NetAdaptError

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "DepthMetrics",
    "higher_is_better",
    "masked_l1_loss",
    "masked_l1_sum",
    "per_image_errors",
    "per_image_metrics",
    "search_metric",
    "valid_mask",
]

#: Metric names, in the order reports show them.
METRICS = ("rmse", "rel", "delta1", "delta2", "delta3", "mae")
#: Direction of every metric: errors (lower is better) and threshold accuracies (higher is better).
HIGHER_IS_BETTER: dict[str, bool] = {
    "rmse": False,
    "rel": False,
    "mae": False,
    "delta1": True,
    "delta2": True,
    "delta3": True,
}
Reduction = Literal["image", "pixel"]
_DELTA_BASE = 1.25  # Eigen et al. 2014 thresholds 1.25, 1.25², 1.25³ (FastDepth, Table 7's "delta-1")


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better."""
    if name not in HIGHER_IS_BETTER:
        raise NetAdaptError(f"unknown depth metric {name!r}; choose one of: {', '.join(METRICS)}")
    return HIGHER_IS_BETTER[name]


def valid_mask(target: Tensor) -> Tensor:
    """Pixels with a measured depth: finite and positive."""
    return torch.isfinite(target) & (target > 0)


def _check_shapes(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise NetAdaptError(f"depth prediction has shape {tuple(pred.shape)} but the ground truth {tuple(target.shape)}")
    if pred.dim() < 2:
        raise NetAdaptError(f"depth maps need a batch dimension, got shape {tuple(pred.shape)}")


def masked_l1_sum(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Σ |pred − target| over the valid pixels of the batch, and the number of valid pixels."""
    _check_shapes(pred, target)
    mask = valid_mask(target)
    diff = (pred - torch.where(mask, target, torch.zeros_like(target))).abs() * mask
    return diff.sum(), mask.sum()


def masked_l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    """FastDepth's training loss: mean |pred − target| over the valid pixels of the batch.

    A batch without any valid pixel gives a zero loss that still has a gradient path (so every
    process of a distributed step runs the same backward pass).
    """
    total, pixels = masked_l1_sum(pred, target)
    return total / pixels.clamp(min=1)


def per_image_errors(pred: Tensor, target: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Per-image sums over valid pixels and the valid-pixel counts.

    Returns ``(sums, count)`` where ``count`` is (B,) and ``sums`` maps ``"sq"`` (Σ err²),
    ``"abs"`` (Σ |err|), ``"rel"`` (Σ |err| / gt) and ``"delta1..3"`` (pixels within the
    threshold) to (B,) float64 tensors.
    """
    _check_shapes(pred, target)
    pred = pred.detach().reshape(pred.shape[0], -1).double()  # (B, P)
    target = target.detach().reshape(target.shape[0], -1).double()  # (B, P)
    mask = valid_mask(target)
    gt = torch.where(mask, target, torch.ones_like(target))  # placeholder 1 where invalid, masked below
    err = (pred - gt).abs()
    # A non-positive prediction has no finite ratio to the ground truth: it never counts as
    # within a threshold (FastDepth's ReLU output makes this rare but possible: exactly 0).
    ratio = torch.where(pred > 0, torch.maximum(pred / gt, gt / pred.clamp(min=1e-30)), torch.full_like(pred, math.inf))
    m = mask.double()
    sums = {
        "sq": (err.square() * m).sum(1),
        "abs": (err * m).sum(1),
        "rel": (err / gt * m).sum(1),
    }
    for k in (1, 2, 3):
        sums[f"delta{k}"] = ((ratio < _DELTA_BASE**k).double() * m).sum(1)
    return sums, m.sum(1)


def per_image_metrics(pred: Tensor, target: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Each image's metrics over its own valid pixels, and which images have any.

    Returns ``(values, seen)``: ``values`` maps every name of :data:`METRICS` to a (B,) float64
    tensor (0 for an image without valid pixels), ``seen`` is (B,) bool.  The one per-image
    reduction of FastDepth's averaging (:class:`DepthMetrics`), the search's per-batch metric
    and the training's δ1 statistic.
    """
    sums, count = per_image_errors(pred, target)
    n = count.clamp(min=1)
    values = {"rmse": (sums["sq"] / n).sqrt(), "rel": sums["rel"] / n}
    for k in (1, 2, 3):
        values[f"delta{k}"] = sums[f"delta{k}"] / n
    values["mae"] = sums["abs"] / n
    return values, count > 0


class DepthMetrics:
    """Accumulates depth metrics over batches: ``update(pred, target)`` then ``compute()``.

    ``reduction="image"`` (FastDepth's): each image's metrics over its valid pixels, averaged
    over images that have any valid pixel.  ``reduction="pixel"``: pooled over all valid pixels.
    The running sums are one float64 tensor (:attr:`sums`), so processes can add them with one
    ``all_reduce`` before :meth:`compute`.
    """

    # Order of the entries of ``sums``; with ``"image"``, "sq" and "abs" hold Σ per-image RMSE and MAE.
    _FIELDS = ("count", "sq", "abs", "rel", "delta1", "delta2", "delta3")

    def __init__(self, reduction: Reduction = "image") -> None:
        if reduction not in ("image", "pixel"):
            raise NetAdaptError(f"depth metric reduction must be 'image' or 'pixel', got {reduction!r}")
        self.reduction = reduction
        self.sums = torch.zeros(len(self._FIELDS), dtype=torch.float64)

    def reset(self) -> None:
        self.sums.zero_()

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch of predictions and ground truths (same shape, e.g. (B, 1, H, W))."""
        if self.reduction == "pixel":
            sums, count = per_image_errors(pred, target)
            values = [count.sum(), sums["sq"].sum(), sums["abs"].sum(), sums["rel"].sum()]
            values += [sums[f"delta{k}"].sum() for k in (1, 2, 3)]
        else:
            per_image, seen = per_image_metrics(pred, target)
            values = [seen.double().sum()]
            values += [per_image[m][seen].sum() for m in ("rmse", "mae", "rel", "delta1", "delta2", "delta3")]
        self.sums += torch.stack(values).cpu()

    @property
    def count(self) -> int:
        """Images (``"image"``) or pixels (``"pixel"``) accumulated so far."""
        return int(self.sums[0])

    def compute(self) -> dict[str, float]:
        """The metrics of everything seen (see :data:`METRICS`)."""
        if self.count == 0:
            raise NetAdaptError("no valid depth pixels to compute metrics on (every ground-truth depth is missing)")
        total = dict(zip(self._FIELDS, self.sums.tolist(), strict=True))
        n = total["count"]
        rmse = math.sqrt(total["sq"] / n) if self.reduction == "pixel" else total["sq"] / n
        out = {"rmse": rmse, "rel": total["rel"] / n}
        for k in (1, 2, 3):
            out[f"delta{k}"] = total[f"delta{k}"] / n
        out["mae"] = total["abs"] / n
        return out


MetricFn = Callable[[Tensor, Tensor], tuple[float, int]]


@dataclass(frozen=True)
class _BatchMetric:
    """``(sum, count)`` of one depth metric over a batch (a picklable ``metric_fn``, so that the
    search's worker processes can receive it)."""

    name: str
    reduction: Reduction

    def __call__(self, outputs: Tensor, targets: Tensor) -> tuple[float, int]:
        if self.reduction == "pixel":
            key = {"rmse": "sq", "mae": "abs"}.get(self.name, self.name)
            sums, count = per_image_errors(outputs, targets)
            return float(sums[key].sum()), int(count.sum())
        per_image, seen = per_image_metrics(outputs, targets)
        return float(per_image[self.name][seen].sum()), int(seen.sum())


def search_metric(name: str, reduction: Reduction = "image") -> tuple[MetricFn, Callable[[float], float] | None, bool]:
    """``(metric_fn, finalize, higher_is_better)`` of depth metric ``name`` for the search's
    :class:`~netadapt.search.evaluate.SampleEvaluator`, which scores a sample as
    ``finalize(Σ sum / Σ count)`` over the held-out batches."""
    better = higher_is_better(name)
    if reduction not in ("image", "pixel"):
        raise NetAdaptError(f"depth metric reduction must be 'image' or 'pixel', got {reduction!r}")
    finalize = math.sqrt if (name == "rmse" and reduction == "pixel") else None
    return _BatchMetric(name, reduction), finalize, better
