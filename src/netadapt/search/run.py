"""A whole search from a super-network file: metric, data, evaluator, optimizer, run folder.

This is what ``netadapt search`` runs; the end-to-end pipeline calls :func:`run_search` with a
:class:`SearchRunConfig` directly.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from netadapt.arch.files import load_architecture
from netadapt.arch.space import Architecture
from netadapt.config import config_to_dict, yaml_text
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write, read_jsonl, save_json
from netadapt.lock import run_folder_lock
from netadapt.model.checkpoint import load_supernet
from netadapt.model.supernet import SuperNet
from netadapt.resources.counting import count_macs, count_params
from netadapt.resources.parse import parse_metric
from netadapt.search.config import SearchConfig
from netadapt.search.driver import search
from netadapt.search.evaluate import Batches, EvalConfig, SampleEvaluator, batch_pair, shared_weight_evaluator, take_images
from netadapt.search.noise import selection_noise
from netadapt.search.optimizer import SearchResult, check_run_folder, check_search_inputs
from netadapt.search.timing import StepTime, load_timing, step_from_metadata
from netadapt.tasks import Score, Task, task_named

__all__ = ["SearchRunConfig", "build_resource_fn", "run_search"]

log = logging.getLogger(__name__)


@dataclass
class SearchRunConfig:
    """Everything ``netadapt search`` needs (YAML file, then ``--set``, then flags)."""

    supernet: str = ""  # the super-network file written by train-supernet
    metric: str = "macs"  # macs | params | latency:LUT.json | measured:BACKEND | command:'...'
    # How samples are compared on the held-out images: classification top1; depth rmse (the
    # default), rel, delta1, delta2, delta3 or mae.  The direction follows the metric.
    score: str | None = None  # None: the task's default
    run_dir: str | None = None  # None: a "search" folder beside the super-network file
    seed: int = 0  # seeds the samples of every iteration and the calibration images
    initial_arch: str | None = None  # an architecture JSON to start from (default: the full network)
    device: str = "auto"  # auto: cuda:LOCAL_RANK when available, else cpu
    # held-out and calibration batches, and NetAdaptV1's fine-tuning batches; None: scoring in
    # batches of 64 on a CPU, 256 on a GPU (a CPU scores a sample 1.5-2x faster in batches of 32-128
    # than of 256-500: benchmarks/bench_sample_eval.py), fine-tuning in batches of 256 on any device
    batch_size: int | None = None
    data_root: str | None = None  # the data folder, when it moved since training
    metric_timeout: float = 600.0  # seconds one run of a command: metric may take (then it is killed and retried)
    heldout_in_memory_mb: int = 2048  # keep the decoded held-out set in memory when it fits
    finetune_steps: int = 0  # > 0: the NetAdaptV1 baseline (each sample fine-tuned this many batches)
    finetune_lr: float = 0.01  # learning rate of that fine-tuning
    supernet_hours: float | None = None  # super-network training wall-clock hours, when the file lacks them
    supernet_devices: int = 1  # devices that training used (with supernet_hours)
    search: SearchConfig = field(default_factory=SearchConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        if not self.supernet:
            raise NetAdaptError("no super-network file given (--supernet FILE)")
        if (self.batch_size is not None and self.batch_size < 1) or self.finetune_steps < 0:
            raise NetAdaptError("batch_size must be positive and finetune_steps >= 0")
        if not 0 < self.metric_timeout < math.inf:
            raise NetAdaptError(f"metric_timeout must be a positive number of seconds, got {self.metric_timeout}")
        self.eval.validate()

    def resolved_run_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path(self.supernet).parent / "search"


EVAL_BATCH = {"cpu": 64, "cuda": 256}  # the search's default batch of held-out and calibration images
# NetAdaptV1's default fine-tuning batch: part of its per-sample budget, so the same on every device
FINETUNE_BATCH = 256


def eval_batch_size(requested: int | None, device: torch.device) -> int:
    """``requested``, or the default batch for ``device``'s kind (``EVAL_BATCH``; 256 elsewhere)."""
    return requested if requested is not None else EVAL_BATCH.get(device.type, 256)


def build_resource_fn(spec: str, supernet: SuperNet, *, timeout: float = 600.0) -> tuple[Any, str]:
    """(resource function returning every recorded resource by name, the constrained name).

    The metric named by ``spec`` is constrained; MACs and parameters are always recorded too
    (they are analytic and cost microseconds).  ``timeout`` bounds each run of a ``command:``
    metric, in seconds."""

    def analytic(name: str):
        fn = count_macs if name == "macs" else count_params
        return lambda arch: float(fn(supernet, arch))

    metric = parse_metric(spec, supernet, timeout=timeout)
    name = getattr(metric, "name", spec)
    others = {n: analytic(n) for n in ("macs", "params") if n != name}

    def resources(arch: Architecture) -> dict[str, float]:
        return {name: float(metric(arch)), **{n: fn(arch) for n, fn in others.items()}}

    return resources, name


def _load_data(
    config: SearchRunConfig, extra: dict, image_size: int, batch_size: int
) -> tuple[Batches, Batches, Path, list[str]]:
    """(held-out batches, calibration batches, held-out file, unreadable held-out images) named
    by a super-network file, in batches of ``batch_size``."""
    from netadapt.data import build_search_loaders

    heldout_file = extra.get("heldout")
    if not heldout_file:
        raise NetAdaptError(
            f"{config.supernet} names no held-out split (extra['heldout']); train it with netadapt train-supernet"
        )
    path = Path(config.supernet).parent / heldout_file
    heldout, calibration = build_search_loaders(
        path,
        batch_size=batch_size,
        calibration_images=config.eval.calibration_images,
        seed=config.seed,
        root=config.data_root,
    )
    images = len(heldout.dataset)
    if images * 3 * image_size**2 * 4 <= config.heldout_in_memory_mb * 2**20:
        # decode once: every sample is scored on the same images
        batches = list(heldout)
        unreadable = _unreadable(batches)
        heldout = take_images(batches, images)
    else:
        log.info("checking that the %d held-out images can be read", images)
        unreadable = _unreadable(heldout)  # one decoding pass
    if unreadable:
        # Every sample is scored without them (the same images for all, so the comparison
        # stays fair); the count is part of the run folder's settings.
        log.warning("%d of %d held-out images are unreadable and left out of every sample's score, e.g. %s",
                    len(unreadable), images, unreadable[0])  # fmt: skip
    return heldout, calibration, path, unreadable


def _unreadable(batches: Batches) -> list[str]:
    """Names of the images the batches skipped as unreadable."""
    return [name for batch in batches for name in getattr(batch, "skipped", ())]


def _finetune_batches(config: SearchRunConfig, heldout_path: Path) -> list:
    """The NetAdaptV1 baseline's fine-tuning batches: a seeded, fixed list of augmented
    training images (the same for every sample, so a sample's score depends only on it;
    depth maps for a depth network)."""
    from netadapt.config import config_from_dict
    from netadapt.data import DataConfig, build_datasets, load_heldout, make_eval_loader

    split = load_heldout(heldout_path)
    data = dict(split.data)
    if config.data_root is not None:
        data["root"] = config.data_root
    data_config = config_from_dict(DataConfig, data, prefix="data.")
    sets = build_datasets(data_config, split)
    generator = torch.Generator().manual_seed(config.seed)
    batch = config.batch_size or FINETUNE_BATCH
    count = min(len(sets.train), config.finetune_steps * batch)
    order = torch.randperm(len(sets.train), generator=generator)[:count].tolist()
    loader = make_eval_loader(sets.train, data_config, batch_size=batch, sampler=order)
    return take_images(loader, count)


def _supernet_time(config: SearchRunConfig, extra: dict) -> StepTime | None:
    """The super-network training step's time: from the file's ``extra["timing"]``, else the
    training run folder's ``timing.json``, else ``config.supernet_hours``, else unknown."""
    found = step_from_metadata(extra)
    if found is None:
        found = load_timing(Path(config.supernet).parent / "timing.json").get("supernet_training")
    if found is None and config.supernet_hours is not None:
        found = StepTime(config.supernet_hours * 3600, config.supernet_devices)
    return found


def run_search(config: SearchRunConfig) -> SearchResult:
    """Search the super-network file ``config.supernet`` (see :func:`netadapt.search.search`).

    The run folder is locked (:mod:`netadapt.lock`) before anything is measured, and written
    only once its settings are known to match a search it holds, if any."""
    if not isinstance(config, SearchRunConfig):
        raise NetAdaptError(
            f"run_search takes a SearchRunConfig (load_config(SearchRunConfig, 'file.yaml') reads one), got {type(config).__name__}"
        )
    config.validate()
    run_dir = config.resolved_run_dir()
    main = int(os.environ.get("RANK", "0")) == 0  # torchrun's rank; only rank 0 writes
    with run_folder_lock(run_dir) if main else nullcontext():
        return _run_search(config, run_dir)


def _run_search(config: SearchRunConfig, run_dir: Path) -> SearchResult:
    from netadapt.train.distributed import distributed

    supernet, extra = load_supernet(config.supernet)
    task = task_named(supernet.task)
    score = task.score(config.score)
    space = supernet.space
    initial = space.full()
    if config.initial_arch:
        initial = load_architecture(config.initial_arch, space, what="initial architecture file")
    resource_fn, name = build_resource_fn(config.metric, supernet, timeout=config.metric_timeout)
    # The score's direction decides selection (paper §4.2: depth RMSE is an error, lower is better).
    search_config = replace(config.search, constrained=config.search.constrained or name, higher_is_better=score.higher_is_better)
    initial_resource, target = check_search_inputs(space, initial, resource_fn, search_config)
    log.info("%s of the initial network: %g; target %g", name, initial_resource, target)
    expected = search_config.expected_iterations(initial_resource, target)
    log.info(
        "the reduction schedule (%g%% of the initial %s in the first iteration, x%g per iteration) needs %s; "
        "%s samples per iteration",
        100 * search_config.initial_reduction, name, search_config.decay,
        "more iterations than it can make (a sample may still shrink further)" if expected is None else f"about {expected} iterations",
        "one per layer: the" if search_config.optimizer == "scd" or not search_config.samples else search_config.samples,
    )  # fmt: skip

    with distributed(config.device) as ctx:
        batch = eval_batch_size(config.batch_size, ctx.device)
        heldout, calibration, heldout_path, unreadable = _load_data(config, extra, supernet.input_size, batch)
        eval_config = replace(config.eval, device=str(ctx.device))
        evaluator = _evaluator(config, supernet, task, score, heldout, calibration, heldout_path, eval_config, ctx.device)
        supernet_time = _supernet_time(config, extra)
        metadata = _search_metadata(config, run_dir, extra, task, score, unreadable)
        if ctx.is_main:
            # A rerun with other settings is refused before it can overwrite the record of the run.
            check_run_folder(run_dir, space, initial, search_config, rng_seed=config.seed, metadata=metadata)
            text = yaml_text(config_to_dict(config), sort_keys=False)
            atomic_write(run_dir / "run_config.yaml", lambda f: f.write(text.encode()))
        with evaluator:
            result = search(
                space,
                initial,
                resource_fn,
                evaluator,
                search_config,
                rng_seed=config.seed,
                run_dir=run_dir,
                devices=ctx.world,
                metadata=metadata,
                supernet_time=supernet_time,
                score_name=score.name,
            )
        if ctx.is_main:  # the discovered architecture, describing itself: how to rebuild its network
            save_json(run_dir / "final_arch.json", result.final.to_dict(space, build=supernet.build_config()))
        if ctx.is_main and score.name == "top1":
            _report_noise(run_dir, _count_images(heldout))
        return result


def _evaluator(
    config: SearchRunConfig,
    supernet: SuperNet,
    task: Task,
    score: Score,
    heldout: Batches,
    calibration: Batches,
    heldout_path: Path,
    eval_config: EvalConfig,
    device: torch.device,
) -> SampleEvaluator:
    """How a sample is scored: fine-tuned for ``finetune_steps`` first, or on the shared weights."""
    if config.finetune_steps > 0:
        from netadapt.search.finetune import finetune_evaluator

        return finetune_evaluator(
            supernet,
            _finetune_batches(config, heldout_path),
            heldout,
            steps=config.finetune_steps,
            lr=config.finetune_lr,
            loss_fn=task.loss,
            metric_fn=score.metric_fn,
            finalize=score.finalize,
            seed=config.seed,
            device=device,
            workers=eval_config.workers,
            threads_per_worker=eval_config.threads_per_worker,
            calibration=take_images(calibration, eval_config.calibration_images) if eval_config.recalibrate_bn else None,
        )
    return shared_weight_evaluator(
        supernet, heldout, calibration, eval_config, metric_fn=score.metric_fn, finalize=score.finalize
    )


def _search_metadata(
    config: SearchRunConfig, run_dir: Path, extra: dict, task: Task, score: Score, unreadable: list[str]
) -> dict:
    """The settings a rerun must match to resume the run folder (with the search config)."""
    metadata = {
        # relative to the run folder, so that a run folder moved with its super-network resumes
        "supernet": os.path.relpath(Path(config.supernet).resolve(), run_dir.resolve()),
        "metric": config.metric,
        "eval": {k: v for k, v in asdict(config.eval).items() if k not in ("device", "workers", "threads_per_worker")},
        "finetune_steps": config.finetune_steps,
        "data_fingerprint": extra.get("data_fingerprint"),
    }
    if task.name != "classification":  # (classification searches keep earlier versions' settings, so they resume)
        metadata.update(task=task.name, score=score.name)
    if unreadable:
        metadata["heldout_unreadable"] = len(unreadable)
    return metadata


def _count_images(batches: Batches) -> int:
    dataset = getattr(batches, "dataset", None)
    return len(dataset) if dataset is not None else sum(len(batch_pair(b)[1]) for b in batches)


def _report_noise(run_dir: Path, images: int) -> None:
    """Log and save (``noise.json``) how many iterations chose within one standard error."""
    summary = selection_noise(read_jsonl(run_dir / "history.jsonl"), images)
    save_json(run_dir / "noise.json", summary.to_dict())
    log.info("selection noise: %s", summary.describe())
