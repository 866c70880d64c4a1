"""Training-step time of ordered-dropout super-network training against plain training.

Both run in the same process on the same network and batch: *plain* is the initial network
trained as an ordinary model (``net(x)``), *ordered dropout* draws stratified per-image widths
and kernel sizes for the batch (paper §2.3) and runs ``net(x, widths=W, kernels=K)``.  Each
step is forward, loss, backward and an RMSProp update.  The two kinds of steps are interleaved
step by step so that load changes on a shared machine affect both alike; the ratio of medians
and the ratio of minima (the least disturbed steps) are reported.

    python benchmarks/bench_train_step.py                         # CPU, mobilenet_v3_small_cifar
    python benchmarks/bench_train_step.py --processes             # each kind in its own process
    python benchmarks/bench_train_step.py --device cuda --compile --precision bf16 --channels-last

Minor page faults per step of each kind are reported too: on Linux, glibc's allocator returns
freed heap memory to the system when its top grows past a threshold and faults it back in
(zero-filled) on the next allocation, which costs CPU steps several percent and falls unevenly
on the two kinds when they share one process.  ``--processes`` gives each kind its own process
(and heap), as two training runs would have, still alternating step by step.

``measure()`` is the same comparison as a function (``benchmarks/gpu_check.py`` calls it);
:func:`interleave` runs any kinds of steps alternately, in one process or one process each
(``bench_final_training.py`` uses it too).

Goals (issue 20): ratio ≤ 1.15 on CPU for every CIFAR zoo model, ≤ 1.10 on a GPU with
compilation; the paper reports 1.19.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from collections.abc import Callable, Hashable, Sequence

import torch
import torch.nn.functional as F

from netadapt import build_supernet
from netadapt.allocator import retain_freed_memory
from netadapt.resources.timing import cpu_name
from netadapt.train import OrderedDropoutSampler, RMSpropTF
from netadapt.train.sampling import group_sizes


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: One training step, returning (seconds, minor page faults).
Step = Callable[[], tuple[float, int]]


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _make_step(
    model: str,
    width_mult: float,
    input_size: int,
    batch: int,
    device: str,
    compile: bool,
    compile_backend: str,
    precision: str,
    kernels: bool,
    channels_last: bool,
    group_size: int | None = None,
):
    """The network, optimizer and data of one measurement, and ``step(ordered)`` running one
    training step and returning (seconds, minor page faults)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    net = build_supernet(model, width_mult=width_mult, input_size=input_size, num_classes=10).to(dev)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    net.train()
    opt = RMSpropTF(net.parameters(), lr=1e-4)
    sampler = OrderedDropoutSampler(net.space, kernels=kernels, group_size=group_size)
    groups = group_sizes(torch.arange(batch), group_size)  # runs of images normalized apart, or None
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, input_size, input_size, device=dev).contiguous(memory_format=memory_format)
    y = torch.randint(10, (batch,), device=dev)
    forward = torch.compile(net, backend=compile_backend) if compile else net
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step(ordered: bool) -> tuple[float, int]:
        _sync(dev)
        faults = minor_faults()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            if ordered:
                widths, kernel_sizes = sampler.sample(batch, gen)
                widths = widths.to(dev, non_blocking=True)
                kernel_sizes = None if kernel_sizes is None else kernel_sizes.to(dev, non_blocking=True)
                logits = forward(x, widths=widths, kernels=kernel_sizes, groups=groups)
            else:
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(dev)
        return time.perf_counter() - t0, minor_faults() - faults

    return net, step


def _worker(conn, kind: Hashable, threads: int, make_steps: Callable[[Sequence], dict], warmup: int) -> None:
    """One kind of step in its own process, one step per message (``interleave(processes=True)``)."""
    torch.set_num_threads(threads)
    step = make_steps([kind])[kind]
    for _ in range(warmup):
        step()
    conn.send("ready")
    while conn.recv():
        conn.send(step())


def interleave(
    kinds: Sequence[Hashable],
    make_steps: Callable[[Sequence], dict],
    *,
    steps: int,
    warmup: int,
    processes: bool = False,
) -> tuple[dict, dict]:
    """Seconds and minor page faults of ``steps`` steps of every kind, run alternately kind by
    kind (after ``warmup`` steps of each) so that load changes on a shared machine affect all
    kinds alike.

    ``make_steps(kinds)`` returns ``{kind: step}`` (:data:`Step`).  With ``processes`` each kind
    runs in its own spawned process (own allocator heap, as separate training runs would),
    which calls ``make_steps([kind])`` -- so ``make_steps`` must then be picklable: a module-level
    function or a ``functools.partial`` of one.
    """
    times: dict = {k: [] for k in kinds}
    faults: dict = {k: [] for k in kinds}
    if not processes:
        run = make_steps(kinds)
        for _ in range(warmup):
            for kind in kinds:
                run[kind]()
        for _ in range(steps):
            for kind in kinds:
                seconds, n = run[kind]()
                times[kind].append(seconds)
                faults[kind].append(n)
        return times, faults
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    pipes, workers = {}, []
    try:
        for kind in kinds:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, kind, torch.get_num_threads(), make_steps, warmup))
            proc.start()
            pipes[kind] = parent
            workers.append(proc)
        for conn in pipes.values():
            conn.recv()  # every kind built and warmed up
        for _ in range(steps):
            for kind in kinds:
                pipes[kind].send(True)
                seconds, n = pipes[kind].recv()
                times[kind].append(seconds)
                faults[kind].append(n)
    finally:
        for conn in pipes.values():
            conn.send(False)
        for proc in workers:
            proc.join(timeout=60)
    return times, faults


def _steps(setup: dict, kinds: Sequence[tuple[bool, str]]) -> dict[tuple[bool, str], Step]:
    """The plain (``False``) and ordered-dropout (``True``) steps under one allocator setting
    (``"retained"``: :func:`netadapt.allocator.retain_freed_memory` applied to this process,
    ``"system"``: glibc's defaults), sharing one network."""
    allocators = {allocator for _, allocator in kinds}
    if len(allocators) != 1:
        raise ValueError("one process has one allocator setting: compare allocators with processes=True")
    if allocators == {"retained"}:
        retain_freed_memory()
    _, step = _make_step(**setup)
    return {kind: functools.partial(step, kind[0]) for kind in kinds}


def measure(
    model: str = "mobilenet_v3_small_cifar",
    *,
    width_mult: float = 1.0,
    input_size: int = 32,
    batch: int = 64,
    steps: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    compile: bool = False,
    compile_backend: str = "inductor",
    precision: str = "fp32",
    kernels: bool = True,
    channels_last: bool = False,
    processes: bool = False,
    group_size: int | None = None,
    allocator: str = "retained",
) -> dict:
    """Plain and ordered-dropout training steps of ``model``, interleaved; the figures as a dict.

    ``compile_backend="eager"`` traces with TorchDynamo without generating code (a quick check
    of the compiled path on a CPU; ``gpu_check.py --dry-run``).

    ``processes=True`` runs each kind of step in its own process (its own copy of the network,
    optimizer and memory allocator, as two training runs would), still alternating step by
    step.  In one process the two kinds share the C allocator's heap, and on glibc which of them
    pays for the memory it returns to the system and faults back in depends on the order of
    the steps (``*_faults_per_step`` in the result).

    ``allocator``: ``"retained"`` (what the ``netadapt`` command does: freed memory stays in the
    process, :mod:`netadapt.allocator`), ``"system"`` (glibc's defaults) or ``"both"``: four
    processes, plain and ordered dropout under each setting, still alternating step by step;
    the ``system_*`` figures and the ``retained_vs_system_*`` ratios are added.
    """
    if allocator not in ("retained", "system", "both"):
        raise ValueError(f"allocator must be retained, system or both, got {allocator!r}")
    setup = dict(
        model=model,
        width_mult=width_mult,
        input_size=input_size,
        batch=batch,
        device=device,
        compile=compile,
        compile_backend=compile_backend,
        precision=precision,
        kernels=kernels,
        channels_last=channels_last,
        group_size=group_size,
    )
    make_steps = functools.partial(_steps, setup)
    settings = ("system", "retained") if allocator == "both" else (allocator,)
    kinds = [(ordered, setting) for setting in settings for ordered in (False, True)]
    processes = processes or allocator == "both"
    times, faults = interleave(kinds, make_steps, steps=steps, warmup=warmup, processes=processes)
    net = build_supernet(model, width_mult=width_mult, input_size=input_size, num_classes=10)
    main = settings[-1]  # the headline figures: retained memory, unless only the system's was asked
    plain, od = statistics.median(times[False, main]), statistics.median(times[True, main])
    dev = torch.device(device)
    result = {
        "model": model,
        "width_mult": width_mult,
        "input_size": input_size,
        "batch": batch,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "compile": compile,
        "precision": precision,
        "channels_last": channels_last,
        "processes": processes,
        "group_size": group_size,
        "superkernels": kernels and any(len(layer.kernels) > 1 for layer in net.space.layers),
        "plain_ms": round(plain * 1e3, 2),
        "ordered_dropout_ms": round(od * 1e3, 2),
        "allocator": main,
        "ratio": round(od / plain, 3),
        "ratio_of_minima": round(min(times[True, main]) / min(times[False, main]), 3),
        "plain_images_per_s": round(batch / plain, 1),
        "ordered_dropout_images_per_s": round(batch / od, 1),
        "plain_faults_per_step": round(statistics.mean(faults[False, main])),
        "ordered_dropout_faults_per_step": round(statistics.mean(faults[True, main])),
    }
    if allocator == "both":
        sys_plain, sys_od = statistics.median(times[False, "system"]), statistics.median(times[True, "system"])
        result.update(
            allocator="both",
            system_plain_ms=round(sys_plain * 1e3, 2),
            system_ordered_dropout_ms=round(sys_od * 1e3, 2),
            system_ratio=round(sys_od / sys_plain, 3),
            system_plain_faults_per_step=round(statistics.mean(faults[False, "system"])),
            system_ordered_dropout_faults_per_step=round(statistics.mean(faults[True, "system"])),
            retained_vs_system_plain=round(plain / sys_plain, 3),
            retained_vs_system_ordered_dropout=round(od / sys_od, 3),
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mobilenet_v3_small_cifar")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="measured steps of each kind")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: leave the default)")
    p.add_argument("--compile", action="store_true", help="torch.compile both training forwards")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.add_argument("--no-kernels", action="store_true", help="keep superkernels at full size")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument(
        "--processes",
        action="store_true",
        help="each kind of step in its own process (own allocator heap), still alternating step by step",
    )
    p.add_argument("--group-size", type=int, help="ordered dropout with groups of this many images normalized apart")
    p.add_argument(
        "--allocator",
        choices=("retained", "system", "both"),
        default="retained",
        help="freed memory kept in the process (the netadapt command's setting), glibc's defaults, "
        "or both (four processes: the retained/system ratios)",
    )
    args = p.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure(
        args.model,
        width_mult=args.width_mult,
        input_size=args.input_size,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        compile=args.compile,
        precision=args.precision,
        kernels=not args.no_kernels,
        channels_last=args.channels_last,
        processes=args.processes,
        group_size=args.group_size,
        allocator=args.allocator,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
