"""NetAdaptV1's sample evaluation without a super-network: short-term fine-tuning per sample.

NetAdaptV1 [1] trains every sample on its own for a short while before measuring its held-out
accuracy; NetAdaptV2's super-network with ordered dropout replaces that (paper §2.3, Table 3:
the search time drops 3.3× at the same accuracy-latency trade-off).  This evaluator is the
baseline: the same optimizer code, only the ``evaluate_fn`` differs.

Each sample starts from the weights of ``supernet`` (any trained network built as a
super-network, e.g. the initial network's pretrained weights; ordered channels: the first
filters are kept) and is fine-tuned for ``steps`` batches.  NetAdaptV1 itself starts each
iteration's samples from the previous iteration's fine-tuned best; starting every sample from
the same weights keeps the evaluator a pure function of the architecture, which the cache, the
exact resume and the distributed sharing all rely on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.model.norm import recalibrate_bn_
from netadapt.model.supernet import SuperNet
from netadapt.search.evaluate import Batches, Forward, MetricFn, SampleEvaluator, batch_pair, top1_metric

__all__ = ["FineTune", "finetune_evaluator"]

log = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]


def _repeat(batches: Batches) -> Iterator[tuple[Tensor, ...]]:
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise NetAdaptError("the fine-tuning training set is empty")


class FineTune:
    """Prepares a sample by extracting it and fine-tuning it for ``steps`` batches (SGD)."""

    def __init__(
        self,
        train: Batches,
        *,
        steps: int,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 4e-5,
        loss_fn: LossFn = F.cross_entropy,
        seed: int = 0,
        calibration: list[tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        if steps < 0:
            raise NetAdaptError(f"fine-tuning steps must be >= 0, got {steps}")
        self.train = train
        self.steps = steps
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.loss_fn = loss_fn
        self.seed = seed
        self.calibration = calibration

    def finetune_(self, net: nn.Module, device: torch.device) -> nn.Module:
        """Fine-tune ``net`` in place; it is left in eval mode."""
        net.train()
        optimizer = torch.optim.SGD(net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        # Dropout draws from torch's default generator: fork it, seeded, so that a sample's
        # score depends only on its architecture (the cache and the resume rely on it).
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            batches = _repeat(self.train)
            for _ in range(self.steps):
                x, y = batch_pair(next(batches))
                loss = self.loss_fn(net(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        if self.calibration is not None:
            # A few steps move BatchNorm's running statistics little (MobileNetV3's momentum 0.01
            # keeps 90% of the full network's after 10 steps): recompute them for this network,
            # as the shared-weight evaluator does, so the short fine-tuning is judged fairly.
            recalibrate_bn_(net, (batch_pair(b)[0].to(device, non_blocking=True) for b in self.calibration))
        return net.eval()

    @contextmanager
    def __call__(self, supernet: SuperNet, arch: Architecture, device: torch.device) -> Iterator[Forward]:
        net = supernet.extract(arch)  # a copy: the super-network's weights are untouched
        with torch.enable_grad():
            self.finetune_(net, device)
        yield net


def finetune_evaluator(
    supernet: SuperNet,
    train: Batches,
    heldout: Batches,
    *,
    steps: int,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 4e-5,
    loss_fn: LossFn = F.cross_entropy,
    metric_fn: MetricFn = top1_metric,
    finalize: Callable[[float], float] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    workers: int = 0,
    threads_per_worker: int = 1,
    calibration: list[tuple[Tensor, Tensor]] | None = None,
) -> SampleEvaluator:
    """The NetAdaptV1 baseline's ``evaluate_fn``: each sample is fine-tuned for ``steps``
    batches of ``train`` (cycled) before its ``heldout`` score is measured; with
    ``calibration`` (fixed batches of training images) its BatchNorm statistics are then
    recomputed on them."""
    return SampleEvaluator(
        supernet,
        heldout,
        FineTune(
            train,
            steps=steps,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            loss_fn=loss_fn,
            seed=seed,
            calibration=calibration,
        ),
        metric_fn=metric_fn,
        finalize=finalize,
        device=device,
        workers=workers,
        threads_per_worker=threads_per_worker,
    )
