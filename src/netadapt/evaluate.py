"""The metrics of a network, a super-network or one of its sub-networks over a loader: one loop
(:func:`evaluate_metrics`) fed by a summable metric state that the task supplies --
:class:`ClassificationState` (top-1 and cross-entropy) or :class:`DepthState` (the depth metrics
of paper Table 7 and FastDepth's L1 loss); :func:`evaluate` and :func:`evaluate_depth` run it
with one of them.  Also the one top-1 count (:func:`top1_hits`) that training, validation and
the search share, and the per-batch top-1 metric the search sums.

Below the tasks, training and search (``docs/design.md``): they all evaluate through here."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.arch.space import Architecture
from netadapt.depth.metrics import DepthMetrics, masked_l1_sum
from netadapt.model.layers import ElasticConv
from netadapt.model.norm import fold_bn_
from netadapt.model.supernet import SuperNet
from netadapt.trace.elastic import GraphSuperNet

__all__ = [
    "ClassificationState",
    "Collective",
    "DepthState",
    "MetricFn",
    "MetricState",
    "eval_mode",
    "evaluate",
    "evaluate_depth",
    "evaluate_metrics",
    "inference_copy",
    "top1_hits",
    "top1_metric",
]

log = logging.getLogger(__name__)

#: ``metric_fn(outputs, targets) -> (sum, count)`` for one batch; the search scores a sample as
#: ``finalize(total_sum / total_count)`` (e.g. ``finalize=math.sqrt`` on squared errors = RMSE).
#: The search keeps this one-number form rather than a :class:`MetricState`: a sample's score
#: is one metric computed for hundreds of samples (a state would also compute every other
#: metric and the loss on each batch), the samples -- not the batches -- are split over
#: processes (nothing to sum across them), and ``metric_fn`` is the search's injection point
#: for a user's own metric (picklable, for the worker processes).
MetricFn = Callable[[Tensor, Tensor], tuple[float, int]]


class Collective(Protocol):
    """What evaluation needs of a distributed context (:class:`netadapt.train.distributed.DistContext`):
    the element-wise sum of per-process numbers over all processes."""

    def sum(self, values: Sequence[float]) -> list[float]: ...


class MetricState(Protocol):
    """Running sums of a task's metrics over the batches one process evaluates.

    ``update`` adds a batch; ``totals`` are the sums, in a fixed order, so that processes can
    add them element-wise (:meth:`Collective.sum`) and ``load`` the sums of all processes back
    in; ``result`` turns the sums into the metrics (with ``"images"``, the images counted)."""

    def update(self, outputs: Tensor, targets: Tensor) -> None: ...

    def totals(self) -> list[float]: ...

    def load(self, totals: Sequence[float]) -> None: ...

    def result(self) -> dict[str, float]: ...


def top1_hits(outputs: Tensor, targets: Tensor) -> Tensor:
    """Correct top-1 predictions among the batch's (B, classes) ``outputs`` (an integer scalar
    on their device): the one top-1 count of training, validation and the search."""
    return (outputs.argmax(1) == targets).sum()


def top1_metric(outputs: Tensor, targets: Tensor) -> tuple[float, int]:
    """Correct top-1 predictions and images in the batch (the search's default :data:`MetricFn`)."""
    return float(top1_hits(outputs, targets)), int(targets.shape[0])


class ClassificationState:
    """Top-1 accuracy (fraction) and mean cross-entropy over images."""

    def __init__(self) -> None:
        self.correct = self.loss = self.images = 0.0

    def update(self, outputs: Tensor, targets: Tensor) -> None:
        self.loss += float(F.cross_entropy(outputs, targets, reduction="sum"))
        self.correct += float(top1_hits(outputs, targets))
        self.images += len(targets)

    def totals(self) -> list[float]:
        return [self.correct, self.loss, self.images]

    def load(self, totals: Sequence[float]) -> None:
        self.correct, self.loss, self.images = totals

    def result(self) -> dict[str, float]:
        n = max(self.images, 1.0)
        return {"top1": self.correct / n, "loss": self.loss / n, "images": int(self.images)}


class DepthState:
    """Depth metrics averaged over images, as FastDepth does
    (:class:`~netadapt.depth.metrics.DepthMetrics`), and FastDepth's masked L1 loss pooled over
    every valid pixel."""

    def __init__(self) -> None:
        self.metrics = DepthMetrics("image")
        self.loss = self.pixels = self.images = 0.0

    def update(self, outputs: Tensor, targets: Tensor) -> None:
        self.metrics.update(outputs, targets)
        loss, pixels = masked_l1_sum(outputs, targets)
        self.loss += float(loss)
        self.pixels += float(pixels)
        self.images += len(targets)

    def totals(self) -> list[float]:
        return [*self.metrics.sums.tolist(), self.loss, self.pixels, self.images]

    def load(self, totals: Sequence[float]) -> None:
        n = len(self.metrics.sums)
        self.metrics.sums = torch.tensor(totals[:n], dtype=torch.float64)
        self.loss, self.pixels, self.images = totals[n:]

    def result(self) -> dict[str, float]:
        return {**self.metrics.compute(), "loss": self.loss / max(self.pixels, 1.0), "images": int(self.images)}


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in evaluation mode and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def inference_copy(model: nn.Module) -> nn.Module:
    """What :func:`evaluate_metrics` runs for a netadapt network (a super-network or a network
    of :class:`~netadapt.model.layers.ElasticConv` layers): a copy in eval mode with every
    BatchNorm folded into its convolution (:func:`~netadapt.model.norm.fold_bn_`) and the weights
    in the channels-last memory format -- the same outputs up to rounding, one pass over every
    activation map fewer per layer, and oneDNN's and cuDNN's faster convolutions
    (``benchmarks/bench_eval.py``).  ``model`` itself is untouched.  Returned as it is: any
    other module, and a model with forward hooks (a copy would run copies of them, whose effects
    the caller would not see)."""
    modules = list(model.modules())
    if not any(isinstance(m, ElasticConv) for m in modules) or any(m._forward_hooks or m._forward_pre_hooks for m in modules):
        return model
    copied = fold_bn_(copy.deepcopy(model).eval())
    return copied.to(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate_metrics(
    model: nn.Module,
    loader: Iterable,
    state: MetricState,
    arch: Architecture | None = None,
    *,
    device: torch.device | str | None = None,
    context: Collective | None = None,
    max_batches: int | None = None,
    fast: bool = True,
) -> dict[str, float]:
    """``state``'s metrics of ``model`` over ``loader``, and ``"skipped"``: the unreadable images.

    ``model`` is any network or a :class:`SuperNet`; with ``arch`` the super-network's
    sub-network is extracted and evaluated as its compact network (running statistics as stored
    — recalibrate them first where that matters).  ``loader`` yields
    :class:`~netadapt.data.batches.Batch`, :class:`~netadapt.data.depth.DepthBatch` or
    ``(inputs, targets)`` pairs.  With a distributed ``context`` each process evaluates its
    shard and the sums are combined; ``max_batches`` stops early.  ``fast``: a netadapt network
    runs as its :func:`inference_copy` (BatchNorm folded, channels-last); ``False`` runs
    ``model`` as it is (the same numbers up to rounding).
    """
    if arch is not None:
        if not isinstance(model, (SuperNet, GraphSuperNet)):
            raise TypeError("an architecture can only be evaluated on a SuperNet")
        model = model.extract(arch)
    if device is None:
        device = next(model.parameters()).device
    if fast:
        model = inference_copy(model)
    skipped = 0
    with eval_mode(model):
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            skipped += len(getattr(batch, "skipped", ()))
            x, y = batch[0], batch[1]  # Batch, DepthBatch (named tuples) or a plain pair
            if len(y) == 0:
                continue
            state.update(model(x.to(device, non_blocking=True)).float(), y.to(device, non_blocking=True))
    totals = [*state.totals(), float(skipped)]
    if context is not None:
        totals = context.sum(totals)
        state.load(totals[:-1])
    skipped = int(totals[-1])
    if skipped:
        log.warning("evaluation skipped %d unreadable images", skipped)
    return {**state.result(), "skipped": skipped}


def evaluate(
    model: nn.Module,
    loader: Iterable,
    arch: Architecture | None = None,
    *,
    device: torch.device | str | None = None,
    context: Collective | None = None,
    max_batches: int | None = None,
    fast: bool = True,
) -> dict[str, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy of classifier ``model`` over ``loader``
    (:func:`evaluate_metrics` with a :class:`ClassificationState`).  Returns ``{"top1",
    "loss", "images", "skipped"}``."""
    state = ClassificationState()
    return evaluate_metrics(model, loader, state, arch, device=device, context=context, max_batches=max_batches, fast=fast)


def evaluate_depth(
    model: nn.Module,
    loader: Iterable,
    arch: Architecture | None = None,
    *,
    device: torch.device | str | None = None,
    context: Collective | None = None,
    max_batches: int | None = None,
    fast: bool = True,
) -> dict[str, float]:
    """Depth metrics of ``model`` over ``loader``'s (images, depth maps, …) batches
    (:func:`evaluate_metrics` with a :class:`DepthState`): RMSE, REL, δ1–δ3 and MAE per image
    averaged over images, the L1 loss over valid pixels.  Returns ``{"rmse", "rel", "delta1",
    "delta2", "delta3", "mae", "loss", "images", "skipped"}``."""
    state = DepthState()
    return evaluate_metrics(model, loader, state, arch, device=device, context=context, max_batches=max_batches, fast=fast)
