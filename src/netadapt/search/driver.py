""":func:`search`: the optimizer in a run folder, across processes, with its time recorded.

:func:`netadapt.search.optimizer.optimize` is plain Python over injected functions; the
wrappers here add what a real search needs around it: the run folder's lock (only the writing
process holds it), the torch.distributed ranks (rank 0 makes each iteration's samples and
broadcasts them, only rank 0 writes) and the ``timing.json`` entries of the search's steps
(paper Table 1).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TypeVar

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.lock import run_folder_lock
from netadapt.search.config import SearchConfig
from netadapt.search.distributed import broadcast_from_rank0, rank, world_size
from netadapt.search.optimizer import EvaluateFn, ResourceFn, SearchResult, optimize
from netadapt.search.records import RunFolder
from netadapt.search.timing import StepTime, record_step

__all__ = ["compute_on_rank0", "search", "timing_recorder"]

T = TypeVar("T")


def compute_on_rank0(fn: Callable[[], T]) -> T:
    """``fn()`` computed on rank 0 and broadcast to every rank (just ``fn()`` without
    torch.distributed): a measured latency may differ between processes, and the ranks must
    evaluate the same samples."""
    return broadcast_from_rank0(fn() if rank() == 0 else None)


def timing_recorder(folder: RunFolder, devices: int, supernet_time: StepTime | None) -> Callable[[float], None] | None:
    """The ``on_saved`` of a writing search: records the super-network training step (when
    known) and the sample evaluation step so far in the run folder's ``timing.json``."""
    if not folder.write:
        return None
    path = folder.path / "timing.json"

    def record(seconds: float) -> None:
        if supernet_time is not None:
            record_step(path, "supernet_training", supernet_time)
        record_step(path, "sample_evaluation", StepTime(seconds, devices))

    return record


def search(
    space: SearchSpace,
    initial_arch: Architecture,
    resource_fn: ResourceFn,
    evaluate_fn: EvaluateFn,
    config: SearchConfig | None = None,
    *,
    rng_seed: int,
    run_dir: str | Path | None = None,
    devices: int | None = None,
    write: bool | None = None,
    metadata: dict[str, Any] | None = None,
    supernet_time: StepTime | None = None,
    score_name: str | None = None,
) -> SearchResult:
    """Shrink ``initial_arch`` until its resource meets ``config.target`` (``netadapt.mcd``).

    ``rng_seed`` fixes every random choice: each iteration's samples are derived from
    ``(rng_seed, iteration)``, so a rerun in the same ``run_dir`` after a crash continues where
    the last finished iteration left off, takes already evaluated samples from
    ``evaluated.jsonl`` and ends with the same result as an uninterrupted run.  ``metadata``
    (e.g. the metric's name, the super-network file) is stored with the settings and must match
    on resume.  ``devices`` (default: the torch.distributed world size, else 1) turns wall-clock
    into device-hours; ``supernet_time`` is the training step's time, if known, for
    ``timing.json``.  Under torch.distributed only rank 0 writes (``write`` overrides) and every
    rank must call ``search`` with the same arguments.  ``score_name`` names what
    ``evaluate_fn`` returns (e.g. ``"top1"``, ``"rmse"``): the result's ``score_name``, and the
    key ``score_name`` beside each ``score`` in ``history.jsonl``, ``trajectory.json`` and
    ``family.json``.  The writing process holds the run folder's lock (:mod:`netadapt.lock`)
    throughout.
    """
    folder = RunFolder(run_dir, write=(rank() == 0) if write is None else write, score_name=score_name)
    on_saved = timing_recorder(folder, devices or world_size(), supernet_time)
    with run_folder_lock(folder.path) if folder.write else nullcontext():
        return optimize(space, initial_arch, resource_fn, evaluate_fn, config, rng_seed=rng_seed, folder=folder,
                        metadata=metadata, score_name=score_name, on_saved=on_saved, compute_once=compute_on_rank0)  # fmt: skip
