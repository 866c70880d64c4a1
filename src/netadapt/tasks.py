"""What changes with the task a network is searched for: image classification (paper §4.1) or
depth estimation (§4.2, FastDepth on NYU Depth V2).

The task is named by the data (``data.dataset``: ``nyu`` and ``synthetic_depth`` hold depth
maps, the others class labels; :func:`task_for`) and must be the model's (``fastdepth`` is a
depth network).  A task is a small object holding what the stages need to know about it:

* the training loss and the distillation loss (in-place from the largest sub-network, or from
  a trained teacher), and the per-image statistic logged beside the training loss;
* validation during training: the ``val_*`` keys of ``metrics.jsonl``;
* the search's score: a metric and its direction (a lower RMSE is better);
* the headline numbers of a trained network, for the summary and the report.

Both tasks read their data through :func:`netadapt.data.build_datasets` (same held-out split,
same batch order and resumption); only the batches differ: (images, labels) or (images,
depth maps).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from netadapt.arch.space import Architecture
from netadapt.data.config import DataConfig
from netadapt.depth.metrics import METRICS as DEPTH_METRICS
from netadapt.depth.metrics import masked_l1_loss, per_image_errors, search_metric
from netadapt.errors import NetAdaptError
from netadapt.model.supernet import SuperNet
from netadapt.search.evaluate import MetricFn, top1_metric

if TYPE_CHECKING:
    from netadapt.train.distributed import DistContext

__all__ = ["TASKS", "ClassificationTask", "DepthTask", "Score", "Task", "task_for", "task_named"]


@dataclass(frozen=True)
class Score:
    """How the search scores a sample: ``finalize(Σ sum / Σ count)`` of ``metric_fn(outputs,
    targets) -> (sum, count)`` over the held-out batches (see
    :class:`netadapt.search.evaluate.SampleEvaluator`), and which way is better."""

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

    def loss(self, outputs: Tensor, targets: Tensor, *, label_smoothing: float = 0.0) -> Tensor:
        return F.cross_entropy(outputs.float(), targets, label_smoothing=label_smoothing)

    def soft_target(self, teacher_outputs: Tensor) -> Tensor:
        """What distillation pulls the student towards: the teacher's class probabilities."""
        return F.softmax(teacher_outputs.float(), dim=1)

    def distill_loss(self, outputs: Tensor, soft_target: Tensor) -> Tensor:
        return F.cross_entropy(outputs.float(), soft_target)

    def hits(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Correct top-1 predictions in the batch (float64 scalar)."""
        return (outputs.argmax(1) == targets).sum().double()

    def empty_target(self, net: SuperNet) -> Tensor:
        """The target of the zero-weight dummy image of an all-unreadable batch."""
        return torch.zeros(1, dtype=torch.long)

    def validate(
        self,
        net: SuperNet,
        loader: Iterable,
        context: DistContext | None,
        *,
        arch: Architecture | None = None,
        sub_networks: bool = False,
    ) -> dict[str, float]:
        """Validation accuracy of the full network and (with ordered dropout) of the half-width
        one; of ``arch`` alone when one architecture is trained."""
        from netadapt.train.evaluate import evaluate  # netadapt.train imports this module

        if arch is not None:
            result = evaluate(net, loader, arch, context=context)
            return {"val_top1": result["top1"], "val_loss": result["loss"]}
        full = evaluate(net, loader, context=context)
        out = {"val_top1": full["top1"], "val_loss": full["loss"]}
        if sub_networks:
            out["val_top1_half"] = evaluate(net, loader, net.space.uniform(0.5), context=context)["top1"]
        return out

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
        sums, count = per_image_errors(outputs, targets)
        seen = count > 0
        return (sums["delta1"] / count.clamp(min=1))[seen].sum()

    def empty_target(self, net: SuperNet) -> Tensor:
        return torch.zeros(1, 1, net.input_size, net.input_size)  # no valid pixel: a zero loss

    def validate(
        self,
        net: SuperNet,
        loader: Iterable,
        context: DistContext | None,
        *,
        arch: Architecture | None = None,
        sub_networks: bool = False,
    ) -> dict[str, float]:
        """RMSE, REL, δ1–δ3, MAE and the L1 loss of the full network (or of ``arch``), and with
        ordered dropout RMSE and δ1 of the uniform half-width sub-network."""
        from netadapt.train.evaluate import evaluate_depth  # netadapt.train imports this module

        result = evaluate_depth(net, loader, arch, context=context)
        out = {f"val_{m}": result[m] for m in DEPTH_METRICS}
        out["val_loss"] = result["loss"]
        if sub_networks and arch is None:
            half = evaluate_depth(net, loader, net.space.uniform(0.5), context=context)
            out["val_rmse_half"], out["val_delta1_half"] = half["rmse"], half["delta1"]
        return out

    def score(self, name: str | None = None) -> Score:
        name = name or self.default_score
        if name not in self.scores:
            raise NetAdaptError(f"depth samples are scored by one of {', '.join(self.scores)}, not {name!r}")
        metric_fn, finalize, higher = search_metric(name)
        return Score(name, metric_fn, finalize, higher)

    def results(self, record: dict[str, Any]) -> dict[str, float | None]:
        return {m: record.get(f"val_{m}") for m in DEPTH_METRICS}


Task = ClassificationTask | DepthTask
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
