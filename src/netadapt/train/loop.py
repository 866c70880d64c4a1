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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from netadapt.arch.files import load_architecture
from netadapt.arch.space import Architecture
from netadapt.config import config_differences, config_to_dict, flatten_mapping, same_relative_path
from netadapt.data.batches import TrainBatchSampler, derive_seed, seeded_generator
from netadapt.data.loaders import DataSets, build_datasets, calibration_set, make_eval_loader, make_train_loader, open_sources
from netadapt.data.split import HELDOUT_FILE, load_heldout, save_heldout
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write, read_text
from netadapt.lock import run_folder_lock
from netadapt.model.checkpoint import load_supernet, save_supernet
from netadapt.model.supernet import SuperNet, build_supernet
from netadapt.progress import Eta
from netadapt.tasks import Task, task_for
from netadapt.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, rng_state, save_checkpoint
from netadapt.train.config import RELOCATABLE_PATHS, RESUMABLE_CHANGES, SupernetTrainConfig
from netadapt.train.distributed import DistContext, distributed
from netadapt.train.divergence import divergence_message, loss_problem, weights_finite
from netadapt.train.logs import MetricsWriter, progress_bar
from netadapt.train.optim import ModelEma, build_optimizer, lr_factor, scaled_lr, set_lr
from netadapt.train.sampling import OrderedDropoutSampler

__all__ = ["CONFIG_FILE", "SUPERNET_FILE", "build_model", "deterministic_mode", "train_supernet"]

log = logging.getLogger(__name__)

SUPERNET_FILE = "supernet.pt"
CONFIG_FILE = "config.yaml"
STAGE = "supernet"


def train_supernet(
    config: SupernetTrainConfig, *, on_step: Callable[[int], None] | None = None, label: str | None = None
) -> Path:
    """Train the super-network of ``config``; returns the path of ``run_dir/supernet.pt``.

    ``on_step(global_step)`` is called after every optimizer step (and after the checkpoint of
    that step, if any); an exception raised there stops training like a crash would.  A run whose
    ``supernet.pt`` is complete returns at once.  ``label`` names the network in the log lines
    (e.g. "discovered network" for ``config.architecture``).
    """
    config.validate()
    if config.pretrain_epochs and config.init_from is None and config.architecture is None:
        pretrained = train_supernet(pretrain_config(config), on_step=on_step, label="initial network (pre-training)")
        config = dataclasses.replace(config, init_from=str(pretrained))
    with (
        distributed(config.device) as ctx,
        deterministic_mode(config.deterministic),
        run_folder_lock(config.run_dir) if ctx.is_main else nullcontext(),  # one writer per run folder
    ):
        return _train(config, ctx, on_step, label)


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
    m = config.model
    size = sets.image_size
    task = task_for(config.data)
    classes = sets.num_classes if task.name == "classification" else None  # a depth network has one output map
    if m.input_size is not None and m.input_size != size:
        raise NetAdaptError(f"model.input_size={m.input_size} but the data's images are {size}x{size}; set data.image_size")
    if m.num_classes is not None and classes is not None and m.num_classes != classes:
        raise NetAdaptError(f"model.num_classes={m.num_classes} but the data has {classes} classes")
    # Initial weights from the run's seed, without disturbing the caller's global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config.seed, "init"))
        net = build_supernet(
            m.name, num_classes=classes, input_size=size, in_channels=m.in_channels, width_mult=m.width_mult, **m.options
        )
    if net.task != task.name:
        raise NetAdaptError(f"{m.name} is a {net.task} network but data.dataset={config.data.dataset!r} holds {task.name} data")
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
        saved = yaml.safe_load(read_text(path, "run config")) or {}
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


def _train(config: SupernetTrainConfig, ctx: DistContext, on_step: Callable[[int], None] | None, label: str | None) -> Path:
    info = log.info if ctx.is_main else (lambda *a, **k: None)
    run_dir = Path(config.run_dir)
    out_path = run_dir / SUPERNET_FILE
    ckpt_path = run_dir / CHECKPOINT_FILE
    resolved = config_to_dict(config)
    _check_same_config(run_dir, resolved)

    # -- data and the held-out split (paper §4.1.1: reserved, never trained on) ------------------
    task = task_for(config.data)
    state = load_checkpoint(ckpt_path, STAGE) if ckpt_path.is_file() else None
    if state is not None and state["epoch"] >= config.epochs and out_path.is_file():
        info("training of the %s in %s is complete: %s", label or "super-network", run_dir, out_path)
        return out_path
    split = load_heldout(run_dir) if (run_dir / HELDOUT_FILE).is_file() else None
    sources = open_sources(config.data)
    classes = tuple(sources[0].classes)
    if state is not None and tuple(state["classes"]) != classes:
        raise NetAdaptError(
            f"the data's classes ({', '.join(classes[:5])}, … {len(classes)} in all) differ from the "
            f"checkpoint's ({', '.join(state['classes'][:5])}, … {len(state['classes'])} in all) in {ckpt_path}"
        )
    sets = build_datasets(config.data, split, sources=sources)

    # -- model, optimizer, moving average ------------------------------------------------------
    supernet = build_model(config, sets)
    if state is not None and state["build"] != supernet.build_config():
        raise NetAdaptError(f"{ckpt_path} holds a {state['build'].get('model')} super-network of another shape than the config's")
    arch = _fixed_architecture(config, supernet)
    # Starting weights, also on resume: a checkpoint replaces the trained weights, but a compact
    # network is written back into these (its weights outside the architecture stay the start's).
    if config.init_encoder is not None:
        from netadapt.depth.pretrained import load_encoder_

        load_encoder_(supernet, config.init_encoder)  # paper §4.2.1: the encoder pre-trained on ImageNet
    if config.init_from is not None:
        _load_weights(supernet, config.init_from)
    teacher = _teacher(config.teacher, supernet)
    # One architecture trains as its extracted compact network (real, smaller convolutions: a
    # network of half the MACs trains at about half the cost); its weights go back into the
    # super-network's tensors at the end (implant_), so the result file is the same.  `masked`
    # trains it inside the full super-network instead (the same result, at the full cost).
    compact = arch is not None and not config.masked
    raw: nn.Module = supernet.extract(arch) if compact else supernet
    fixed = None if compact or arch is None else (torch.tensor([arch.filters]), torch.tensor([arch.kernels]))
    module_kind = "compact" if compact else "supernet"
    if state is not None and state.get("module", "supernet") != module_kind:
        raise NetAdaptError(
            f"{ckpt_path} trained the {state.get('module', 'supernet')} network, this run trains the {module_kind} one "
            "(model.masked changed, or an older version wrote it); delete the run folder to start over"
        )
    device = ctx.device
    on_gpu = device.type == "cuda"
    raw.to(device)
    if on_gpu and config.channels_last:
        raw.to(memory_format=torch.channels_last)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision) if on_gpu else None
    if config.precision != "fp32" and not on_gpu:
        info("precision %s applies on GPUs only; training in fp32 on %s", config.precision, device)
    global_batch = config.data.batch_size
    batches = TrainBatchSampler(
        len(sets.train), global_batch, seed=config.seed, rank=ctx.rank, world=ctx.world, accumulate=config.accumulate
    )
    steps_per_epoch = batches.steps_per_epoch
    if steps_per_epoch == 0:
        raise NetAdaptError(f"data.batch_size={global_batch} is larger than the {len(sets.train)} training images")
    # Written only now: a bad model name, option, input or batch size leaves no run folder
    # behind that would refuse the corrected command.
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if split is None:
            save_heldout(run_dir, sets.split)
        text = yaml.safe_dump(resolved, sort_keys=False)
        atomic_write(run_dir / CONFIG_FILE, lambda f: f.write(text.encode()))
    ctx.barrier()
    base_lr = scaled_lr(config.optim, global_batch)
    optimizer = build_optimizer(raw, config.optim, base_lr)
    ema = ModelEma(raw, config.ema_decay) if config.ema_decay else None
    scaler = torch.amp.GradScaler("cuda") if autocast_dtype is torch.float16 else None
    start_epoch, start_step, global_step = 0, 0, 0
    meters = {"loss": 0.0, "correct": 0.0, "images": 0.0, "skipped": 0.0, "seconds": 0.0}
    history: list[dict[str, Any]] = []
    previous_seconds = 0.0  # training time of earlier (interrupted) invocations
    if state is not None:
        raw.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        start_epoch, start_step, global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        meters = dict(state.get("meters") or meters) if ctx.is_main else meters  # rank 0 carries the sums
        history = list(state.get("history", []))
        previous_seconds = float(state.get("wall_seconds", 0.0))
        info("resuming %s at epoch %d, step %d (global step %d)", run_dir, start_epoch + 1, start_step, global_step)
    elif arch is not None:
        info("training %s of %s (%s network, %s of %s MACs) on %s: %d training images, epochs: %d",
             f"the {label}" if label else "one architecture", supernet.name, module_kind, f"{supernet.macs(arch):,}",
             f"{supernet.macs(supernet.space.full()):,}", sets.train_source.name, len(sets.train), config.epochs)  # fmt: skip
    elif not config.ordered_dropout.enabled:
        info("training the %s initial network without ordered dropout (plain training) on %s: %d training images, epochs: %d",
             supernet.name, sets.train_source.name, len(sets.train), config.epochs)  # fmt: skip
    else:
        info("training the %s super-network (%d searchable layers, %s) on %s: %d training, %d held-out images, %d %s",
             supernet.name, len(supernet.space), task.name, sets.train_source.name, len(sets.train), len(sets.heldout),
             sets.num_classes, "classes" if task.name == "classification" else "scenes")  # fmt: skip

    model: nn.Module = raw
    ddp = None
    if ctx.active:
        model = ddp = DistributedDataParallel(raw, device_ids=[device.index] if on_gpu else None)
    if config.compile:
        model = torch.compile(model)
    od = config.ordered_dropout
    sampler = OrderedDropoutSampler(
        supernet.space, kernels=od.kernels, sandwich=od.sandwich, block_drop=od.block_drop, spread=od.spread
    )
    loader = make_train_loader(
        sets.train, batches, config.data, pin_memory=on_gpu if config.data.pin_memory is None else config.data.pin_memory
    )
    val_loader = calibration = None
    if sets.val is not None:
        val_loader = make_eval_loader(sets.val, config.data, rank=ctx.rank, world=ctx.world, pin_memory=on_gpu)
        if od.enabled:  # every rank recalibrates on the same images
            calibration = make_eval_loader(
                calibration_set(sets, config.val_calibration_images, config.seed), config.data, workers=0
            )
    metrics = MetricsWriter(run_dir, enabled=ctx.is_main, tensorboard=config.tensorboard)

    last_good = (start_epoch, start_step) if state is not None else None  # what checkpoint.pt holds

    def checkpoint(epoch_: int, step_: int) -> None:
        nonlocal last_good
        totals = dict(zip(meters, ctx.sum(list(meters.values())), strict=True))  # collective: every rank
        if not weights_finite(raw, ema.module if ema else None):  # never overwrite the last good checkpoint with them
            raise NetAdaptError(divergence_message(config, (epoch_, step_), "the weights are not finite", ckpt_path, last_good))
        last_good = (epoch_, step_)
        if ctx.is_main:
            save_checkpoint(ckpt_path, STAGE, {
                "build": supernet.build_config(), "module": module_kind, "classes": list(sets.classes),
                "data_fingerprint": sets.split.fingerprint,
                "config": resolved, "model": raw.state_dict(), "ema": ema.state_dict() if ema else None,
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "epoch": epoch_, "step_in_epoch": step_, "global_step": global_step,
                "meters": totals, "history": history, "rng": rng_state(),
                "wall_seconds": previous_seconds + time.perf_counter() - began,
            })  # fmt: skip

    # -- the loop --------------------------------------------------------------------------------
    chunk = batches.chunk
    pending = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, images: one sync per window
    window = {"loss": 0.0, "correct": 0.0, "images": 0.0}
    clock = time.perf_counter()

    def flush() -> None:
        """Move the device-side sums into the meters (synchronizes with the device)."""
        nonlocal clock
        loss_sum, correct, images = pending.tolist()
        pending.zero_()
        problem = loss_problem(loss_sum, images, config.max_loss)
        if problem:
            raise NetAdaptError(divergence_message(config, (epoch, step + 1), problem, ckpt_path, last_good))
        now = time.perf_counter()
        for key, v in (("loss", loss_sum), ("correct", correct), ("images", images), ("seconds", now - clock)):
            meters[key] += v
            if key in window:
                window[key] += v
        clock = now

    began = time.perf_counter()
    eta = Eta(config.epochs * steps_per_epoch, global_step)  # from this invocation's rate
    raw.train()
    try:
        for epoch in range(start_epoch, config.epochs):
            batches.set_epoch(epoch, start_step)
            data = iter(loader)
            bar = progress_bar(
                steps_per_epoch,
                enabled=config.progress and ctx.is_main,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                initial=start_step,
            )
            clock = window_start = time.perf_counter()
            for step in range(start_step, steps_per_epoch):
                set_lr(optimizer, base_lr * lr_factor(config.schedule, global_step, steps_per_epoch, config.epochs))
                torch.manual_seed(derive_seed(config.seed, "dropout", ctx.rank, global_step))  # per rank, per step
                widths = kernels = None
                phase, floor = od.phase(epoch + step / steps_per_epoch) if od.enabled else ("full", 1.0)
                if fixed is not None:  # one discovered network: every image runs it
                    widths, kernels = (t.expand(global_batch, -1) for t in fixed)
                elif phase != "full":
                    # Paper §2.3: widths stratified over the *global* batch; every rank draws the
                    # same table and keeps its own rows.
                    generator = seeded_generator(config.seed, "ordered_dropout", epoch, step)
                    widths, kernels = sampler.sample(global_batch, generator, phase, floor=floor)
                optimizer.zero_grad(set_to_none=True)
                for m, chunk_id in enumerate(batches.chunk_ids()):
                    batch = next(data)  # netadapt.data.Batch or netadapt.data.depth.DepthBatch
                    rows = slice(chunk_id * chunk, (chunk_id + 1) * chunk)
                    w = widths[rows][batch.kept] if widths is not None else None
                    k = kernels[rows][batch.kept] if kernels is not None else None
                    for name in batch.skipped:
                        log.warning("skipped unreadable image %s", name)
                    meters["skipped"] += len(batch.skipped)
                    sync = ddp is None or m == config.accumulate - 1
                    with nullcontext() if sync else ddp.no_sync():
                        pending.add_(_forward_backward(model, raw, task, batch, w, k, config, autocast_dtype, scaler, teacher))
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if config.optim.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(raw.parameters(), config.optim.grad_clip)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if ema is not None:
                    ema.update(raw)
                global_step += 1
                bar.update(1)
                if (step + 1) % 10 == 0 or step + 1 == steps_per_epoch:
                    flush()
                    rate = window["images"] * ctx.world / max(time.perf_counter() - window_start, 1e-9)
                    n = max(window["images"], 1.0)
                    bar.set_postfix(loss=f"{window['loss'] / n:.3f}", acc=f"{window['correct'] / n:.3f}", img_s=f"{rate:.0f}")
                    if bar.disable and (step + 1) % config.log_every == 0:
                        info("epoch %d/%d step %d/%d loss %.4f acc %.3f %.0f img/s; %s", epoch + 1, config.epochs, step + 1,
                             steps_per_epoch, window["loss"] / n, window["correct"] / n, rate, eta.text(global_step))  # fmt: skip
                    window = dict.fromkeys(window, 0.0)
                    window_start = time.perf_counter()
                if config.checkpoint_every and global_step % config.checkpoint_every == 0 and step + 1 < steps_per_epoch:
                    flush()
                    checkpoint(epoch, step + 1)
                if on_step is not None:
                    on_step(global_step)
            bar.close()
            start_step = 0

            # -- end of epoch: metrics over all processes, validation, checkpoint ------------------
            totals = dict(zip(meters, ctx.sum(list(meters.values())), strict=True))
            n = max(totals["images"], 1.0)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": global_step,
                "lr": optimizer.param_groups[0]["lr"],
                "train_loss": totals["loss"] / n,
                task.train_key: totals["correct"] / n,  # train_top1, or train_delta1 for depth
                "images_per_s": totals["images"] / max(totals["seconds"] / ctx.world, 1e-9),
                "skipped_images": int(totals["skipped"]),
            }
            if val_loader is not None and ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs):
                net = ema.module if ema else raw
                if compact:
                    record.update(task.evaluate(net, val_loader, ctx))
                else:
                    record.update(task.validate(net, val_loader, ctx, arch=arch, calibration=calibration))
                _explain_validation(record, task, info)
            history.append(record)
            meters.update(dict.fromkeys(meters, 0.0))
            checkpoint(epoch + 1, 0)
            metrics.write(history)
            info(
                "epoch %d/%d: %s; %s", epoch + 1, config.epochs,
                ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"), eta.text(global_step),
            )  # fmt: skip
    finally:
        metrics.close()

    # -- the result: the super-network file shared with the search ------------------------------
    if ctx.is_main:
        final = ema.module if ema is not None else raw
        if compact:
            final = supernet.implant_(final, arch)
        save_supernet(out_path, final, extra={
            "stage": STAGE, "classes": list(sets.classes), "data": asdict(config.data), "heldout": HELDOUT_FILE,
            "data_fingerprint": sets.split.fingerprint, "train": resolved, "ema": ema is not None,
            "metrics": history[-1] if history else {},
            "images": _image_counts(sets),  # what the report states: images of every split
            # Wall time of training over all invocations (up to the last checkpoint) and the
            # number of processes: the search's time accounting reads it (paper Table 1).
            "timing": {"wall_seconds": previous_seconds + time.perf_counter() - began, "devices": ctx.world},
        })  # fmt: skip
        if arch is not None:  # the compact network's weights, written back into the super-network's tensors
            info("trained %s written to %s", label or "architecture", out_path)
        else:
            info("%s written to %s", "super-network" if od.enabled else "trained initial network", out_path)
    ctx.barrier()
    return out_path


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
) -> Tensor:
    """One micro-batch: forward with per-image choices, the task's loss, backward.

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
        kernels = None
        weight = 0.0
    x = x.to(device, non_blocking=True)
    y = y.to(device, non_blocking=True)
    if device.type == "cuda" and config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    od = config.ordered_dropout
    autocast = torch.autocast("cuda", dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    with autocast:
        if widths is None:
            logits = model(x)
        else:
            logits = model(x, widths=widths.to(device), kernels=None if kernels is None else kernels.to(device))
        loss = task.loss(logits, y, label_smoothing=config.label_smoothing)
        if od.distill > 0 and widths is not None:
            # Beyond the paper: in-place distillation, soft targets from the largest sub-network
            # (for depth: L1 to its predicted depth map).
            with torch.no_grad():
                soft = task.soft_target(raw(x))
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


def _explain_validation(record: dict[str, Any], task: Task, info: Callable[..., None]) -> None:
    """Say so when the initial network validates worse than one of its sub-networks: with every
    network's BatchNorm recalibrated that is real -- the training favours narrow sub-networks."""
    full, key = record.get(task.val_key), task.val_key
    better = [k for k in record if k.startswith(f"{key}_") and full is not None and task.better(record[k], full)]
    if better:
        info(
            "the initial network (%s %.4g) validates worse than its sub-network(s) %s with recalibrated BatchNorm: "
            "the training favours narrow sub-networks (try ordered_dropout.sandwich / distill)",
            key, full, ", ".join(f"{k} {record[k]:.4g}" for k in better),
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


def _fixed_architecture(config: SupernetTrainConfig, net: SuperNet) -> Architecture | None:
    """The architecture of ``config.architecture``, or None."""
    if config.architecture is None:
        return None
    return load_architecture(config.architecture, net.space)


def _load_weights(net: SuperNet, path: str) -> None:
    """Start from the weights of a super-network file of the same shape."""
    source, _ = load_supernet(path)
    if source.build_config() != net.build_config():
        raise NetAdaptError(f"{path} holds a {source.name} super-network of another shape than the config's")
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
