"""Super-network training with ordered dropout (paper §2.3, §4.1.1): one plain function.

:func:`train_supernet` reads top to bottom: check the run folder, open the data and reserve the
held-out split, build the super-network, restore a checkpoint when there is one, then loop over
epochs and steps.  Each optimizer step draws per-image widths and kernel sizes for the *global*
batch (stratified, :mod:`netadapt.train.sampling`), runs this process's micro-batches through
the super-network with those choices, and updates the weights and their moving average.

Rerunning the same command after a crash resumes from the last checkpoint.  Because the data
order, augmentation, ordered-dropout choices and dropout masks are functions of (seed, epoch,
step, rank), a resumed run computes exactly what the uninterrupted run would have — on CPU in
deterministic mode the final weights are equal (``tests/test_train_resume.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from netadapt.arch.files import load_architecture
from netadapt.arch.space import Architecture
from netadapt.config import config_differences, config_to_dict, flatten_mapping, same_relative_path, yaml_text, yaml_value
from netadapt.data.batches import TrainBatchSampler, derive_seed, seeded_generator
from netadapt.data.loaders import DataSets, build_datasets, calibration_set, make_eval_loader, make_train_loader, open_sources
from netadapt.data.split import HELDOUT_FILE, HeldoutSplit, load_heldout, save_heldout
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write, read_text
from netadapt.lock import run_folder_lock
from netadapt.model.checkpoint import load_supernet, save_supernet
from netadapt.model.norm import recalibrate_bn_
from netadapt.model.registry import get_definition, is_source_name
from netadapt.model.supernet import SuperNet, build_supernet
from netadapt.progress import Eta
from netadapt.tasks import Task, task_for, validate_networks, validation_numbers
from netadapt.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, rng_state, save_checkpoint
from netadapt.train.config import RELOCATABLE_PATHS, RESUMABLE_CHANGES, SupernetTrainConfig
from netadapt.train.distributed import DistContext, distributed
from netadapt.train.divergence import divergence_message, loss_problem, weights_finite
from netadapt.train.logs import MetricsWriter, progress_bar
from netadapt.train.optim import ModelEma, build_optimizer, lr_factor, scaled_lr, set_lr
from netadapt.train.sampling import OrderedDropoutSampler, group_sizes

__all__ = ["CONFIG_FILE", "SUPERNET_FILE", "TrainState", "build_model", "deterministic_mode", "model_for", "train_supernet"]

log = logging.getLogger(__name__)

SUPERNET_FILE = "supernet.pt"
CONFIG_FILE = "config.yaml"
STAGE = "supernet"


def train_supernet(
    config: SupernetTrainConfig,
    *,
    on_step: Callable[[int], None] | None = None,
    label: str | None = None,
    check: Callable[[SuperNet], None] | None = None,
) -> Path:
    """Train the super-network of ``config``; returns the path of ``run_dir/supernet.pt``.

    ``on_step(global_step)`` is called after every optimizer step (and after the checkpoint of
    that step, if any); an exception raised there stops training like a crash would.  A run whose
    ``supernet.pt`` is complete returns at once.  ``label`` names the network in the log lines
    (e.g. "discovered network" for ``config.architecture``).  ``check(network)`` is called
    with the built super-network before any step (also when resuming): a caller's later stages
    refuse their settings there -- a resource metric that does not fit the network -- instead of
    after hours of training.
    """
    if not isinstance(config, SupernetTrainConfig):
        raise NetAdaptError(
            "train_supernet takes a SupernetTrainConfig (load_config(SupernetTrainConfig, 'file.yaml') reads one), "
            f"got {type(config).__name__}"
        )
    config.validate()
    if config.pretrain_epochs and config.init_from is None and config.architecture is None:
        pretrained = train_supernet(pretrain_config(config), on_step=on_step, label="initial network (pre-training)", check=check)
        config = dataclasses.replace(config, init_from=str(pretrained))
    with (
        distributed(config.device) as ctx,
        deterministic_mode(config.deterministic),
        run_folder_lock(config.run_dir) if ctx.is_main else nullcontext(),  # one writer per run folder
    ):
        return _train(config, ctx, on_step, label, check)


def pretrain_config(config: SupernetTrainConfig) -> SupernetTrainConfig:
    """The plain training of ``config``'s initial network that its ``pretrain_epochs`` asks for:
    same model, data, optimizer and schedule, no ordered dropout, in ``RUN_DIR/pretrained``."""
    return dataclasses.replace(
        config,
        run_dir=str(Path(config.run_dir) / "pretrained"),
        epochs=config.pretrain_epochs,
        pretrain_epochs=0,
        ordered_dropout=dataclasses.replace(config.ordered_dropout, enabled=False),
    )


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` for the duration, restoring the previous setting."""
    if not enabled:
        yield
        return
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    benchmark = torch.backends.cudnn.benchmark
    # cuBLAS needs a fixed workspace for deterministic matrix products (read when CUDA starts).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = benchmark


def build_model(config: SupernetTrainConfig, sets: DataSets) -> SuperNet:
    """The super-network of ``config.model`` sized for the data of ``sets``."""
    return model_for(config, sets.num_classes, sets.image_size)


def model_for(config: SupernetTrainConfig, num_classes: int, size: int) -> SuperNet:
    """The super-network of ``config.model`` for data of ``num_classes`` classes and ``size``×``size``
    images (:func:`build_model` measures them from the data; ``netadapt init`` from a folder)."""
    m = config.model
    task = task_for(config.data)
    classes = num_classes if task.name == "classification" else None  # a depth network has one output map
    if m.input_size is not None and m.input_size != size:
        raise NetAdaptError(f"model.input_size={m.input_size} but the data's images are {size}x{size}; set data.image_size")
    if m.num_classes is not None and classes is not None and m.num_classes != classes:
        raise NetAdaptError(f"model.num_classes={m.num_classes} but the data has {classes} classes")

    def wrong_task(kind: str) -> NetAdaptError:
        return NetAdaptError(f"{m.name} is a {kind} network but data.dataset={config.data.dataset!r} holds {task.name} data")

    # A zoo model's task is known before it is built (a depth network may not build at this size).
    if not is_source_name(m.name) and get_definition(m.name).task != task.name:
        raise wrong_task(get_definition(m.name).task)
    # Initial weights from the run's seed, without disturbing the caller's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = build_supernet(
            m.name, num_classes=classes, input_size=size, in_channels=m.in_channels, width_mult=m.width_mult, **m.options
        )
    if net.task != task.name:
        raise wrong_task(net.task)
    if m.dropout is not None:
        for module in net.modules():
            if isinstance(module, nn.Dropout):
                module.p = m.dropout  # a hyper-parameter of training only; not part of the build
    return net


def _check_same_config(run_dir: Path, resolved: dict) -> bool:
    """False for a new run folder; True when ``config.yaml`` matches; raises when it differs."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        saved = yaml_value(read_text(path, "run config")) or {}
    except yaml.YAMLError:
        raise NetAdaptError(f"{path} is not valid YAML; delete the run folder to start over") from None
    old, new = flatten_mapping(saved), flatten_mapping(resolved)
    for key in config_differences(saved, resolved, config_to_dict(SupernetTrainConfig())):
        moved = key in RELOCATABLE_PATHS and same_relative_path(
            old.get(key), new.get(key), old.get("run_dir"), new.get("run_dir")
        )
        if key not in RESUMABLE_CHANGES and not moved:
            raise NetAdaptError(
                f"run folder {run_dir} was started with {key}={old.get(key)!r}, now {new.get(key)!r}; "
                "use another --run-dir or the same config"
            )
    return True


METERS = ("loss", "correct", "images", "skipped", "seconds")  # the epoch's sums, in checkpoint order


@dataclass
class TrainState:
    """Where the loop stands and what it has summed: with the weights, what a checkpoint holds.

    ``(epoch, step)`` is the next optimizer step to run (``step`` within the epoch).  ``meters``
    are the current epoch's sums (after a resume rank 0 carries those of earlier invocations);
    ``last_good`` is the position ``checkpoint.pt`` holds, which a divergence error names.
    """

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    meters: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METERS, 0.0))
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per finished epoch
    previous_seconds: float = 0.0  # training time of earlier (interrupted) invocations
    last_good: tuple[int, int] | None = None


@dataclass
class _Window:
    """This invocation's step sums: on the device until a flush (one sync per window of steps)."""

    pending: Tensor  # (3,) float64: loss sum, the task's statistic summed, images
    window: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("loss", "correct", "images"), 0.0))
    clock: float = 0.0  # when the sums were last flushed
    start: float = 0.0  # when the logging window began


@dataclass
class _Run:
    """What a training invocation fixes before its first step (nothing here changes in the loop)."""

    config: SupernetTrainConfig
    ctx: DistContext
    info: Callable[..., None]  # log.info on rank 0, silent elsewhere
    label: str | None
    resolved: dict[str, Any]  # the config as written to config.yaml and the checkpoint
    task: Task
    sets: DataSets
    supernet: SuperNet
    arch: Architecture | None  # the one architecture trained (config.architecture), or None
    compact: bool  # `arch` trains as its extracted compact network
    raw: nn.Module  # the module whose weights train (supernet, or the compact network)
    model: nn.Module  # raw, wrapped by DistributedDataParallel and torch.compile as configured
    ddp: DistributedDataParallel | None
    fixed: tuple[Tensor, Tensor] | None  # (1, L) widths and kernels of `arch` trained masked
    teacher: SuperNet | None
    optimizer: torch.optim.Optimizer
    base_lr: float
    ema: ModelEma | None
    scaler: torch.amp.GradScaler | None
    autocast_dtype: torch.dtype | None
    channels_last: bool  # raw's weights and every input in the channels-last memory format
    batches: TrainBatchSampler
    sampler: OrderedDropoutSampler
    loader: Iterable
    val_loader: Iterable | None
    calibration: Iterable | None  # images that recalibrate BatchNorm before validating sub-networks
    metrics: MetricsWriter
    began: float  # perf_counter() when this invocation's training began
    eta: Eta

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def module_kind(self) -> str:
        return "compact" if self.compact else "supernet"


def _train(
    config: SupernetTrainConfig,
    ctx: DistContext,
    on_step: Callable[[int], None] | None,
    label: str | None,
    check: Callable[[SuperNet], None] | None = None,
) -> Path:
    info = log.info if ctx.is_main else (lambda *a, **k: None)
    run_dir = Path(config.run_dir)
    out_path, ckpt_path = run_dir / SUPERNET_FILE, run_dir / CHECKPOINT_FILE
    resolved = config_to_dict(config)
    _check_same_config(run_dir, resolved)
    saved = load_checkpoint(ckpt_path, STAGE) if ckpt_path.is_file() else None
    if saved is not None and saved["epoch"] >= config.epochs and out_path.is_file():
        info("training of the %s in %s is complete: %s", label or "super-network", run_dir, out_path)
        return out_path
    run, state = _set_up(config, ctx, saved, resolved, label, info, check)
    _log_start(run, state, resumed=saved is not None)
    window = _Window(pending=torch.zeros(3, dtype=torch.float64, device=ctx.device))
    run.raw.train()
    try:
        while state.epoch < config.epochs:
            _train_epoch(run, state, window, on_step)
            _end_epoch(run, state)
    finally:
        run.metrics.close()
    if ctx.is_main:
        _save_result(run, state, out_path)
    ctx.barrier()
    return out_path


def _set_up(
    config: SupernetTrainConfig,
    ctx: DistContext,
    saved: dict[str, Any] | None,
    resolved: dict[str, Any],
    label: str | None,
    info: Callable[..., None],
    check: Callable[[SuperNet], None] | None = None,
) -> tuple[_Run, TrainState]:
    """Data, network, optimizer and loaders of a run; restored from the checkpoint ``saved``."""
    run_dir = Path(config.run_dir)
    ckpt_path = run_dir / CHECKPOINT_FILE
    sets, split = _open_data(config, run_dir, saved)
    supernet, arch, teacher = _build_network(config, sets, saved)
    if check is not None:
        check(supernet)
    # One architecture trains as its extracted compact network (real, smaller convolutions: a
    # network of half the MACs trains at about half the cost); its weights go back into the
    # super-network's tensors at the end (implant_), so the result file is the same.  `masked`
    # trains it inside the full super-network instead (the same result, at the full cost).
    compact = arch is not None and not config.masked
    raw: nn.Module = supernet.extract(arch) if compact else supernet
    fixed = None if compact or arch is None else (torch.tensor([arch.filters]), torch.tensor([arch.kernels]))
    module_kind = "compact" if compact else "supernet"
    if saved is not None and saved.get("module", "supernet") != module_kind:
        raise NetAdaptError(
            f"{ckpt_path} trained the {saved.get('module', 'supernet')} network, this run trains the {module_kind} one "
            "(model.masked changed, or an older version wrote it); delete the run folder to start over"
        )
    device = ctx.device
    on_gpu = device.type == "cuda"
    raw.to(device)
    if saved is None and config.init_from is not None and not config.ordered_dropout.enabled:
        _recalibrate_start(config, sets, supernet, arch, raw, device, info)
    channels_last = memory_channels_last(config, on_gpu, compact)
    if channels_last:
        raw.to(memory_format=torch.channels_last)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision) if on_gpu else None
    if config.precision != "fp32" and not on_gpu:
        info("precision %s applies on GPUs only; training in fp32 on %s", config.precision, device)
    global_batch = config.data.batch_size
    batches = TrainBatchSampler(
        len(sets.train), global_batch, seed=config.seed, rank=ctx.rank, world=ctx.world, accumulate=config.accumulate
    )
    if batches.steps_per_epoch == 0:
        raise NetAdaptError(f"data.batch_size={global_batch} is larger than the {len(sets.train)} training images")
    _write_run_folder(ctx, run_dir, sets, split, resolved)
    base_lr = scaled_lr(config.optim, global_batch)
    optimizer = build_optimizer(raw, config.optim, base_lr)
    ema = ModelEma(raw, config.ema_decay) if config.ema_decay else None
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype is torch.float16 else None
    state = _restore(saved, raw, optimizer, ema, scaler, is_main=ctx.is_main)
    model: nn.Module = raw
    ddp = None
    if ctx.active:  # after the restore: DDP starts every rank from rank 0's weights
        model = ddp = DistributedDataParallel(raw, device_ids=[device.index] if on_gpu else None)
    if config.compile:
        model = torch.compile(model)
    od = config.ordered_dropout
    sampler = OrderedDropoutSampler(
        supernet.space,
        kernels=od.kernels,
        sandwich=od.sandwich,
        block_drop=od.block_drop,
        spread=od.spread,
        group_size=od.group_size,
        largest_share=od.largest_share,
    )
    loader, val_loader, calibration = _loaders(config, ctx, sets, batches)
    metrics = MetricsWriter(run_dir, enabled=ctx.is_main, tensorboard=config.tensorboard)
    run = _Run(
        config=config, ctx=ctx, info=info, label=label, resolved=resolved, task=task_for(config.data), sets=sets,
        supernet=supernet, arch=arch, compact=compact, raw=raw, model=model, ddp=ddp, fixed=fixed, teacher=teacher,
        optimizer=optimizer, base_lr=base_lr, ema=ema, scaler=scaler, autocast_dtype=autocast_dtype, batches=batches,
        channels_last=channels_last, sampler=sampler, loader=loader, val_loader=val_loader, calibration=calibration, metrics=metrics,
        began=time.perf_counter(), eta=Eta(config.epochs * batches.steps_per_epoch, state.global_step),
    )  # fmt: skip
    return run, state


def _open_data(config: SupernetTrainConfig, run_dir: Path, saved: dict[str, Any] | None) -> tuple[DataSets, HeldoutSplit | None]:
    """The data sets, with the held-out split of the run folder when it has one (paper §4.1.1:
    reserved, never trained on); also that split, None for a new run folder."""
    split = load_heldout(run_dir) if (run_dir / HELDOUT_FILE).is_file() else None
    sources = open_sources(config.data)
    classes = tuple(sources[0].classes)
    if saved is not None and tuple(saved["classes"]) != classes:
        raise NetAdaptError(
            f"the data's classes ({', '.join(classes[:5])}, … {len(classes)} in all) differ from the "
            f"checkpoint's ({', '.join(saved['classes'][:5])}, … {len(saved['classes'])} in all) "
            f"in {run_dir / CHECKPOINT_FILE}"
        )
    return build_datasets(config.data, split, sources=sources), split


def _build_network(
    config: SupernetTrainConfig, sets: DataSets, saved: dict[str, Any] | None
) -> tuple[SuperNet, Architecture | None, SuperNet | None]:
    """The super-network with its starting weights, the architecture to train (or None) and the
    distillation teacher (or None)."""
    supernet = build_model(config, sets)
    if saved is not None and saved["build"] != supernet.build_config():
        ckpt_path = Path(config.run_dir) / CHECKPOINT_FILE
        raise NetAdaptError(f"{ckpt_path} holds a {saved['build'].get('model')} super-network of another shape than the config's")
    arch = _fixed_architecture(config, supernet)
    # Starting weights, also on resume: a checkpoint replaces the trained weights, but a compact
    # network is written back into these (its weights outside the architecture stay the start's).
    if config.init_encoder is not None:
        from netadapt.depth.pretrained import load_encoder_

        load_encoder_(supernet, config.init_encoder)  # paper §4.2.1: the encoder pre-trained on ImageNet
    if config.init_from is not None:
        _load_weights(supernet, config.init_from)
    return supernet, arch, _teacher(config.teacher, supernet)


def _write_run_folder(
    ctx: DistContext, run_dir: Path, sets: DataSets, split: HeldoutSplit | None, resolved: dict[str, Any]
) -> None:
    """Create the run folder with its held-out split and config.yaml (rank 0; every rank waits).

    Written only once the data and the network are set up: a bad model name, option, input or
    batch size leaves no run folder behind that would refuse the corrected command.
    """
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if split is None:
            save_heldout(run_dir, sets.split)
        text = yaml_text(resolved, sort_keys=False)
        atomic_write(run_dir / CONFIG_FILE, lambda f: f.write(text.encode()))
    ctx.barrier()


def _restore(
    saved: dict[str, Any] | None,
    raw: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: ModelEma | None,
    scaler: torch.amp.GradScaler | None,
    *,
    is_main: bool,
) -> TrainState:
    """Load the checkpoint ``saved`` into the modules; its position and sums (a new state without one)."""
    state = TrainState()
    if saved is None:
        return state
    raw.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if ema is not None and saved.get("ema") is not None:
        ema.load_state_dict(saved["ema"])
    if scaler is not None and saved.get("scaler") is not None:
        scaler.load_state_dict(saved["scaler"])
    state.epoch, state.step, state.global_step = saved["epoch"], saved["step_in_epoch"], saved["global_step"]
    if is_main:  # rank 0 carries the sums
        state.meters = dict(saved.get("meters") or state.meters)
    state.history = list(saved.get("history", []))
    state.previous_seconds = float(saved.get("wall_seconds", 0.0))
    state.last_good = (state.epoch, state.step)
    return state


def _loaders(
    config: SupernetTrainConfig, ctx: DistContext, sets: DataSets, batches: TrainBatchSampler
) -> tuple[Iterable, Iterable | None, Iterable | None]:
    """The training loader, the validation loader and the BatchNorm calibration loader (or None)."""
    on_gpu = ctx.device.type == "cuda"
    loader = make_train_loader(
        sets.train, batches, config.data, pin_memory=on_gpu if config.data.pin_memory is None else config.data.pin_memory
    )
    val_loader = calibration = None
    if sets.val is not None:
        val_loader = make_eval_loader(sets.val, config.data, rank=ctx.rank, world=ctx.world, pin_memory=on_gpu)
        if config.ordered_dropout.enabled:
            calibration = _calibration_loader(config, sets)
    return loader, val_loader, calibration


def _calibration_loader(config: SupernetTrainConfig, sets: DataSets) -> Iterable:
    """``val_calibration_images`` training images, the same on every rank: BatchNorm recalibration."""
    return make_eval_loader(calibration_set(sets, config.val_calibration_images, config.seed), config.data, workers=0)


def _log_start(run: _Run, state: TrainState, *, resumed: bool) -> None:
    """Say what this invocation trains (or where it resumes)."""
    config, supernet, sets, info = run.config, run.supernet, run.sets, run.info
    if resumed:
        info("resuming %s at epoch %d, step %d (global step %d)", run.run_dir, state.epoch + 1, state.step, state.global_step)
    elif run.arch is not None:
        info("training %s of %s (%s network, %s of %s MACs) on %s: %d training images, epochs: %d",
             f"the {run.label}" if run.label else "one architecture", supernet.name, run.module_kind,
             f"{supernet.macs(run.arch):,}", f"{supernet.macs(supernet.space.full()):,}", sets.train_source.name,
             len(sets.train), config.epochs)  # fmt: skip
    elif not config.ordered_dropout.enabled:
        info("training the %s initial network without ordered dropout (plain training) on %s: %d training images, epochs: %d",
             supernet.name, sets.train_source.name, len(sets.train), config.epochs)  # fmt: skip
    else:
        info("training the %s super-network (%d searchable layers, %s) on %s: %d training, %d held-out images, %d %s",
             supernet.name, len(supernet.space), run.task.name, sets.train_source.name, len(sets.train),
             len(sets.heldout), sets.num_classes, "classes" if run.task.name == "classification" else "scenes")  # fmt: skip


def _train_epoch(run: _Run, state: TrainState, window: _Window, on_step: Callable[[int], None] | None) -> None:
    """The steps of epoch ``state.epoch`` from ``state.step`` on, with the windows' logging and
    the checkpoints within the epoch."""
    config, epoch = run.config, state.epoch
    steps_per_epoch = run.batches.steps_per_epoch
    run.batches.set_epoch(epoch, state.step)
    data = iter(run.loader)
    bar = progress_bar(
        steps_per_epoch, enabled=config.progress and run.ctx.is_main, desc=f"epoch {epoch + 1}/{config.epochs}",
        initial=state.step,
    )  # fmt: skip
    window.clock = window.start = time.perf_counter()
    for step in range(state.step, steps_per_epoch):
        _train_step(run, state, window, data, epoch, step)
        state.step = step + 1
        bar.update(1)
        if state.step % 10 == 0 or state.step == steps_per_epoch:
            _flush(run, state, window)
            rate = window.window["images"] * run.ctx.world / max(time.perf_counter() - window.start, 1e-9)
            n = max(window.window["images"], 1.0)
            loss, acc = window.window["loss"] / n, window.window["correct"] / n
            bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", img_s=f"{rate:.0f}")
            if bar.disable and state.step % config.log_every == 0:
                run.info("epoch %d/%d step %d/%d loss %.4f acc %.3f %.0f img/s; %s", epoch + 1, config.epochs, state.step,
                         steps_per_epoch, loss, acc, rate, run.eta.text(state.global_step))  # fmt: skip
            window.window = dict.fromkeys(window.window, 0.0)
            window.start = time.perf_counter()
        if config.checkpoint_every and state.global_step % config.checkpoint_every == 0 and state.step < steps_per_epoch:
            _flush(run, state, window)
            _checkpoint(run, state)
        if on_step is not None:
            on_step(state.global_step)
    bar.close()


def _train_step(run: _Run, state: TrainState, window: _Window, data: Iterator, epoch: int, step: int) -> None:
    """One optimizer step: the step's learning rate and choices, every micro-batch of this process
    forward and backward, the update of the weights and of their moving average."""
    config = run.config
    steps_per_epoch = run.batches.steps_per_epoch
    set_lr(run.optimizer, run.base_lr * lr_factor(config.schedule, state.global_step, steps_per_epoch, config.epochs))
    torch.manual_seed(derive_seed(config.seed, "dropout", run.ctx.rank, state.global_step))  # per rank, per step
    widths, kernels = _choices(run, epoch, step)
    run.optimizer.zero_grad(set_to_none=True)
    chunk = run.batches.chunk
    for m, chunk_id in enumerate(run.batches.chunk_ids()):
        batch = next(data)  # netadapt.data.Batch or netadapt.data.depth.DepthBatch
        rows = slice(chunk_id * chunk, (chunk_id + 1) * chunk)
        w = widths[rows][batch.kept] if widths is not None else None
        k = kernels[rows][batch.kept] if kernels is not None else None
        groups = None if w is None or run.fixed is not None else group_sizes(rows.start + batch.kept, run.sampler.group_size)
        for name in batch.skipped:
            log.warning("skipped unreadable image %s", name)
        state.meters["skipped"] += len(batch.skipped)
        sync = run.ddp is None or m == config.accumulate - 1
        with nullcontext() if sync else run.ddp.no_sync():
            sums = _forward_backward(
                run.model, run.raw, run.task, batch, w, k, config, run.autocast_dtype, run.scaler, run.teacher, groups,
                run.channels_last,
            )  # fmt: skip
            window.pending.add_(sums)
    if run.scaler is not None:
        run.scaler.unscale_(run.optimizer)
    if config.optim.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(run.raw.parameters(), config.optim.grad_clip)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    if run.ema is not None:
        run.ema.update(run.raw)
    state.global_step += 1


def _choices(run: _Run, epoch: int, step: int) -> tuple[Tensor | None, Tensor | None]:
    """The (global batch, L) widths and kernels of a step; (None, None) runs the full network."""
    od, global_batch = run.config.ordered_dropout, run.config.data.batch_size
    phase, floor = od.phase(epoch + step / run.batches.steps_per_epoch) if od.enabled else ("full", 1.0)
    if run.fixed is not None:  # one discovered network: every image runs it
        widths, kernels = (t.expand(global_batch, -1) for t in run.fixed)
        return widths, kernels
    if phase == "full":
        return None, None
    # Paper §2.3: widths stratified over the *global* batch; every rank draws the same table and
    # keeps its own rows.
    generator = seeded_generator(run.config.seed, "ordered_dropout", epoch, step)
    return run.sampler.sample(global_batch, generator, phase, floor=floor)


def _flush(run: _Run, state: TrainState, window: _Window) -> None:
    """Move the device-side sums into the meters (synchronizes with the device); raise when the
    loss diverged."""
    loss_sum, correct, images = window.pending.tolist()
    window.pending.zero_()
    problem = loss_problem(loss_sum, images, run.config.max_loss)
    if problem:
        ckpt_path = run.run_dir / CHECKPOINT_FILE
        raise NetAdaptError(divergence_message(run.config, (state.epoch, state.step), problem, ckpt_path, state.last_good))
    now = time.perf_counter()
    for key, v in (("loss", loss_sum), ("correct", correct), ("images", images), ("seconds", now - window.clock)):
        state.meters[key] += v
        if key in window.window:
            window.window[key] += v
    window.clock = now


def _checkpoint(run: _Run, state: TrainState) -> None:
    """Write ``checkpoint.pt`` at ``(state.epoch, state.step)`` (a collective: every rank calls it)."""
    ctx, ckpt_path = run.ctx, run.run_dir / CHECKPOINT_FILE
    totals = dict(zip(state.meters, ctx.sum(list(state.meters.values())), strict=True))
    position = (state.epoch, state.step)
    if not weights_finite(run.raw, run.ema.module if run.ema else None):  # never overwrite the last good checkpoint
        raise NetAdaptError(divergence_message(run.config, position, "the weights are not finite", ckpt_path, state.last_good))
    state.last_good = position
    if ctx.is_main:
        save_checkpoint(ckpt_path, STAGE, {
            "build": run.supernet.build_config(), "module": run.module_kind, "classes": list(run.sets.classes),
            "data_fingerprint": run.sets.split.fingerprint,
            "config": run.resolved, "model": run.raw.state_dict(), "ema": run.ema.state_dict() if run.ema else None,
            "optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict() if run.scaler else None,
            "epoch": state.epoch, "step_in_epoch": state.step, "global_step": state.global_step,
            "meters": totals, "history": state.history, "rng": rng_state(),
            "wall_seconds": state.previous_seconds + time.perf_counter() - run.began,
        })  # fmt: skip


def _end_epoch(run: _Run, state: TrainState) -> None:
    """End of an epoch: the metrics over all processes, validation, the checkpoint, metrics.jsonl."""
    config, ctx, task, epoch = run.config, run.ctx, run.task, state.epoch
    totals = dict(zip(state.meters, ctx.sum(list(state.meters.values())), strict=True))
    n = max(totals["images"], 1.0)
    record: dict[str, Any] = {
        "epoch": epoch + 1,
        "step": state.global_step,
        "lr": run.optimizer.param_groups[0]["lr"],
        "train_loss": totals["loss"] / n,
        task.train_key: totals["correct"] / n,  # train_top1, or train_delta1 for depth
        "images_per_s": totals["images"] / max(totals["seconds"] / ctx.world, 1e-9),
        "skipped_images": int(totals["skipped"]),
    }
    if run.val_loader is not None and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
        net = run.ema.module if run.ema else run.raw
        if run.compact:
            record.update(validation_numbers(task, net, run.val_loader, ctx))
        else:
            record.update(validate_networks(task, net, run.val_loader, ctx, arch=run.arch, calibration=run.calibration))
        _explain_validation(record, task, run.info, config.ordered_dropout)
    state.history.append(record)
    state.meters.update(dict.fromkeys(state.meters, 0.0))
    state.epoch, state.step = epoch + 1, 0
    _checkpoint(run, state)
    run.metrics.write(state.history)
    run.info(
        "epoch %d/%d: %s; %s", epoch + 1, config.epochs,
        ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"), run.eta.text(state.global_step),
    )  # fmt: skip


def _save_result(run: _Run, state: TrainState, out_path: Path) -> None:
    """Write the super-network file shared with the search (rank 0)."""
    config, sets = run.config, run.sets
    final = run.ema.module if run.ema is not None else run.raw
    if run.compact:
        final = run.supernet.implant_(final, run.arch)
    save_supernet(out_path, final, extra={
        "stage": STAGE, "classes": list(sets.classes), "data": asdict(config.data), "heldout": HELDOUT_FILE,
        "data_fingerprint": sets.split.fingerprint, "train": run.resolved, "ema": run.ema is not None,
        "metrics": state.history[-1] if state.history else {},
        "images": _image_counts(sets),  # what the report states: images of every split
        # Wall time of training over all invocations (up to the last checkpoint) and the
        # number of processes: the search's time accounting reads it (paper Table 1).
        "timing": {"wall_seconds": state.previous_seconds + time.perf_counter() - run.began, "devices": run.ctx.world},
    })  # fmt: skip
    if run.arch is not None:  # the compact network's weights, written back into the super-network's tensors
        run.info("trained %s written to %s", run.label or "architecture", out_path)
    else:
        run.info("%s written to %s", "super-network" if config.ordered_dropout.enabled else "trained initial network", out_path)


def memory_channels_last(config: SupernetTrainConfig, on_gpu: bool, compact: bool) -> bool:
    """Whether training runs in the channels-last memory format: with ``config.channels_last``,
    on a GPU, and on a CPU for a compact (extracted, fixed) network -- there oneDNN's
    channels-last convolutions made a MobileNetV1 ×0.5 step 1.4–1.5× faster
    (docs/benchmarks.md), while the full-size super-network with ordered dropout gained nothing
    (its channel slices for the bypass become strided in that format)."""
    return config.channels_last and (on_gpu or compact)


def _forward_backward(
    model: nn.Module,
    raw: nn.Module,
    task: Task,
    batch: tuple[Tensor, ...],
    widths: Tensor | None,
    kernels: Tensor | None,
    config: SupernetTrainConfig,
    autocast_dtype: torch.dtype | None,
    scaler: torch.amp.GradScaler | None,
    teacher: SuperNet | None = None,
    groups: tuple[int, ...] | None = None,
    channels_last: bool = False,
) -> Tensor:
    """One micro-batch: forward with per-image choices (``groups``: runs of images sharing one
    sub-network, normalized apart), the task's loss, backward.  ``channels_last``: the model's
    weights are in that memory format (:func:`memory_channels_last`), and so is the input.

    Returns a float64 (3,) tensor on the model's device: loss sum, the task's per-image
    statistic summed (correct predictions; for depth Σ δ1), images.
    """
    device = next(raw.parameters()).device
    x, y = batch[0], batch[1]  # images and labels or depth maps
    weight = 1.0
    if len(y) == 0:  # every image unreadable: a zero-weight dummy keeps DDP's gradient exchange in step
        x = torch.zeros(1, raw.in_channels, raw.input_size, raw.input_size)
        y = task.empty_target(raw)
        widths = None if widths is None else torch.tensor([[layer.max_filters for layer in raw.space.layers]])
        kernels = groups = None
        weight = 0.0
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    od = config.ordered_dropout
    autocast = torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    with autocast:
        # The largest pass and in-place distillation belong to ordered dropout: not to one fixed
        # architecture trained masked (ordered dropout disabled, widths given).
        sampled = od.enabled and widths is not None
        largest = None
        if od.largest_pass and sampled:
            largest = _largest_pass(model, task, x, y, config, scaler, weight)
        if widths is None:
            logits = model(x)
        else:
            k = None if kernels is None else kernels.to(device)
            logits = model(x, widths=widths.to(device), kernels=k, groups=groups)
        loss = task.loss(logits, y, label_smoothing=config.label_smoothing)
        if od.distill > 0 and sampled:
            # Beyond the paper: in-place distillation, soft targets from the largest sub-network
            # (for depth: L1 to its predicted depth map) -- the largest pass's outputs when there
            # is one, else a pass without gradients.
            if largest is None:
                with torch.no_grad():
                    largest = raw(x)
            soft = task.soft_target(largest)
            loss = (1 - od.distill) * loss + od.distill * task.distill_loss(logits, soft)
        elif teacher is not None:
            # Knowledge distillation from a trained network (paper appendix A.1).
            with torch.no_grad():
                soft = task.soft_target(teacher(x))
            loss = (1 - config.teacher_weight) * loss + config.teacher_weight * task.distill_loss(logits, soft)
    scaled = loss * (weight / config.accumulate)
    (scaler.scale(scaled) if scaler is not None else scaled).backward()
    with torch.no_grad():
        n = len(y) * weight
        correct = task.hits(logits, y).to(device) * weight
        return torch.stack([loss.detach().double() * n, correct, torch.full((), n, dtype=torch.float64, device=device)])


def _largest_pass(
    model: nn.Module,
    task: Task,
    x: Tensor,
    y: Tensor,
    config: SupernetTrainConfig,
    scaler: torch.amp.GradScaler | None,
    weight: float,
) -> Tensor:
    """``ordered_dropout.largest_pass``: the largest sub-network (the initial network) on the whole
    micro-batch with the task's loss, forward and backward; returns its detached outputs.  Under
    DDP its gradients wait for the ordered-dropout pass's backward to be exchanged together
    (``no_sync``), so a step still exchanges gradients once."""
    with model.no_sync() if hasattr(model, "no_sync") else nullcontext():
        logits = model(x)
        loss = task.loss(logits, y, label_smoothing=config.label_smoothing) * (weight / config.accumulate)
        (scaler.scale(loss) if scaler is not None else loss).backward()
    return logits.detach()


def _explain_validation(record: dict[str, Any], task: Task, info: Callable[..., None], od: Any = None) -> None:
    """Say so when the initial network validates worse than one of its sub-networks: with every
    network's BatchNorm recalibrated that is real -- the training favours narrow sub-networks.
    ``od`` (the ordered-dropout settings): the remedies suggested are those not already on."""
    full, key = record.get(task.val_key), task.val_key
    better = [k for k in record if k.startswith(f"{key}_") and full is not None and task.better(record[k], full)]
    if better:
        remedies = [
            f"ordered_dropout.{name}" for name, on in (
                ("sandwich", getattr(od, "sandwich", False)), ("largest_pass", getattr(od, "largest_pass", False)),
                ("distill", getattr(od, "distill", 0.0) > 0),
            ) if not on
        ]  # fmt: skip
        info(
            "the initial network (%s %.4g) validates worse than its sub-network(s) %s with recalibrated BatchNorm: "
            "the training favours narrow sub-networks%s",
            key, full, ", ".join(f"{k} {record[k]:.4g}" for k in better),
            f" (try {' / '.join(remedies)}, or recipe small-largest)" if remedies else " (try recipe small-largest)",
        )  # fmt: skip


def _image_counts(sets: DataSets) -> dict[str, Any]:
    """Images of every split: trained on, held out for the search, validated on (and where)."""
    val = sets.val
    return {
        "train": len(sets.train),
        "heldout": len(sets.heldout),
        "val": 0 if val is None else len(val),
        "val_total": 0 if val is None else len(val.source),
        "val_source": None if val is None else getattr(val.source, "name", None),
        "train_source": getattr(sets.train_source, "name", None),
        "train_total": len(sets.train_source),
    }


def _recalibrate_start(
    config: SupernetTrainConfig,
    sets: DataSets,
    supernet: SuperNet,
    arch: Architecture | None,
    raw: nn.Module,
    device: torch.device,
    info: Callable[..., None],
) -> None:
    """BatchNorm statistics of the one network that trains, recomputed before its first step.

    Weights from a file (``init_from``) carry statistics of another network: of a super-network,
    a mixture of every sub-network that ordered dropout trained; of a trained initial network,
    the full widths' statistics.  With a small ``bn_momentum`` (0.01 in the MobileNetV3 zoo) a
    share of them outlives a short fine-tuning -- 21% after 156 steps -- and the network is
    validated with statistics that fit no network at all.  Every rank computes the same ones
    from the same ``val_calibration_images`` training images (evaluation transform)."""
    images = _calibration_loader(config, sets)
    batches = (batch[0].to(device) for batch in images)
    if raw is supernet and arch is not None:  # a fixed architecture trained masked inside the super-network
        recalibrate_bn_(raw, batches, forward=lambda x: supernet(x, arch))
    else:
        recalibrate_bn_(raw, batches)
    raw.train()
    info("BatchNorm statistics recomputed for the network to train on %d training images", len(images.dataset))


def _fixed_architecture(config: SupernetTrainConfig, net: SuperNet) -> Architecture | None:
    """The architecture of ``config.architecture``, or None."""
    if config.architecture is None:
        return None
    return load_architecture(config.architecture, net.space)


def _load_weights(net: SuperNet, path: str) -> None:
    """Start from the weights of a super-network file of the same network: the same model,
    classes, input and width, and the same parameter shapes.  Its search-space options may differ
    (another bypass, width grid or removal rule over the same weights: one trained network, several
    spaces); a difference that changes the weights is an error naming it."""
    source, _ = load_supernet(path)
    mine, theirs = net.build_config(), source.build_config()
    differing = [k for k in mine if k != "options" and mine[k] != theirs.get(k)]
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    if differing or shapes != {k: v.shape for k, v in source.state_dict().items()}:
        what = ", ".join(f"{k} {theirs.get(k)!r} (config: {mine[k]!r})" for k in differing) or "other parameter shapes"
        raise NetAdaptError(f"{path} holds a {source.name} super-network of another shape than the config's: {what}")
    if mine["options"] != theirs["options"]:
        options = {k: v for k, v in mine["options"].items() if theirs["options"].get(k) != v}
        log.info("starting from %s, trained with other search-space options than %s", path, options)
    net.load_state_dict(source.state_dict())


def _teacher(path: str | None, net: SuperNet) -> SuperNet | None:
    """A frozen teacher (the full network of a super-network file) on ``net``'s device."""
    if path is None:
        return None
    teacher, _ = load_supernet(path)
    if teacher.num_classes != net.num_classes:
        raise NetAdaptError(f"teacher {path} has {teacher.num_classes} classes, the model {net.num_classes}")
    teacher.to(next(net.parameters()).device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
