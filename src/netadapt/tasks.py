"""What changes with the task a network is searched for: image classification (paper §4.1) or
depth estimation (§4.2, FastDepth on NYU Depth V2).

The task is named by the data (``data.dataset``: ``nyu`` and ``synthetic_depth`` hold depth
maps, the others class labels; :func:`task_for`) and must be the model's (``fastdepth`` is a
depth network).  A task is a small object holding what the stages need to know about it:

* the training loss and the distillation loss (in-place from the largest sub-network, or from
  a trained teacher), and the per-image statistic logged beside the training loss;
* validation during training: the running metric state that :func:`netadapt.evaluate.evaluate_metrics`
  fills (:meth:`metric_state`), and which of its metrics become the ``val_*`` keys of
  ``metrics.jsonl`` (:func:`validate_networks`);
* the search's score: a metric and its direction (a lower RMSE is better);
* the headline numbers of a trained network, for the summary and the report.

Both tasks read their data through :func:`netadapt.data.build_datasets` (same held-out split,
same batch order and resumption); only the batches differ: (images, labels) or (images,
depth maps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.arch.space import Architecture
from netadapt.data.config import DataConfig
from netadapt.depth.metrics import METRICS as DEPTH_METRICS
from netadapt.depth.metrics import masked_l1_loss, per_image_metrics, search_metric
from netadapt.errors import NetAdaptError
from netadapt.evaluate import (
    ClassificationState,
    Collective,
    DepthState,
    MetricFn,
    evaluate_metrics,
    top1_hits,
    top1_metric,
)
from netadapt.model.norm import recalibrate_bn_
from netadapt.model.supernet import SuperNet

__all__ = [
    "TASKS",
    "ClassificationTask",
    "DepthTask",
    "Score",
    "Task",
    "task_for",
    "task_named",
    "validate_networks",
    "validation_numbers",
]


@dataclass(frozen=True)
class Score:
    """How the search scores a sample: ``finalize(Σ sum / Σ count)`` of ``metric_fn(outputs,
    targets) -> (sum, count)`` over the held-out batches (see
    :class:`netadapt.search.evaluate.SampleEvaluator`), and which way is better.  One number per
    batch rather than a :class:`~netadapt.evaluate.MetricState` (why: :data:`netadapt.evaluate.MetricFn`)."""

    name: str
    metric_fn: MetricFn
    finalize: Callable[[float], float] | None
    higher_is_better: bool


class ClassificationTask:
    """Image classification: cross-entropy, top-1 accuracy."""

    name = "classification"
    scores = ("top1",)
    default_score = "top1"
    train_key = "train_top1"  # the per-image statistic of the training batches
    val_metrics = ("top1", "loss")  # the validation numbers (``val_top1``, ``val_loss``) …
    val_key = "val_top1"  # … the headline one …
    sub_keys = ("val_top1",)  # … and what is logged of each validated sub-network

    def better(self, a: float, b: float) -> bool:
        return a > b

    def loss(self, outputs: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
        return F.cross_entropy(outputs.float(), targets, label_smoothing=label_smoothing)

    def soft_target(self, teacher_outputs: Tensor) -> Tensor:
        """What distillation pulls the student towards: the teacher's class probabilities."""
        return F.softmax(teacher_outputs.float(), dim=1)

    def distill_loss(self, outputs: Tensor, soft_target: Tensor) -> Tensor:
        return F.cross_entropy(outputs.float(), soft_target)

    def hits(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Correct top-1 predictions in the batch (float64 scalar)."""
        return top1_hits(outputs, targets).double()

    def empty_target(self, net: SuperNet) -> Tensor:
        """The target of the zero-weight dummy image of an all-unreadable batch."""
        return torch.zeros(1, dtype=torch.long)

    def metric_state(self) -> ClassificationState:
        """Running top-1 and cross-entropy sums for :func:`~netadapt.evaluate.evaluate_metrics`."""
        return ClassificationState()

    def score(self, name: str | None = None) -> Score:
        name = name or self.default_score
        if name not in self.scores:
            raise NetAdaptError(f"classification samples are scored by {', '.join(self.scores)}, not {name!r}")
        return Score(name, top1_metric, None, True)

    def results(self, record: dict[str, Any]) -> dict[str, float | None]:
        """The headline numbers of a trained network from its last ``metrics.jsonl`` record."""
        return {"accuracy": record.get("val_top1")}


class DepthTask:
    """Depth estimation (FastDepth): masked L1 loss, RMSE / REL / δ1–δ3 (Table 7)."""

    name = "depth"
    scores = DEPTH_METRICS
    # Table 7 reports RMSE first; the paper does not say which metric compared the samples
    # (``search.score: delta1`` selects by Table 7's other column).
    default_score = "rmse"
    train_key = "train_delta1"
    val_metrics = (*DEPTH_METRICS, "loss")
    val_key = "val_rmse"
    sub_keys = ("val_rmse", "val_delta1")

    def better(self, a: float, b: float) -> bool:
        return a < b  # an error

    def loss(self, outputs: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
        """FastDepth's masked L1 loss (``label_smoothing`` is a classification setting, unused)."""
        return masked_l1_loss(outputs.float(), targets)

    def soft_target(self, teacher_outputs: Tensor) -> Tensor:
        """The teacher's predicted depth map."""
        return teacher_outputs.float()

    def distill_loss(self, outputs: Tensor, soft_target: Tensor) -> Tensor:
        # Plain L1 to the teacher's prediction over every pixel: the teacher has a depth
        # where the ground truth is missing, which is what distillation adds here.
        return F.l1_loss(outputs.float(), soft_target)

    def hits(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Σ over images of each image's δ1 (share of its valid pixels within 1.25×)."""
        per_image, seen = per_image_metrics(outputs, targets)
        return per_image["delta1"][seen].sum()

    def empty_target(self, net: SuperNet) -> Tensor:
        return torch.zeros(1, 1, net.input_size, net.input_size)  # no valid pixel: a zero loss

    def metric_state(self) -> DepthState:
        """Running depth-metric and L1-loss sums for :func:`~netadapt.evaluate.evaluate_metrics`."""
        return DepthState()

    def score(self, name: str | None = None) -> Score:
        name = name or self.default_score
        if name not in self.scores:
            raise NetAdaptError(f"depth samples are scored by one of {', '.join(self.scores)}, not {name!r}")
        metric_fn, finalize, higher = search_metric(name)
        return Score(name, metric_fn, finalize, higher)

    def results(self, record: dict[str, Any]) -> dict[str, float | None]:
        return {m: record.get(f"val_{m}") for m in DEPTH_METRICS}


Task = ClassificationTask | DepthTask


def validation_numbers(task: Task, model: nn.Module, loader: Iterable, context: Collective | None) -> dict[str, float]:
    """The ``val_*`` numbers of one network (``task.val_metrics``: ``val_top1`` and ``val_loss``;
    RMSE, REL, δ1–δ3, MAE and the L1 loss for depth), summed over the processes of ``context``."""
    result = evaluate_metrics(model, loader, task.metric_state(), context=context)
    return {f"val_{m}": result[m] for m in task.val_metrics}


def validate_networks(
    task: Task,
    net: SuperNet,
    loader: Iterable,
    context: Collective | None,
    *,
    arch: Architecture | None = None,
    calibration: Iterable | None = None,
) -> dict[str, float]:
    """The task's validation numbers (:func:`validation_numbers`) of ``net``'s initial network
    (or of ``arch``, with the statistics it was trained with), and with ``calibration`` batches
    those of the half-width (``_half``) and smallest (``_min``) sub-networks -- each network
    extracted and its BatchNorm recalibrated on the same images, so that no network is judged
    with statistics that mixed many sub-networks (paper §2.3)."""
    if arch is not None:
        return validation_numbers(task, net.extract(arch), loader, context)
    if calibration is None:
        return validation_numbers(task, net, loader, context)
    space = net.space
    archs = {"": space.full(), "_half": space.uniform(0.5), "_min": space.smallest()}
    out: dict[str, float] = {}
    for suffix, sub in archs.items():
        compact = recalibrate_bn_(net.extract(sub), (batch[0] for batch in calibration))
        values = validation_numbers(task, compact, loader, context)
        out.update(values if not suffix else {f"{k}{suffix}": values[k] for k in task.sub_keys})
    return out


TASKS: dict[str, Task] = {"classification": ClassificationTask(), "depth": DepthTask()}


def task_named(name: str) -> Task:
    """The task called ``name`` (``classification`` or ``depth``)."""
    if name not in TASKS:
        raise NetAdaptError(f"unknown task {name!r}; choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def task_for(data: DataConfig | dict[str, Any]) -> Task:
    """The task of a data configuration (or of its mapping, as stored in ``heldout.json``)."""
    if isinstance(data, dict):
        data = DataConfig(dataset=data.get("dataset", "digits"))
    return task_named(data.task)
