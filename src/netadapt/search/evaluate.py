"""Evaluating samples with the super-network's shared weights (paper §2.3-2.4).

A sample is evaluated as its *extracted* compact network (``supernet.extract(arch)``: real,
smaller convolutions, so the cost follows the sample's MACs) — or, for comparison, by masking
the full super-network (``supernet(x, arch)``).  Before scoring, its BatchNorm statistics are
recalibrated on a fixed, seeded set of training images (on by default): the sub-networks share
BN layers whose running statistics were accumulated while ordered dropout mixed many widths in
every batch (§2.3), so they describe no single sub-network; recomputing them for the sample
makes the held-out accuracy reflect the sample (as in Once-for-All and slimmable networks).

Samples are spread over ranks under ``torchrun`` (:mod:`netadapt.search.distributed`) or over a
pool of worker processes on one machine (``workers``); identical samples are evaluated once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.evaluate import MetricFn, top1_metric
from netadapt.model.norm import Forward, fold_bn_, recalibrate_bn_, recalibrated_bn
from netadapt.model.supernet import SuperNet
from netadapt.search.distributed import map_shared

__all__ = [
    "Batches",
    "EvalConfig",
    "MetricFn",
    "Preparer",
    "SampleEvaluator",
    "SharedWeights",
    "batch_pair",
    "fold_bn_",
    "recalibrate_bn_",
    "recalibrated_bn",
    "seeded_batches",
    "shared_weight_evaluator",
    "take_images",
    "top1_metric",
]

log = logging.getLogger(__name__)

#: Iterables of (images, targets, ...) batches: plain pairs or ``netadapt.data.Batch`` tuples
#: (whose extra fields are ignored).
Batches = Iterable[tuple[Tensor, ...]]


def batch_pair(batch: Any) -> tuple[Tensor, Tensor]:
    """(images, targets) of one batch (the first two fields of a tuple)."""
    try:
        return batch[0], batch[1]
    except (TypeError, IndexError, KeyError):
        raise NetAdaptError(f"a batch must be (images, targets, ...), got {type(batch).__name__}") from None


# -- fixed image sets ----------------------------------------------------------------------------
def take_images(batches: Batches, images: int) -> list[tuple[Tensor, Tensor]]:
    """The first ``images`` images of ``batches`` as a list of CPU batches (the last one cut)."""
    out, seen = [], 0
    for batch in batches:
        if seen >= images:
            break
        x, y = batch_pair(batch)
        keep = min(images - seen, x.shape[0])
        out.append((x[:keep].cpu(), y[:keep].cpu()))
        seen += keep
    return out


def seeded_batches(dataset: Any, images: int, batch_size: int, *, seed: int) -> list[tuple[Tensor, Tensor]]:
    """``images`` images drawn without replacement from ``dataset`` (``len`` and ``[i] -> (x, y)``)
    by a seeded ``torch.Generator``, stacked into batches: the same set for every sample."""
    if images < 1 or batch_size < 1:
        raise NetAdaptError(f"need a positive number of images and batch size, got {images} and {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=generator)[:images].tolist()
    batches = []
    for start in range(0, len(order), batch_size):
        items = [dataset[i] for i in order[start : start + batch_size]]
        batches.append((torch.stack([torch.as_tensor(x) for x, _ in items]), torch.as_tensor([y for _, y in items])))
    return batches


# -- how a sample's network is prepared ----------------------------------------------------------
class Preparer(Protocol):
    """Makes the network that scores one sample: a context manager yielding its forward
    function in eval mode (exit undoes whatever it changed in the super-network)."""

    def __call__(self, supernet: SuperNet, arch: Architecture, device: torch.device) -> AbstractContextManager[Forward]: ...


@dataclass(frozen=True)
class EvalConfig:
    """Settings of shared-weight sample evaluation."""

    recalibrate_bn: bool = True  # see the module docstring; off = the super-network's statistics
    calibration_images: int = 2000  # images of the fixed calibration set (taken in order)
    mode: Literal["extract", "masked"] = "extract"  # masked = the full super-network with masks (slower)
    device: str = "cpu"  # netadapt run and search set it from their own device
    workers: int = 0  # worker processes on this machine (0 = evaluate in this process)
    threads_per_worker: int = 1  # torch threads of each worker process
    autocast: bool = False  # bfloat16 autocast on CUDA (throughput; rankings are what matter)
    fold_bn: bool = True  # extract mode: fold BN into the convolutions after recalibration (faster)
    channels_last: bool = True  # extract mode: the sample's network in the channels-last memory format (faster)

    def validate(self) -> None:
        if self.calibration_images < 1:
            raise NetAdaptError(f"calibration_images must be positive, got {self.calibration_images}")
        if self.mode not in ("extract", "masked"):
            raise NetAdaptError(f"evaluation mode must be 'extract' or 'masked', got {self.mode!r}")
        if self.workers < 0 or self.threads_per_worker < 1:
            raise NetAdaptError("workers must be >= 0 and threads_per_worker >= 1")


class SharedWeights:
    """Prepares a sample from the super-network's weights, BN recalibrated on ``calibration``."""

    def __init__(
        self,
        calibration: list[tuple[Tensor, Tensor]] | None,
        *,
        mode: str = "extract",
        fold_bn: bool = True,
        channels_last: bool = True,
    ) -> None:
        self.calibration = calibration
        self.mode = mode
        self.fold_bn = fold_bn
        self.channels_last = channels_last

    def _images(self, device: torch.device) -> Iterator[Tensor]:
        for batch in self.calibration or []:
            yield batch_pair(batch)[0].to(device, non_blocking=True)

    @contextmanager
    def __call__(self, supernet: SuperNet, arch: Architecture, device: torch.device) -> Iterator[Forward]:
        if self.mode == "extract":
            net = supernet.extract(arch)
            if self.channels_last:  # oneDNN's and cuDNN's faster convolutions (benchmarks/bench_eval.py)
                net = net.to(memory_format=torch.channels_last)
            if self.calibration is not None:
                recalibrate_bn_(net, self._images(device))
            net.eval()
            yield fold_bn_(net) if self.fold_bn else net  # folded weights keep the memory format
            return

        def forward(x: Tensor) -> Tensor:
            return supernet(x, arch)

        if self.calibration is None:
            was_training = supernet.training
            supernet.eval()
            try:
                yield forward
            finally:
                supernet.train(was_training)
            return
        with recalibrated_bn(supernet, self._images(device), forward=forward):
            yield forward


# -- the evaluator -------------------------------------------------------------------------------
class SampleEvaluator:
    """``evaluate_fn`` for :func:`netadapt.search.search`: scores of a list of architectures.

    Each sample's network is made by ``prepare`` and scored on every batch of ``heldout`` with
    ``metric_fn``.  Results are cached by architecture.  Under torch.distributed each rank scores
    an interleaved share; with ``workers > 0`` a pool of spawned processes does (created on first
    use; :meth:`close` or a ``with`` block ends it).
    """

    def __init__(
        self,
        supernet: SuperNet,
        heldout: Batches,
        prepare: Preparer,
        *,
        metric_fn: MetricFn = top1_metric,
        finalize: Callable[[float], float] | None = None,
        device: str | torch.device = "cpu",
        workers: int = 0,
        threads_per_worker: int = 1,
        autocast: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.supernet = supernet.to(self.device)
        self.heldout = heldout
        self.prepare = prepare
        self.metric_fn = metric_fn
        self.finalize = finalize
        self.workers = workers
        self.threads_per_worker = threads_per_worker
        self.autocast = autocast and self.device.type == "cuda"
        self.cache: dict[Architecture, float] = {}
        self._pool: Any = None

    # pickled into worker processes without the pool
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pool"] = None
        state["workers"] = 0
        return state

    def __enter__(self) -> SampleEvaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the worker pool, if any."""
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def score(self, forward: Forward) -> float:
        """The metric of ``forward`` over the held-out batches."""
        total, count = 0.0, 0
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else nullcontext()
        with torch.inference_mode(), amp:
            for batch in self.heldout:
                x, y = batch_pair(batch)
                out = forward(x.to(self.device, non_blocking=True))
                s, n = self.metric_fn(out.float(), y.to(self.device, non_blocking=True))
                total += float(s)
                count += int(n)
        if count == 0:
            raise NetAdaptError("the held-out set is empty")
        value = total / count
        return self.finalize(value) if self.finalize is not None else value

    def evaluate(self, arch: Architecture) -> float:
        """The score of one architecture (cached)."""
        if arch not in self.cache:
            with self.prepare(self.supernet, arch, self.device) as forward:
                self.cache[arch] = self.score(forward)
        return self.cache[arch]

    def _evaluate_local(self, archs: list[Architecture]) -> list[float]:
        if self.workers > 0 and len(archs) > 1:
            if self._pool is None:
                context = torch.multiprocessing.get_context("spawn")
                self._pool = context.Pool(self.workers, initializer=_init_worker, initargs=(self, self.threads_per_worker))
            return list(self._pool.map(_evaluate_in_worker, archs, chunksize=1))
        return [self.evaluate(a) for a in archs]

    def __call__(self, archs: list[Architecture]) -> list[float]:
        pending = list(dict.fromkeys(a for a in archs if a not in self.cache))
        for arch, value in zip(pending, map_shared(self._evaluate_local, pending), strict=True):
            self.cache[arch] = value
        return [self.cache[a] for a in archs]


_WORKER: SampleEvaluator | None = None


def _init_worker(evaluator: SampleEvaluator, threads: int) -> None:
    global _WORKER  # the one evaluator of a spawned worker process, set once by the pool
    torch.set_num_threads(threads)
    _WORKER = evaluator


def _evaluate_in_worker(arch: Architecture) -> float:
    assert _WORKER is not None, "worker not initialized"
    return _WORKER.evaluate(arch)


def shared_weight_evaluator(
    supernet: SuperNet,
    heldout: Batches,
    calibration: Batches | None,
    config: EvalConfig | None = None,
    *,
    metric_fn: MetricFn = top1_metric,
    finalize: Callable[[float], float] | None = None,
) -> SampleEvaluator:
    """The evaluator of NetAdaptV2: each sample runs on the trained super-network's weights.

    ``calibration`` supplies the BN recalibration images (the first
    ``config.calibration_images`` of it are kept once, so every sample sees the same set; use
    :func:`seeded_batches` for a seeded random subset of the training set).
    """
    config = config or EvalConfig()
    config.validate()
    if config.recalibrate_bn and calibration is None:
        raise NetAdaptError("BatchNorm recalibration needs calibration images (or turn recalibrate_bn off)")
    fixed = take_images(calibration, config.calibration_images) if config.recalibrate_bn else None
    return SampleEvaluator(
        supernet,
        heldout,
        SharedWeights(fixed, mode=config.mode, fold_bn=config.fold_bn, channels_last=config.channels_last),
        metric_fn=metric_fn,
        finalize=finalize,
        device=config.device,
        workers=config.workers,
        threads_per_worker=config.threads_per_worker,
        autocast=config.autocast,
    )
