"""Whole final-training runs of a discovered network against the initial network: the time
``netadapt run`` records, data loading and validation included.

``bench_final_training.py`` times training *steps*.  A user sees whole runs: data sets opened,
every epoch's batches decoded, augmented and trained, the network validated, the result written.
This script runs the pipeline's own final training (:func:`netadapt.train.train_supernet` with
``architecture`` set and ordered dropout off, as ``netadapt run``'s final stage calls it) on an
image folder, for the discovered network and for the initial network (its full architecture,
extracted the same way), each in its own fresh process and run folder, alternating kind by kind
for ``--rounds`` rounds.  The figure is the ``wall_seconds`` each run records in its result file
-- what the run's report and ``netadapt search-timing`` add up as training time --, the part of
it spent in the training loops (from the images/s of ``metrics.jsonl``; the rest is validation,
checkpoints and the result file) and each process's whole time (start-up, opening the data
sets, building the network).

    python benchmarks/bench_final_epochs.py --data data/cifar10-jpg --threads 1 \\
        --arch docs/results/compare-cpu-v3-wd8/search-latency-0.55/final_arch.json

Without ``--arch`` the network is ``bench_final_training.py``'s discovered-like one (``--model``,
``--width-mult``, ``--fraction``, ``--removed``, ``--divisor``).  The weights start at random
(the time of a step does not depend on them).

Goal (issue 20, item 4): final training of a 50%-MAC network at ≤ 0.6× the initial network's
time, same epochs (``discovered_vs_initial``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_final_training import _setup  # the discovered-like network (same folder)

from netadapt.arch.space import Architecture
from netadapt.config import config_from_dict
from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write
from netadapt.model.checkpoint import load_supernet_extra
from netadapt.model.supernet import SuperNet
from netadapt.resources.timing import cpu_name

KINDS = ("initial", "discovered")


def write_architectures(net: SuperNet, arch: Architecture, folder: Path) -> dict[str, Path]:
    """The two networks' architecture files (self-describing, as ``netadapt run`` writes them)."""
    files = {}
    for kind, value in (("initial", net.space.full()), ("discovered", arch)):
        path = files[kind] = folder / f"{kind}.json"
        text = value.to_json(net.space, build=net.build_config())
        atomic_write(path, lambda f, text=text: f.write(text.encode()))
    return files


def train_config(build: dict, arch_file: Path, run_dir: Path, args: argparse.Namespace) -> dict:
    """The final stage's training config (as ``pipeline/run.py``'s ``_train_architecture`` makes
    it from a run config): the recipe, the network of ``build``, the image folder, ordered dropout
    off, only ``arch_file``'s network trained."""
    return {
        "recipe": args.recipe,
        "run_dir": str(run_dir),
        "seed": 0,
        "epochs": args.epochs,
        "architecture": str(arch_file),
        "ordered_dropout": {"enabled": False},
        "device": "cpu",
        "model": {
            "name": build["model"],
            "width_mult": build.get("width_mult"),
            "options": build.get("options", {}),
        },
        "data": {
            "dataset": "folder",
            "root": args.data,
            "preset": "cifar" if build.get("input_size", 32) <= 64 else "imagenet",
            "batch_size": args.batch,
            "workers": args.workers,
            "subset": args.subset,
            "val_subset": args.val_subset,
            "heldout": args.heldout,
        },
    }


def _train(config: dict, threads: int, conn) -> None:
    """One final training in this (spawned) process; sends (recorded wall seconds, process seconds)."""
    began = time.perf_counter()
    torch.set_num_threads(threads)
    from netadapt.allocator import retain_freed_memory
    from netadapt.train import SupernetTrainConfig, train_supernet

    retain_freed_memory()  # as the netadapt command runs
    try:
        out = train_supernet(config_from_dict(SupernetTrainConfig, config))
        recorded = float(load_supernet_extra(out)["timing"]["wall_seconds"])
        conn.send((recorded, time.perf_counter() - began, training_seconds(out.parent, config["data"]["batch_size"])))
    except Exception as exc:  # the parent reports it
        conn.send(f"{type(exc).__name__}: {exc}")


def training_seconds(run_dir: Path, batch: int) -> float:
    """Seconds the run's epochs spent in their training loops (batches in, optimizer steps out),
    from the images/s its ``metrics.jsonl`` records per epoch; the rest of the recorded time is
    validation, checkpoints and the result file."""
    seconds, step = 0.0, 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        seconds += (record["step"] - step) * batch / record["images_per_s"]
        step = record["step"]
    return seconds


def run_once(config: dict, threads: int) -> tuple[float, float, float]:
    """``config``'s training in a fresh process: (recorded wall seconds, whole process seconds,
    seconds in the training loops)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    began = time.perf_counter()
    proc = ctx.Process(target=_train, args=(config, threads, child))
    proc.start()
    reply = parent.recv() if parent.poll(None) else None
    proc.join()
    if not isinstance(reply, tuple):
        raise NetAdaptError(f"the training in {config['run_dir']} failed: {reply or f'exit status {proc.exitcode}'}")
    return reply[0], time.perf_counter() - began, reply[2]


def measure(args: argparse.Namespace) -> dict:
    net, arch, _ = _setup(
        args.model, args.width_mult, 32, args.fraction, args.removed, args.recipe, arch_file=args.arch, divisor=args.divisor
    )
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_final_epochs_"))
    root.mkdir(parents=True, exist_ok=True)
    files = write_architectures(net, arch, root)
    build = net.build_config()
    recorded: dict[str, list[float]] = {k: [] for k in KINDS}
    whole: dict[str, list[float]] = {k: [] for k in KINDS}
    loops: dict[str, list[float]] = {k: [] for k in KINDS}
    for r in range(args.rounds):
        for kind in KINDS if r % 2 == 0 else KINDS[::-1]:  # ABBA: drift on a shared machine falls on both
            config = train_config(build, files[kind], root / f"{kind}-{r}", args)
            seconds, process, training = run_once(config, args.threads)
            recorded[kind].append(round(seconds, 2))
            whole[kind].append(round(process, 2))
            loops[kind].append(round(training, 2))
            print(
                f"round {r + 1}/{args.rounds} {kind}: {seconds:.1f} s recorded ({training:.1f} s in the training loops), "
                f"{process:.1f} s process",
                flush=True,
            )
    median = {k: statistics.median(v) for k, v in recorded.items()}
    median_whole = {k: statistics.median(v) for k, v in whole.items()}
    median_loops = {k: statistics.median(v) for k, v in loops.items()}
    return {
        "model": net.name,
        "width_mult": build.get("width_mult"),
        "architecture_file": args.arch,
        "width_divisor": args.divisor,
        "macs_fraction": round(net.macs(arch) / net.macs(), 3),
        "removed_blocks": len(net.space.removed_blocks(arch)),
        "data": args.data,
        "subset": args.subset,
        "val_subset": args.val_subset,
        "epochs": args.epochs,
        "batch": args.batch,
        "workers": args.workers,
        "threads": args.threads,
        "recipe": args.recipe,
        "device": cpu_name(),
        "torch": torch.__version__,
        "recorded_seconds": recorded,
        "process_seconds": whole,
        "training_loop_seconds": loops,
        "discovered_vs_initial": round(median["discovered"] / median["initial"], 3),
        "discovered_vs_initial_process": round(median_whole["discovered"] / median_whole["initial"], 3),
        "discovered_vs_initial_training_loops": round(median_loops["discovered"] / median_loops["initial"], 3),
        "run_folders": str(root),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="image folder holding train/ and test/ (or val/)")
    p.add_argument("--arch", metavar="FILE", help="a search's final_arch.json (default: a discovered-like network)")
    p.add_argument("--model", default="mobilenet_v1_cifar")
    p.add_argument("--width-mult", type=float, default=0.5)
    p.add_argument("--fraction", type=float, default=0.5, help="MACs of the discovered-like network / initial network's")
    p.add_argument("--removed", type=int, default=2, help="removable blocks the discovered-like network removes")
    p.add_argument("--divisor", type=int, metavar="N", help="channel counts multiples of N (see bench_final_training.py)")
    p.add_argument("--recipe", choices=("small", "paper"), default="small")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=1, help="loader worker processes of each training")
    p.add_argument("--subset", type=int, default=10000, help="training images (a seeded subset)")
    p.add_argument("--val-subset", type=int, default=None, help="validation images (default: all)")
    p.add_argument("--heldout", type=int, default=1000, help="training images held out (as the search's runs do)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each training")
    p.add_argument("--rounds", type=int, default=2, help="trainings of each kind, alternating")
    p.add_argument("--out", help="folder of the run folders (default: a new temporary folder)")
    args = p.parse_args()
    if args.epochs < 1 or args.rounds < 1:
        raise SystemExit("error: --epochs and --rounds must be at least 1")
    if not Path(args.data).is_dir():
        raise SystemExit(f"error: --data {args.data}: no such folder")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    try:
        result = measure(args)
    except NetAdaptError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
