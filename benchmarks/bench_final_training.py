"""Training-step time of a discovered network's final training: extracted compact network,
masked inside the full super-network, and the initial network.

A *discovered-like* network at about half the initial network's MACs is built from the zoo
model's search space: a few removable blocks spread through the network are removed (the paper's
discovered networks remove blocks, §4.1.2) and the remaining layers are scaled uniformly
(:func:`netadapt.search.baseline.uniform_matching`) until the whole lands at ``--fraction`` of the
MACs.  Three kinds of steps train it, each with its own copy of the weights and optimizer:

* ``compact``: the extracted compact network (``supernet.extract(arch)``), how ``train/loop.py``
  trains one architecture today;
* ``masked``: the same architecture inside the full super-network with fixed per-image widths
  (``SupernetTrainConfig.masked: true``, the old path);
* ``initial``: the initial network, trained as the pipeline's final stage trains it for comparison
  (the extracted full architecture).

Each step is ``train/loop.py``'s own micro-batch step (``_forward_backward``: forward, the task's
loss with label smoothing, backward) followed by the optimizer step and, when the recipe keeps
one, the weight average's update.  Data are random tensors (no download).  The kinds are
interleaved step by step so that load changes on a shared machine affect them alike; medians and
minima of each kind are reported, and the ratios against the initial network.

    python benchmarks/bench_final_training.py --threads 1
    python benchmarks/bench_final_training.py --threads 1 --processes   # each kind in its own process

Goal (issue 20, item 4): the 50%-MAC network's final training at ≤ 0.6× the initial network's
time, same epochs (``compact_vs_initial``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import time
from collections.abc import Sequence

import torch
from bench_train_step import Step, interleave, minor_faults  # the shared interleaved runner (same folder)

from netadapt import build_supernet
from netadapt.allocator import retain_freed_memory
from netadapt.arch.files import load_architecture, read_architecture_file
from netadapt.arch.space import Architecture, SearchSpace
from netadapt.config import config_from_dict
from netadapt.errors import NetAdaptError
from netadapt.model.checkpoint import supernet_from_build
from netadapt.model.supernet import SuperNet
from netadapt.resources.timing import cpu_name
from netadapt.search.baseline import uniform_matching
from netadapt.tasks import task_named
from netadapt.train import SupernetTrainConfig
from netadapt.train.loop import _forward_backward, memory_channels_last  # the loop's own micro-batch step (private on purpose)
from netadapt.train.optim import ModelEma, build_optimizer, scaled_lr

KINDS = ("initial", "compact", "masked")


def discovered_like(net: SuperNet, fraction: float, removed: int, *, tolerance: float = 0.05) -> Architecture:
    """An architecture at about ``fraction`` of ``net``'s MACs with ``removed`` removable blocks
    removed (spread evenly over the space's removable blocks) and every other layer scaled alike."""
    groups = net.space.removal_groups()
    if removed > len(groups):
        raise ValueError(f"{net.name} has {len(groups)} removable blocks, cannot remove {removed}")
    chosen = [groups[(2 * i + 1) * len(groups) // (2 * removed)] for i in range(removed)]
    zeroed = {i for group in chosen for i in group}

    def without_blocks(arch: Architecture) -> Architecture:
        return arch.replace(filters=[0 if i in zeroed else f for i, f in enumerate(arch.filters)])

    budget = fraction * net.macs()
    match = uniform_matching(net.space, lambda a: net.macs(without_blocks(a)), budget, tolerance=tolerance)
    return net.space.validate(without_blocks(match.arch))


def nearest_widths(arch: Architecture, space: SearchSpace, onto: SearchSpace) -> Architecture:
    """``arch`` (of ``space``) moved onto ``onto``, the same network's space with other width
    choices (another ``width_divisor``): every layer keeps the nearest width ``onto`` offers (the
    larger on a tie; 0 only where it had 0, so a removed block stays removed and no layer
    disappears) and its kernel size."""
    if [layer.name for layer in space.layers] != [layer.name for layer in onto.layers]:
        raise NetAdaptError("the two spaces have different layers")
    filters = []
    for layer, f in zip(onto.layers, arch.filters, strict=True):
        options = [w for w in layer.widths if w > 0] if f else [0]
        filters.append(min(options, key=lambda w: (abs(w - f), -w)))
    return onto.validate(Architecture(model=arch.model, space=onto.fingerprint, filters=tuple(filters), kernels=arch.kernels))


def _setup(
    model: str,
    width_mult: float,
    input_size: int,
    fraction: float,
    removed: int,
    recipe: str,
    channels_last: bool = True,
    arch_file: str | None = None,
    divisor: int | None = None,
):
    """The super-network (seeded), the discovered-like architecture -- or ``arch_file``'s, a
    discovered network's file, on the space its file records -- and the training config.
    ``divisor``: the space built with this ``width_divisor`` (channel counts multiples of it): the
    discovered-like network is then found in it, at ``fraction`` of the MACs; ``arch_file``'s is
    moved onto its nearest widths (:func:`nearest_widths`, the MACs move a little)."""
    if divisor is not None and divisor < 1:
        raise NetAdaptError(f"--divisor must be at least 1, got {divisor}")
    torch.manual_seed(0)
    if arch_file is None:
        options = {} if divisor is None else {"width_divisor": divisor}
        net = build_supernet(model, width_mult=width_mult, input_size=input_size, num_classes=10, **options)
        arch = discovered_like(net, fraction, removed)
    else:
        recorded = read_architecture_file(arch_file)[1]
        if "build" not in recorded:
            raise NetAdaptError(
                f"{arch_file} does not record how to rebuild its network ('build'); use a search's final_arch.json"
            )
        build = recorded["build"]
        net = supernet_from_build(build)
        arch = load_architecture(arch_file, net.space)
        if divisor is not None:
            torch.manual_seed(0)
            onto = supernet_from_build({**build, "options": {**build.get("options", {}), "width_divisor": divisor}})
            arch, net = nearest_widths(arch, net.space, onto.space), onto
    # The recipe's optimizer, label smoothing and weight average (its space options are not used).
    config = config_from_dict(
        SupernetTrainConfig, {"recipe": recipe, "ordered_dropout": {"enabled": False}, "channels_last": channels_last}
    )
    return net, arch, config


def _make_step(
    kind: str, net: SuperNet, arch: Architecture, config: SupernetTrainConfig, batch: int, compiled: bool = False
) -> Step:
    """``step()`` running one training step of ``kind`` and returning (seconds, minor page faults);
    ``compiled``: the forward runs through ``torch.compile`` (``compile: true`` of the training
    config, which ``train/loop.py`` applies the same way; the first warm-up steps compile it)."""
    task = task_named("classification")
    if kind == "masked":
        raw = net
        widths, kernels = (torch.tensor([v]).expand(batch, -1) for v in (arch.filters, arch.kernels))
    else:
        raw = net.extract(arch if kind == "compact" else net.space.full())
        widths = kernels = None
    # the memory format train/loop.py trains it in on a CPU (channels-last for compact networks)
    channels_last = memory_channels_last(config, on_gpu=False, compact=kind != "masked")
    if channels_last:
        raw.to(memory_format=torch.channels_last)
    raw.train()
    optimizer = build_optimizer(raw, config.optim, scaled_lr(config.optim, batch))
    ema = ModelEma(raw, config.ema_decay) if config.ema_decay else None
    model = torch.compile(raw) if compiled else raw
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, net.input_size, net.input_size, generator=gen)
    labels = torch.randint(10, (batch,), generator=gen)

    def step() -> tuple[float, int]:
        faults = minor_faults()
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _forward_backward(model, raw, task, (images, labels), widths, kernels, config, None, None, None, None, channels_last)
        optimizer.step()
        if ema is not None:
            ema.update(raw)
        return time.perf_counter() - t0, minor_faults() - faults

    return step


def _steps(setup: dict, batch: int, retained: bool, compiled: bool, kinds: Sequence[str]) -> dict[str, Step]:
    """The steps of ``kinds``, each training its own copy of the same starting weights;
    ``retained``: this process keeps freed memory (:mod:`netadapt.allocator`, as ``netadapt`` does)."""
    if retained:
        retain_freed_memory()
    net, arch, config = _setup(**setup)
    return {kind: _make_step(kind, copy.deepcopy(net), arch, config, batch, compiled) for kind in kinds}


def measure(
    model: str = "mobilenet_v1_cifar",
    *,
    width_mult: float = 0.5,
    input_size: int = 32,
    batch: int = 64,
    steps: int = 20,
    warmup: int = 3,
    fraction: float = 0.5,
    removed: int = 2,
    recipe: str = "small",
    processes: bool = False,
    allocator: str = "retained",
    channels_last: bool = True,
    compiled: bool = False,
    arch_file: str | None = None,
    divisor: int | None = None,
) -> dict:
    """The three kinds of final-training steps, interleaved step by step; the figures as a dict.

    ``processes=True`` runs each kind in its own process (own allocator heap, as separate
    training runs would), still alternating step by step (see ``bench_train_step.py``).
    ``allocator``: ``"retained"`` (freed memory kept in the process, as the ``netadapt`` command
    runs) or ``"system"`` (glibc's defaults).  ``channels_last=False``: every kind in the contiguous
    memory format (the compact and initial networks train channels-last on a CPU otherwise, as
    ``train/loop.py`` trains them).  ``compiled``: every kind's forward through ``torch.compile``
    (compiled during the warm-up steps, which should then be at least 2).  ``arch_file``: time
    that architecture file's network (a search's ``final_arch.json``) on its own space instead of
    a discovered-like network of ``model`` (``model``, ``width_mult``, ``input_size``,
    ``fraction`` and ``removed`` then unused).  ``divisor``: the space built with this
    ``width_divisor`` (channel counts multiples of it; see :func:`_setup`).
    """
    if allocator not in ("retained", "system"):
        raise ValueError(f"allocator must be retained or system, got {allocator!r}")
    setup = dict(model=model, width_mult=width_mult, input_size=input_size, fraction=fraction, removed=removed, recipe=recipe,
                 channels_last=channels_last, arch_file=arch_file, divisor=divisor)  # fmt: skip
    net, arch, _ = _setup(**setup)  # the steps build their own (seeded alike), in this process or in theirs
    make_steps = functools.partial(_steps, setup, batch, allocator == "retained", compiled)
    times, faults = interleave(KINDS, make_steps, steps=steps, warmup=warmup, processes=processes)
    median = {k: statistics.median(times[k]) for k in KINDS}
    least = {k: min(times[k]) for k in KINDS}
    full_macs = net.macs()
    return {
        "model": net.name,
        "width_mult": net.build_config().get("width_mult"),
        "input_size": net.input_size,
        "architecture_file": arch_file,
        "width_divisor": divisor,
        "batch": batch,
        "steps": steps,
        "recipe": recipe,
        "device": cpu_name(),
        "threads": torch.get_num_threads(),
        "processes": processes,
        "allocator": allocator,
        "channels_last": channels_last,
        "compiled": compiled,
        "torch": torch.__version__,
        "macs_fraction": round(net.macs(arch) / full_macs, 3),
        "removed_blocks": len(net.space.removed_blocks(arch)),
        "architecture": list(arch.filters),
        **{f"{k}_ms": round(median[k] * 1e3, 2) for k in KINDS},
        "compact_vs_initial": round(median["compact"] / median["initial"], 3),
        "masked_vs_initial": round(median["masked"] / median["initial"], 3),
        "compact_vs_masked": round(median["compact"] / median["masked"], 3),
        "compact_vs_initial_minima": round(least["compact"] / least["initial"], 3),
        "masked_vs_initial_minima": round(least["masked"] / least["initial"], 3),
        **{f"{k}_faults_per_step": round(statistics.mean(faults[k])) for k in KINDS},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mobilenet_v1_cifar")
    p.add_argument("--width-mult", type=float, default=0.5)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="measured steps of each kind")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--fraction", type=float, default=0.5, help="MACs of the discovered-like network / initial network's")
    p.add_argument("--removed", type=int, default=2, help="removable blocks the discovered-like network removes")
    p.add_argument("--recipe", choices=("small", "paper"), default="small", help="optimizer, smoothing, weight average")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--processes", action="store_true", help="each kind in its own process, still alternating step by step")
    p.add_argument("--allocator", choices=("retained", "system"), default="retained", help="see netadapt.allocator")
    p.add_argument("--contiguous", action="store_true", help="every network in the contiguous memory format (before session 10)")
    p.add_argument("--compile", action="store_true", help="torch.compile every kind's forward (compile: true)")
    p.add_argument(
        "--arch",
        metavar="FILE",
        help="time this architecture file's network (e.g. a search's final_arch.json) "
        "on its own space instead of a discovered-like one",
    )
    p.add_argument(
        "--divisor",
        type=int,
        metavar="N",
        help="channel counts multiples of N: the space built with width_divisor N; the discovered-like "
        "network is found in it, an --arch network moved onto its nearest widths",
    )
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = measure(
            args.model,
            width_mult=args.width_mult,
            input_size=args.input_size,
            batch=args.batch,
            steps=args.steps,
            warmup=args.warmup,
            fraction=args.fraction,
            removed=args.removed,
            recipe=args.recipe,
            processes=args.processes,
            allocator=args.allocator,
            channels_last=not args.contiguous,
            compiled=args.compile,
            arch_file=args.arch,
            divisor=args.divisor,
        )
    except NetAdaptError as exc:  # a bad --arch file: one line naming it
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
