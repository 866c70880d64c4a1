"""``netadapt run``: super-network training → search → training the discovered network → export
→ report (paper Fig. 2).  Each stage resumes, and is skipped when its output is complete.  The
task (classification, or depth estimation with FastDepth, §4.2) follows the data set: its loss,
validation metrics, search score and summary numbers come from :mod:`netadapt.tasks`.

The discovered network is trained as its sub-network inside the super-network's parameters
(every image runs the architecture; the masks make this exactly the compact network's
training), which also gives the paper's two ways to start: from the super-network's shared
weights, or along the search trajectory (appendix A.2), where each step reuses the weights the
previous, larger architecture left in the same tensors.  The trained sub-network is then
extracted and exported as a compact network.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import yaml

from netadapt.arch.files import load_architecture
from netadapt.arch.space import Architecture
from netadapt.config import config_differences, config_to_dict, yaml_text, yaml_value
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write, load_json, read_text, save_json
from netadapt.layout import RunLayout
from netadapt.lock import run_folder_lock
from netadapt.model.checkpoint import load_supernet, load_supernet_extra
from netadapt.model.supernet import SuperNet
from netadapt.resources.parse import parse_metric
from netadapt.resources.timing import BACKENDS
from netadapt.search.baseline import uniform_matching, uniform_neighbours
from netadapt.search.config import SearchConfig
from netadapt.search.evaluate import EvalConfig
from netadapt.search.run import SearchRunConfig, build_resource_fn, run_search
from netadapt.search.timing import StepTime, load_timing, record_step
from netadapt.tasks import Task, task_named
from netadapt.train.config import RESUMABLE_CHANGES as TRAIN_RESUMABLE
from netadapt.train.config import SupernetTrainConfig
from netadapt.train.loop import train_supernet

__all__ = ["EXPORT_FORMATS", "FinalConfig", "RunConfig", "run_pipeline"]

#: The files ``export`` may name (each written to ``export/``, checked against PyTorch).
EXPORT_FORMATS = ("pytorch", "onnx", "torchscript", "pt2")

log = logging.getLogger(__name__)


@dataclass
class FinalConfig:
    """Training of the discovered network (and of the comparison networks)."""

    epochs: int | None = None  # None: the super-network's number of epochs
    # How the discovered network starts: "scratch", "supernet" (its shared weights) or
    # "trajectory" (appendix A.2: walk the search trajectory, `trajectory_epochs` per step).
    init: Literal["scratch", "supernet", "trajectory"] = "supernet"
    trajectory_epochs: int = 2  # paper: two epochs per step
    trajectory_steps: int = 5  # at most this many evenly spaced trajectory steps
    distill: bool = False  # distil from the trained super-network's full network
    lr_scale: float = 1.0  # learning rate relative to the super-network's
    baseline: bool = True  # also train the uniform-scaling baseline with the same budget
    initial: bool = True  # also train the initial network with the same budget

    def validate(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise NetAdaptError(f"final.epochs must be at least 1, got {self.epochs}")
        if self.trajectory_epochs < 1 or self.trajectory_steps < 1:
            raise NetAdaptError("final.trajectory_epochs and final.trajectory_steps must be at least 1")
        if not self.lr_scale > 0:
            raise NetAdaptError(f"final.lr_scale must be positive, got {self.lr_scale}")


@dataclass
class SearchStage:
    """The search stage of a run (see :class:`netadapt.search.SearchRunConfig`; the super-network
    file and run folder come from the run)."""

    metric: str = "macs"  # macs | params | latency:LUT.json | measured:BACKEND | command:'...'
    metric_timeout: float = 600.0  # seconds one run of a command: metric may take
    score: str | None = None  # how samples are compared; None: top1, or rmse for depth (SearchRunConfig.score)
    seed: int = 0  # seeds the samples of every iteration and the calibration images
    device: str = "auto"  # auto: cuda when available, else cpu
    # held-out and calibration batches (and NetAdaptV1's fine-tuning batches); None: see SearchRunConfig
    batch_size: int | None = None
    # > 0: NetAdaptV1's sample evaluation (each sample fine-tuned this many batches from the
    # trained network's weights) instead of the super-network's shared weights.
    finetune_steps: int = 0
    finetune_lr: float = 0.01  # learning rate of that fine-tuning
    search: SearchConfig = field(default_factory=SearchConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_run_config(self, supernet: Path, run_dir: Path) -> SearchRunConfig:
        return SearchRunConfig(
            supernet=str(supernet), metric=self.metric, metric_timeout=self.metric_timeout, score=self.score,
            run_dir=str(run_dir), seed=self.seed, device=self.device, batch_size=self.batch_size, finetune_steps=self.finetune_steps, finetune_lr=self.finetune_lr,
            search=copy.deepcopy(self.search), eval=copy.deepcopy(self.eval),
        )  # fmt: skip


@dataclass
class RunConfig:
    """The whole flow; ``supernet`` and ``search`` are the stage configs (their run folders and
    super-network file are set by the run)."""

    run_dir: str = "runs/netadapt"  # the run folder: every stage writes below it (netadapt/layout.py)
    supernet: SupernetTrainConfig = field(default_factory=SupernetTrainConfig)
    search: SearchStage = field(default_factory=SearchStage)
    final: FinalConfig = field(default_factory=FinalConfig)
    # pytorch: model.pt (load_compact); onnx: model.onnx; torchscript: model.ts; pt2: model.pt2 (a
    # torch.export program).  Each carries its preprocessing, class names and architecture.
    export: list[str] = field(default_factory=lambda: ["pytorch", "onnx", "torchscript", "pt2"])
    latency_backend: str | None = "torch"  # measured latency in the summary (None: skip)
    data_note: str = ""  # shown in the report (e.g. "CIFAR-10 images are JPEG re-encodings")

    def validate(self) -> None:
        self.final.validate()
        unknown = set(self.export) - set(EXPORT_FORMATS)
        if unknown:
            raise NetAdaptError(f"unknown export format(s) {sorted(unknown)}; choose from {', '.join(EXPORT_FORMATS)}")
        if self.latency_backend and self.latency_backend not in BACKENDS:
            raise NetAdaptError(
                f"latency_backend: unknown backend {self.latency_backend!r}; choose from {', '.join(BACKENDS)} (or null)"
            )


#: Keys that may change when a run resumes: they do not change what is computed (the run folder
#: itself may move, with everything in it: every stage stores paths relative to its folder).
RESUMABLE_CHANGES = frozenset(
    {
        "run_dir", "search.metric_timeout", "search.device", "export", "data_note",  # the export and report rerun each time
        "latency_backend",  # the summary's measured latency, measured again (cached per backend)
        "search.eval.workers", "search.eval.threads_per_worker",  # the same samples, evaluated in parallel
        *(f"supernet.{key}" for key in TRAIN_RESUMABLE),
    }
)  # fmt: skip

#: The stage folder (a RunLayout property) that holds what each group of keys computes: until it
#: exists, the stage has not started and its keys may still change.
STAGE_OF_KEYS = (("supernet.", "supernet_dir"), ("search.", "search_dir"), ("final.", "final_dir"))


def _stage_started(layout: RunLayout, key: str) -> bool:
    folder = next((name for prefix, name in STAGE_OF_KEYS if key.startswith(prefix)), None)
    return folder is None or getattr(layout, folder).exists()


def _check_run_folder(layout: RunLayout, config: RunConfig) -> None:
    """Refuse a run folder made with another config (a rerun must be the same run)."""
    resolved = config_to_dict(config)
    text = yaml_text(resolved, sort_keys=False)
    if layout.config.exists():
        try:
            previous = yaml_value(read_text(layout.config, "run config"))
        except yaml.YAMLError:
            raise NetAdaptError(f"{layout.config} is not valid YAML; the run folder is damaged") from None
        if not isinstance(previous, dict):
            raise NetAdaptError(f"{layout.config} is not a run config; the run folder is damaged")
        differences = config_differences(previous, resolved, config_to_dict(RunConfig()))
        changed = [key for key in differences if key not in RESUMABLE_CHANGES and _stage_started(layout, key)]
        if changed:
            raise NetAdaptError(
                f"{layout.root} was made with another config (differs in: {', '.join(changed)}); use another run_dir"
            )
        # Settings of stages that have not started yet (a metric refused before stage 1 trained)
        # may be mended in place: the folder records the config the stages will run with.
        pending = [key for key in differences if key not in RESUMABLE_CHANGES]
        if not pending:
            return
        log.info("%s: settings of stages not started yet changed (%s)", layout.root, ", ".join(pending))
    atomic_write(layout.config, lambda f: f.write(text.encode()))


def _stage_config(config: RunConfig, run_dir: Path, **changes: Any) -> SupernetTrainConfig:
    base = copy.deepcopy(config.supernet)
    return replace(base, run_dir=str(run_dir), **changes)


def _train_architecture(
    config: RunConfig,
    layout: RunLayout,
    name: str,
    arch: Architecture,
    net: SuperNet,
    *,
    init_from: Path | None,
    label: str,
) -> Path:
    """Train one architecture (a compact network: the discovered one, a comparison or a trajectory
    step, named ``label`` in the logs) in folder ``name``; returns its super-network file (the
    trained weights written back into the super-network's tensors, which later stages read)."""
    final = config.final
    epochs = final.epochs or config.supernet.epochs
    folder = layout.root / name
    folder.mkdir(parents=True, exist_ok=True)
    arch_file = folder / "architecture.json"
    if not arch_file.exists():
        text = arch.to_json(net.space, build=net.build_config())  # self-describing: netadapt describe --arch FILE
        atomic_write(arch_file, lambda f: f.write(text.encode()))
    teacher = str(layout.supernet_dir / "supernet.pt") if final.distill else None
    optim = replace(config.supernet.optim, lr=config.supernet.optim.lr * final.lr_scale)
    od = replace(config.supernet.ordered_dropout, enabled=False)
    return train_supernet(
        _stage_config(
            config,
            folder,
            epochs=epochs,
            architecture=str(arch_file),
            init_from=None if init_from is None else str(init_from),
            # Starting weights from a file replace everything; from scratch, a depth network's
            # encoder still starts from the ImageNet checkpoint (as FastDepth trains).
            init_encoder=config.supernet.init_encoder if init_from is None else None,
            teacher=teacher,
            optim=optim,
            ordered_dropout=od,
        ),
        label=label,
    )


def _training_time(layout: RunLayout, final_file: Path) -> StepTime:
    """Training time of the discovered network: the wall time each training run recorded in its
    file (summed over resumed invocations), trajectory steps included — not the time of this
    call, which is ~0 when a rerun finds the stage complete."""
    files = [*sorted(layout.final_dir.glob("trajectory_*/supernet.pt")), final_file]
    seconds, devices = 0.0, 1
    for path in files:
        timing = load_supernet_extra(path).get("timing") or {}
        seconds += float(timing.get("wall_seconds", 0.0))
        devices = max(devices, int(timing.get("devices", 1)))
    return StepTime(seconds, devices)


def _recorded_resource(layout: RunLayout, arch: Architecture) -> float | None:
    """The constrained resource the search recorded for ``arch`` (trajectory or family), if any."""
    records = []
    for name in ("trajectory.json", "family.json"):
        path = layout.search_dir / name
        loaded = load_json(path) if path.exists() else []
        records += [r for r in loaded if isinstance(r, dict)] if isinstance(loaded, list) else []
    for record in records:
        try:
            if Architecture.from_dict(record["arch"]) == arch:
                return float(record["resource"])
        except (KeyError, TypeError, ValueError, NetAdaptError):
            continue
    return None


def _trajectory_init(config: RunConfig, layout: RunLayout, net: SuperNet, supernet_file: Path) -> Path:
    """Appendix A.2: follow the search trajectory from the initial to the discovered network,
    training each step briefly, every step starting from the weights the previous one left."""
    points = load_json(layout.search_dir / "trajectory.json")[1:-1]
    steps = config.final.trajectory_steps
    if len(points) > steps:  # evenly spaced, always ending next to the discovered network
        points = [points[round((i + 1) * len(points) / steps) - 1] for i in range(steps)]
    previous = supernet_file
    for i, point in enumerate(points):
        arch = Architecture.from_dict(point["arch"])
        stage = replace(config, final=replace(config.final, epochs=config.final.trajectory_epochs, distill=False))
        label = f"trajectory step {i + 1}/{len(points)} (iteration {point['iteration']} of the search; appendix A.2)"
        previous = _train_architecture(stage, layout, f"final/trajectory_{i:02d}", arch, net, init_from=previous, label=label)
    return previous


def _evaluate_trained(path: Path, arch: Architecture, resource_fn: Any, latency: Any, task: Task) -> dict:
    """A trained network's summary entry: the task's validation numbers of its last epoch
    (top-1 accuracy; depth: RMSE, REL, δ1–δ3, MAE), resources and architecture."""
    from netadapt.resources import count_macs, count_params

    net, extra = load_supernet(path)
    resources = float(resource_fn(arch))
    metrics = extra.get("metrics", {})
    return {
        **task.results(metrics),
        "resource": resources,
        "macs": count_macs(net, arch),
        "params": count_params(net, arch),
        "latency_ms": None if latency is None else float(latency(arch)),
        "architecture": arch.to_dict(net.space),
    }


def run_pipeline(config: RunConfig) -> Path:
    """Run (or resume) the whole flow in ``config.run_dir``; returns the report's path."""
    config.validate()
    layout = RunLayout(Path(config.run_dir))
    # One writer for the whole run; each stage also locks its own sub-folder.
    with run_folder_lock(layout.root):
        return _run_pipeline(config, layout)


def check_search(config: RunConfig, net: SuperNet) -> None:
    """The search's resource metric and score must fit the network before stage 1 trains it (an
    unknown metric, a missing script, a latency table of another network or a score of another
    task would stop stage 2)."""
    task_named(net.task).score(config.search.score)
    parse_metric(config.search.metric, net, timeout=config.search.metric_timeout)


def _run_pipeline(config: RunConfig, layout: RunLayout) -> Path:
    _check_run_folder(layout, config)

    # 1. super-network training (paper §2.3)
    log.info("stage 1/5 of %s: training the super-network (ordered dropout, §2.3)", layout.root)
    supernet_file = train_supernet(_stage_config(config, layout.supernet_dir), check=partial(check_search, config))
    net, _ = load_supernet(supernet_file)
    task = task_named(net.task)
    save_json(layout.build, net.build_config())

    # 2. search (paper §2.4)
    discovered = _search_stage(config, layout, net, supernet_file)

    # 3. training the discovered network (and the comparisons, same budget)
    final_file = _train_discovered(config, layout, net, supernet_file, discovered)
    resources_by_name, metric_name = build_resource_fn(config.search.metric, net, timeout=config.search.metric_timeout)

    def resource_fn(arch: Architecture) -> float:
        return resources_by_name(arch)[metric_name]

    # The baseline matches the discovered network's resource as the search recorded it: a
    # measured latency taken again here would carry another measurement's noise.
    recorded = _recorded_resource(layout, discovered)
    target = recorded if recorded is not None else resource_fn(discovered)
    comparisons = _train_comparisons(config, layout, net, supernet_file, resource_fn, target)

    # 4. export the discovered network
    log.info("stage 4/5: exporting the discovered network (%s) to %s", ", ".join(config.export), layout.export_dir)
    trained, final_extra = load_supernet(final_file)
    compact = trained.extract(discovered).eval()
    _export(config, layout, compact, discovered, trained, final_extra, task)

    # 5. summary and report
    log.info("stage 5/5: measuring and reporting")
    latency = None
    if config.latency_backend:
        from netadapt.resources.latency import MeasuredLatencyMetric

        latency = MeasuredLatencyMetric(
            trained, backend=config.latency_backend, threads=1, cache=layout.root / "latency_cache.json"
        )
    summary: dict[str, Any] = {
        "model": net.name,
        "task": task.name,
        "dataset": config.supernet.data.dataset,  # "synthetic_depth" numbers are on synthetic scenes
        "score": task.score(config.search.score).name,  # how the search compared samples
        "metric": metric_name,
        "target": f"{config.search.search.target} ({config.search.search.target_mode})",
        "build": net.build_config(),
        "data_note": config.data_note,
        # images of every split (super-network training; the networks trained later use the same)
        "images": load_supernet_extra(supernet_file).get("images"),
        "discovered": _evaluate_trained(final_file, discovered, resource_fn, latency, task),
    }
    for key, (arch, path) in comparisons.items():
        summary[key] = _evaluate_trained(path, arch, resource_fn, latency, task)
    save_json(layout.summary, summary)
    from netadapt.report.markdown import write_report

    return write_report(layout.root)


def _search_stage(config: RunConfig, layout: RunLayout, net: SuperNet, supernet_file: Path) -> Architecture:
    """Stage 2: the search (unless its folder holds a result), its timing; the discovered network."""
    search_config = config.search.to_run_config(supernet_file, layout.search_dir)
    if not (layout.search_dir / "final_arch.json").exists():
        log.info("stage 2/5: searching its sub-networks (multi-layer coordinate descent, §2.4)")
        run_search(search_config)
    for step, value in load_timing(layout.search_dir / "timing.json").items():
        record_step(layout.timing, step, value)
    return load_architecture(layout.search_dir / "final_arch.json", net.space, what="the search's result")


def _train_discovered(config: RunConfig, layout: RunLayout, net: SuperNet, supernet_file: Path, discovered: Architecture) -> Path:
    """Stage 3: train the discovered network from the configured start; its file."""
    comparing = [
        name for name, on in (("the initial network", config.final.initial), ("a uniform baseline", config.final.baseline)) if on
    ]
    log.info(
        "stage 3/5: training the discovered network%s", f" and, for comparison, {' and '.join(comparing)}" if comparing else ""
    )
    init = {"scratch": None, "supernet": supernet_file}.get(config.final.init)
    if config.final.init == "trajectory":
        init = _trajectory_init(config, layout, net, supernet_file)
    start = {
        "scratch": "from scratch",
        "supernet": "from the super-network's weights",
        "trajectory": "after the trajectory steps",
    }
    final_file = _train_architecture(config, layout, "final", discovered, net, init_from=init,
                                     label=f"discovered network ({start[config.final.init]})")  # fmt: skip
    record_step(layout.timing, "final_training", _training_time(layout, final_file))
    return final_file


def _train_comparisons(
    config: RunConfig, layout: RunLayout, net: SuperNet, supernet_file: Path, resource_fn: Any, target_resource: float
) -> dict[str, tuple[Architecture, Path]]:
    """Stage 3's comparisons, trained alike: the initial network and the uniform baseline at
    ``target_resource`` (the discovered network's), as configured; name -> (architecture, file)."""
    baseline_arch = _uniform_match(net, resource_fn, target_resource) if config.final.baseline else None
    comparisons = {}
    same_init = supernet_file if config.final.init != "scratch" else None
    if config.final.initial:
        comparisons["initial"] = (
            net.space.full(),
            _train_architecture(config, layout, "initial", net.space.full(), net, init_from=same_init,
                                label="initial network (for comparison, same training)"),
        )  # fmt: skip
    if baseline_arch is not None:
        comparisons["baseline"] = (
            baseline_arch,
            _train_architecture(config, layout, "baseline", baseline_arch, net, init_from=same_init,
                                label="uniform baseline (every layer scaled alike to the discovered network's resource)"),
        )  # fmt: skip
    return comparisons


def _uniform_match(net: SuperNet, resource_fn: Any, budget: float) -> Architecture | None:
    """The uniformly scaled initial network at the discovered network's resource (within ±2%:
    the multiplier and each layer's rounding on the width grid are chosen to meet it).

    A resource that does not fall with the width (latency on kernels slow for some channel
    counts, docs/resources.md) may leave no uniform network that close: the baseline is then the
    closest one *below* the budget (never more resource than the discovered network), with a
    warning; ``None`` (no baseline, warned) when even the narrowest one is above it."""
    try:
        match = uniform_matching(net.space, resource_fn, budget)
    except NetAdaptError as exc:
        try:
            match, _ = uniform_neighbours(net.space, resource_fn, budget)
        except NetAdaptError:
            log.warning("no uniform baseline: %s, and no uniformly scaled network fits the budget", exc)
            return None
        log.warning("%s; the uniform baseline is the closest one below it (%+.1f%%)", exc, 100 * match.error)
    log.info("uniform baseline: multiplier %.3f, resource %g (%+.1f%% of the discovered network's)",
             match.multiplier, match.resource, 100 * match.error)  # fmt: skip
    return match.arch


def _export(
    config: RunConfig,
    layout: RunLayout,
    compact: Any,
    arch: Architecture,
    trained: SuperNet,
    extra: dict[str, Any],
    task: Task,
) -> None:
    """Write the discovered network in every format of ``config.export``, each file carrying
    its :class:`~netadapt.export.ModelMetadata` (preprocessing, class names, architecture, MACs)."""
    from netadapt.export import ModelMetadata, export_onnx, export_program, export_torchscript, save_compact
    from netadapt.resources import count_macs, count_params
    from netadapt.version import __version__

    data = config.supernet.data
    profile = layout.root / "data_profile.json"  # written by `netadapt run --data`
    if task.name == "depth":  # FastDepth's own evaluation geometry (netadapt.data.depth_transforms)
        preset, (mean, std) = ("nyu" if data.dataset == "nyu" else "none"), data.resolved_mean_std()
    else:
        preset, (mean, std) = data.resolved_preset(), data.resolved_mean_std()
    metrics = {k: v for k, v in (extra.get("metrics") or {}).items() if k.startswith("val_") and isinstance(v, int | float)}
    metadata = ModelMetadata(
        model=trained.name,
        task=task.name,
        classes=tuple(extra["classes"]) if task.name == "classification" and extra.get("classes") else None,
        input_size=trained.input_size,
        in_channels=trained.in_channels,
        mean=tuple(mean),
        std=tuple(std),
        preset=preset,
        macs=count_macs(trained, arch),
        params=count_params(trained, arch),
        architecture=arch.to_dict(trained.space),
        build=trained.build_config(),
        grayscale=load_json(profile).get("grayscale") if profile.is_file() else None,
        metrics=metrics,
        netadapt_version=__version__,
    )
    out = layout.export_dir
    if "pytorch" in config.export:
        save_compact(out / "model.pt", compact, arch, trained.build_config(), metadata=metadata)
    if "onnx" in config.export:
        export_onnx(compact, out / "model.onnx", metadata=metadata)
    if "torchscript" in config.export:
        export_torchscript(compact, out / "model.ts", metadata=metadata)
    if "pt2" in config.export:
        export_program(compact, out / "model.pt2", metadata=metadata)
    text = metadata.to_json()  # the same, readable without torch or onnx
    atomic_write(out / "metadata.json", lambda f: f.write(text.encode()))
