"""Top-1 accuracy and loss of a network, a super-network or one of its sub-networks; the depth
metrics of a depth network (paper Table 7); the per-batch top-1 metric the search sums.

Below the tasks, training and search (``docs/design.md``): they all evaluate through here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.arch.space import Architecture
from netadapt.depth.metrics import DepthMetrics, valid_mask
from netadapt.model.supernet import SuperNet
from netadapt.trace.elastic import GraphSuperNet

__all__ = ["Collective", "MetricFn", "eval_mode", "evaluate", "evaluate_depth", "top1_metric"]

log = logging.getLogger(__name__)

#: ``metric_fn(outputs, targets) -> (sum, count)`` for one batch; the score is
#: ``finalize(total_sum / total_count)`` (e.g. ``finalize=math.sqrt`` on squared errors = RMSE).
MetricFn = Callable[[Tensor, Tensor], tuple[float, int]]


class Collective(Protocol):
    """What evaluation needs of a distributed context (:class:`netadapt.train.distributed.DistContext`):
    the element-wise sum of per-process numbers over all processes."""

    def sum(self, values: Sequence[float]) -> list[float]: ...


def top1_metric(outputs: Tensor, targets: Tensor) -> tuple[float, int]:
    """Correct top-1 predictions and images in the batch."""
    return float((outputs.argmax(1) == targets).sum()), int(targets.shape[0])


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in evaluation mode and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def _outputs(
    model: nn.Module,
    loader: Iterable,
    arch: Architecture | None,
    device: torch.device | str | None,
    max_batches: int | None,
    skipped: list[int],
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(float outputs, targets) of ``model`` (or its sub-network ``arch``, extracted) for each
    non-empty batch of ``loader``, in eval mode; unreadable images are counted in ``skipped[0]``."""
    if arch is not None:
        if not isinstance(model, (SuperNet, GraphSuperNet)):
            raise TypeError("an architecture can only be evaluated on a SuperNet")
        model = model.extract(arch)
    if device is None:
        device = next(model.parameters()).device
    with eval_mode(model):
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            skipped[0] += len(getattr(batch, "skipped", ()))
            x, y = batch[0], batch[1]  # Batch, DepthBatch (named tuples) or a plain pair
            if len(y) == 0:
                continue
            yield model(x.to(device, non_blocking=True)).float(), y.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    arch: Architecture | None = None,
    *,
    device: torch.device | str | None = None,
    context: Collective | None = None,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy of ``model`` over ``loader``.

    ``model`` is any classifier or a :class:`SuperNet`; with ``arch`` the super-network's
    sub-network is extracted and evaluated as its compact network (running statistics as stored
    — recalibrate them first where that matters).  ``loader`` yields
    :class:`~netadapt.data.batches.Batch` or ``(images, labels)`` pairs.  With a distributed
    ``context`` each process evaluates its shard and the sums are combined.  Returns
    ``{"top1", "loss", "images", "skipped"}``.
    """
    correct = loss = images = 0.0
    count = [0]
    for logits, y in _outputs(model, loader, arch, device, max_batches, count):
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += float((logits.argmax(1) == y).sum())
        images += len(y)
    skipped = float(count[0])
    if context is not None:
        correct, loss, images, skipped = context.sum([correct, loss, images, skipped])
    if skipped:
        log.warning("evaluation skipped %d unreadable images", int(skipped))
    n = max(images, 1.0)
    return {"top1": correct / n, "loss": loss / n, "images": int(images), "skipped": int(skipped)}


@torch.no_grad()
def evaluate_depth(
    model: nn.Module,
    loader: Iterable,
    arch: Architecture | None = None,
    *,
    device: torch.device | str | None = None,
    context: Collective | None = None,
    max_batches: int | None = None,
) -> dict[str, float]:
    """Depth metrics of ``model`` over ``loader``'s (images, depth maps, …) batches.

    RMSE, REL, δ1–δ3 and MAE are computed per image and averaged over images, as FastDepth
    does (:class:`~netadapt.depth.metrics.DepthMetrics`); ``loss`` is FastDepth's masked L1 loss
    pooled over every valid pixel.  ``arch`` and ``context`` as in :func:`evaluate`.  Returns
    ``{"rmse", "rel", "delta1", "delta2", "delta3", "mae", "loss", "images", "skipped"}``.
    """
    metrics = DepthMetrics("image")
    loss = pixels = images = 0.0
    count = [0]
    for pred, y in _outputs(model, loader, arch, device, max_batches, count):
        metrics.update(pred, y)
        mask = valid_mask(y)
        loss += float(((pred - torch.where(mask, y, 0.0)).abs() * mask).sum())
        pixels += float(mask.sum())
        images += len(y)
    skipped = float(count[0])
    if context is not None:
        totals = context.sum([*metrics.sums.tolist(), loss, pixels, images, skipped])
        metrics.sums = torch.tensor(totals[: len(metrics.sums)], dtype=torch.float64)
        loss, pixels, images, skipped = totals[len(metrics.sums) :]
    if skipped:
        log.warning("evaluation skipped %d unreadable frames", int(skipped))
    return {**metrics.compute(), "loss": loss / max(pixels, 1.0), "images": int(images), "skipped": int(skipped)}
