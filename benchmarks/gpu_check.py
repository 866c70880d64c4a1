"""Every GPU figure of the project from one short session on a lent device (issue 20).

    python benchmarks/gpu_check.py                  # on the GPU machine, from the repository root
    python benchmarks/gpu_check.py --dry-run        # every path on the CPU at toy sizes (the tests run this)
    python benchmarks/gpu_check.py --only lut_check torchrun

One JSON line per figure on standard output::

    {"figure": "train_step.eager", "value": 41.2, "unit": "ms/step", "baseline": 37.9, "ratio": 1.087,
     "device": "NVIDIA H200", "settings": {...}, "detail": {...}}

``ratio`` is ``value / baseline`` whenever both are measured in this run (``null`` otherwise).  A
section that fails prints ``{"figure": ..., "error": "..."}`` instead and the next section runs,
so one session yields every figure that works; the exit status is 1 if any section failed.

Sections, in the order they run (each in its own process, killed at its time limit; all of them
within ``--budget`` seconds, 8 minutes by default):

* ``train_step_eager`` — ordered-dropout vs plain training step of ``mobilenet_v3_large`` at
  224, bf16 autocast, channels-last (``bench_train_step.measure``); images/s of each in ``detail``.
* ``sample_eval`` — sample evaluation, extracted compact network vs masked super-network
  (``bench_sample_eval.bench_throughput``, ``mobilenet_v3_large`` at 224, bf16).
* ``lut_check`` — ``netadapt lut build`` and ``netadapt lut check`` with the CUDA backend on a
  small table (a 16-channel grid, few calibration networks and samples).
* ``torchrun`` — one super-network training run under ``torchrun --nproc_per_node 1`` (NCCL),
  against the same run in one plain process; the process group's backend is checked.
* ``cifar_epoch`` — one epoch of ``repro_cifar.py --size gpu``'s super-network training on
  CIFAR-10, projected to the experiment's training epochs.  Data: ``--data``, else
  ``data/cifar10-jpg``, ``data/cifar10-jpg.tar.gz``, ``$NETADAPT_SHARED_DATA/cifar10-jpg.tar.gz``
  or ``../shared/data/cifar10-jpg.tar.gz`` (a tarball is extracted into ``data/``).
* ``train_step_compiled`` — the training-step comparison with ``torch.compile`` (last: its
  compilation time is the least predictable, so it gets what is left of the budget).

``--dry-run`` runs every section on the CPU at toy sizes (``torch.compile`` with the ``eager``
backend, i.e. TorchDynamo's tracing without code generation; the CIFAR-10 data generated), so
that the script cannot rot between device sessions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SECTIONS = ("train_step_eager", "sample_eval", "lut_check", "torchrun", "cifar_epoch", "train_step_compiled")
FIGURES = {  # the figure each section prints
    "train_step_eager": "train_step.eager",
    "sample_eval": "sample_eval.compact_vs_masked",
    "lut_check": "lut_check.within_tolerance",
    "torchrun": "torchrun.supernet_training",
    "cifar_epoch": "cifar_epoch.gpu_preset",
    "train_step_compiled": "train_step.compiled",
}
# Seconds each section may take on the device (the budget cuts the last ones short if need be).
LIMITS = {
    "train_step_eager": 90,
    "sample_eval": 60,
    "lut_check": 100,
    "torchrun": 90,
    "cifar_epoch": 150,
    "train_step_compiled": 240,
}
DRY_RUN_LIMIT = 120  # per section on a CPU at toy sizes (they take a few seconds each)
MIN_SECTION = 15  # a section is not started with less time than this left


@dataclass(frozen=True)
class Options:
    """What every section needs to know."""

    dry_run: bool
    device: str  # "cuda" on the device, "cpu" in a dry run
    precision: str
    work: Path  # scratch folder shared by the sections of one run
    data: Path | None


# -- helpers ------------------------------------------------------------------------------------
def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def figure(name: str, value: float, unit: str, baseline: float | None, opts: Options, settings: dict, **detail) -> dict:
    """One figure line; ``ratio`` is ``value / baseline`` when there is a baseline."""
    ratio = round(value / baseline, 3) if baseline else None
    line = {"figure": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio}
    line |= {"device": device_name(opts.device), "settings": settings}
    if opts.dry_run:
        line["dry_run"] = True
    if detail:
        line["detail"] = detail
    return line


# -- sections -----------------------------------------------------------------------------------
def section_train_step(opts: Options, *, compiled: bool) -> list[dict]:
    import bench_train_step

    if opts.dry_run:
        sizes = {"width_mult": 0.25, "input_size": 32, "batch": 4, "steps": 1, "warmup": 1}
    else:
        sizes = {"width_mult": 1.0, "input_size": 224, "batch": 128, "steps": 15, "warmup": 3}
    settings = {
        "model": "mobilenet_v3_large",
        **sizes,
        "precision": opts.precision,
        "channels_last": True,
        "compile": compiled,
        "compile_backend": "eager" if opts.dry_run else "inductor",
    }
    r = bench_train_step.measure(
        "mobilenet_v3_large",
        **sizes,
        device=opts.device,
        compile=compiled,
        compile_backend=settings["compile_backend"],
        precision=opts.precision,
        channels_last=True,
    )
    name = "train_step.compiled" if compiled else "train_step.eager"
    return [
        figure(
            name,
            r["ordered_dropout_ms"],
            "ms/step",
            r["plain_ms"],
            opts,
            settings,
            ordered_dropout_images_per_s=r["ordered_dropout_images_per_s"],
            plain_images_per_s=r["plain_images_per_s"],
            ratio_of_minima=r["ratio_of_minima"],
            goal="ratio <= 1.10 compiled on a GPU (issue 3)",
        )
    ]


def section_sample_eval(opts: Options) -> list[dict]:
    import bench_sample_eval

    sizes = {"batch_size": 2, "batches": 1, "rounds": 1} if opts.dry_run else {"batch_size": 256, "batches": 10, "rounds": 3}
    autocast = opts.precision == "bf16"
    args = argparse.Namespace(**sizes, autocast=autocast, channels_last=True)
    r = bench_sample_eval.bench_throughput("mobilenet_v3_large", args, torch.device(opts.device))
    settings = {"model": "mobilenet_v3_large", "input_size": 224, **sizes, "autocast_bf16": autocast, "channels_last": True}
    return [
        figure(
            "sample_eval.compact_vs_masked",
            r["compact_img_s"],
            "images/s",
            r["masked_img_s"],
            opts,
            settings,
            compact_bn_folded_images_per_s=r["compact_bn_folded_img_s"],
            full_network_images_per_s=r["full_network_img_s"],
            macs_fraction=r["macs_fraction"],
            goal="ratio >= 2 (issue 5)",
        )
    ]


def section_lut_check(opts: Options) -> list[dict]:
    from netadapt.cli import main as netadapt_main

    table, report = opts.work / "lut.json", opts.work / "lut_check.json"
    if opts.dry_run:
        backend, model = "torch", ["mobilenet_v3_small_cifar", "--width-mult", "0.25"]
        build = ["--warmup", "1", "--min-time", "0.002", "--calibrate", "3", "--network-time", "0.05", "--network-rounds", "2"]
        check = ["--samples", "4", "--min-time", "0.05", "--rounds", "2", "--passes", "1"]
    else:
        backend, model = "cuda", ["mobilenet_v3_large"]
        build = ["--warmup", "3", "--min-time", "0.01", "--calibrate", "8", "--network-time", "0.3", "--network-rounds", "4"]
        check = ["--samples", "20", "--min-time", "0.3", "--rounds", "4", "--passes", "1"]
    table.unlink(missing_ok=True)
    code = netadapt_main(
        ["lut", "build", *model, "--backend", backend, "--grid", "16", *build, "--out", str(table), "--no-progress"]
    )
    if code != 0:
        raise RuntimeError(f"netadapt lut build exited with status {code}")
    code = netadapt_main(["lut", "check", str(table), *check, "--out", str(report), "--no-progress"])
    if code != 0:
        raise RuntimeError(f"netadapt lut check exited with status {code}")
    r = json.loads(report.read_text())
    settings = {"model": model[0], "backend": backend, "grid": 16, "build": " ".join(build), "check": " ".join(check)}
    return [
        figure(
            "lut_check.within_tolerance",
            round(100 * r["within"], 1),
            "% of sub-networks within ±10%",
            None,
            opts,
            settings,
            samples=r["samples"],
            mean_abs_error_ms=r["mae_ms"],
            mean_abs_error=r["mape"],
            drift=r["drift"],
            goal=">= 95% (issue 4)",
        )
    ]


def section_torchrun(opts: Options) -> list[dict]:
    import yaml

    from netadapt.config import config_to_dict, load_config
    from netadapt.io import read_jsonl
    from netadapt.train import SupernetTrainConfig, train_supernet

    if opts.dry_run:
        sizes = ["model.width_mult=0.25", "data.batch_size=16", "data.subset=64", "data.heldout=20"]
    else:
        sizes = ["model.width_mult=1.0", "data.batch_size=256", "data.subset=4096", "data.heldout=100", "data.workers=4"]
    common = [
        "epochs=1", *sizes, "ema_decay=null", "progress=false", "tensorboard=false", f"device={opts.device}",
        f"precision={opts.precision}",
    ]  # fmt: skip
    config = load_config(SupernetTrainConfig, None, [*common, f"run_dir={opts.work / 'torchrun'}"])
    config_file = opts.work / "torchrun.yaml"
    config_file.write_text(yaml.safe_dump(config_to_dict(config)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
           "-m", "netadapt.train", "--config", str(config_file)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if opts.dry_run else dict(os.environ)
    began = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise RuntimeError(f"torchrun exited with status {result.returncode}: {result.stderr[-2000:]}")
    expected = "nccl" if opts.device.startswith("cuda") else "gloo"
    if f"process group: backend {expected}" not in result.stderr:
        raise RuntimeError(f"the torchrun process did not join a {expected} process group: {result.stderr[-2000:]}")
    ddp = read_jsonl(opts.work / "torchrun" / "metrics.jsonl")[-1]
    train_supernet(load_config(SupernetTrainConfig, None, [*common, f"run_dir={opts.work / 'single'}"]))
    single = read_jsonl(opts.work / "single" / "metrics.jsonl")[-1]
    settings = {"overrides": common, "processes": 1, "backend": expected, "model": config.model.name, "data": "digits"}
    return [
        figure(
            "torchrun.supernet_training",
            round(ddp["images_per_s"], 1),
            "images/s",
            round(single["images_per_s"], 1),
            opts,
            settings,
            torchrun_wall_seconds=round(seconds, 1),
            train_loss=ddp["train_loss"],
        )
    ]


def _cifar_data(opts: Options) -> Path:
    import repro_cifar

    if opts.dry_run:
        return _generate_cifar_like(opts.work / "cifar10-jpg")
    shared = os.environ.get("NETADAPT_SHARED_DATA")
    candidates = [opts.data] if opts.data is not None else [
        Path("data/cifar10-jpg"), Path("data/cifar10-jpg.tar.gz"),
        *([Path(shared) / "cifar10-jpg.tar.gz"] if shared else []), Path("../shared/data/cifar10-jpg.tar.gz"),
    ]  # fmt: skip
    for path in candidates:
        if path.exists():
            return repro_cifar.resolve_data(path)
    raise FileNotFoundError(f"no CIFAR-10 JPEG folder or tarball among {', '.join(map(str, candidates))} (--data)")


def _generate_cifar_like(root: Path, per_class: int = 24) -> Path:
    """A tiny CIFAR-like ImageFolder: three classes of 32×32 JPEGs, a colour per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("test", per_class // 4)):
        for c, name in enumerate(("airplane", "cat", "ship")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                pixels[..., c] += 150
                Image.fromarray(pixels).save(folder / f"{i:04d}.jpg", quality=90)
    return root


def section_cifar_epoch(opts: Options) -> list[dict]:
    import repro_cifar

    from netadapt.config import config_from_dict, merge_mappings
    from netadapt.io import read_jsonl
    from netadapt.train import SupernetTrainConfig, train_supernet

    data = _cifar_data(opts)
    size = repro_cifar.SIZES["gpu"]
    experiment = repro_cifar.experiment_configs("v2", size, data.resolve(), opts.work / "repro")[0][1]
    # One epoch, no validation pass (the experiment validates once, after its last epoch).
    changes: dict[str, Any] = {"epochs": 1, "run_dir": str(opts.work / "cifar_epoch"), "tensorboard": False, "progress": False}
    changes["data"] = {"val_dir": ""}
    changes["precision"] = opts.precision
    if opts.dry_run:
        changes["model"] = {"width_mult": 0.25}
        changes["data"] |= {"subset": None, "heldout": 12, "batch_size": 16, "workers": 0}
        changes["device"] = "cpu"
    config = config_from_dict(SupernetTrainConfig, merge_mappings(experiment["supernet"], changes))
    began = time.perf_counter()
    train_supernet(config)
    wall = time.perf_counter() - began
    record = read_jsonl(Path(config.run_dir) / "metrics.jsonl")[-1]
    steps = record["step"]
    images = steps * config.data.batch_size
    epoch_seconds = images / record["images_per_s"]
    final = experiment["final"]
    # The experiment's training epochs: the super-network's, then the discovered network's and
    # (v2 trains them alongside) the baseline's and the initial network's, each at most as big.
    epochs = experiment["supernet"]["epochs"] + final["epochs"] * (1 + bool(final.get("baseline")) + bool(final.get("initial")))
    settings = {
        "experiment": "repro_cifar.py v2 --size gpu (super-network training, 1 epoch, no validation)",
        "model": config.model.name, "width_mult": config.model.width_mult, "batch": config.data.batch_size,
        "workers": config.data.workers, "heldout": config.data.heldout, "data": str(data),
    }  # fmt: skip
    return [
        figure(
            "cifar_epoch.gpu_preset",
            round(epoch_seconds, 2),
            "s/epoch",
            None,
            opts,
            settings,
            steps=steps,
            images_per_s=round(record["images_per_s"], 1),
            wall_seconds=round(wall, 1),
            training_epochs_of_experiment=epochs,
            projected_training_hours=round(epochs * epoch_seconds / 3600, 3),
            projection_note="training epochs only; the search (50 samples x iterations) comes on top",
        )
    ]


RUNNERS: dict[str, Callable[[Options], list[dict]]] = {
    "train_step_eager": lambda o: section_train_step(o, compiled=False),
    "sample_eval": section_sample_eval,
    "lut_check": section_lut_check,
    "torchrun": section_torchrun,
    "cifar_epoch": section_cifar_epoch,
    "train_step_compiled": lambda o: section_train_step(o, compiled=True),
}


# -- the driver ---------------------------------------------------------------------------------
def run_section(name: str, opts: Options) -> int:
    """Run one section in this process and print its figure lines (or its error line)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if opts.dry_run:
        torch.set_num_threads(1)
    try:
        lines = RUNNERS[name](opts)
    except Exception as exc:  # reported as the section's figure line; the next section runs
        import traceback

        traceback.print_exc()
        print(json.dumps({"figure": FIGURES[name], "error": f"{type(exc).__name__}: {exc}"[:2000]}), flush=True)
        return 1
    for line in lines:
        print(json.dumps(line), flush=True)
    return 0


def run_all(names: list[str], args: argparse.Namespace, work: Path) -> int:
    """Each section in a child process with its time limit, within the budget; returns the exit status."""
    began = time.monotonic()
    failed = False
    for name in names:
        left = args.budget - (time.monotonic() - began)
        limit = min(DRY_RUN_LIMIT if args.dry_run else LIMITS[name], left)
        if limit < MIN_SECTION:
            print(json.dumps({"figure": FIGURES[name], "error": f"not run: {left:.0f} s of the {args.budget} s budget left"}))
            failed = True
            continue
        cmd = [sys.executable, __file__, "--section", name, "--work", str(work), "--precision", args.precision]
        cmd += ["--dry-run"] * args.dry_run + (["--data", str(args.data)] if args.data else [])
        code, out, err = _run_with_limit(cmd, limit)
        lines = [line for line in out.splitlines() if line.startswith('{"figure"')]
        for line in lines:
            print(line, flush=True)
        if code != 0 and not any('"error"' in line for line in lines):
            why = f"timed out after {limit:.0f} s" if code is None else f"exited with status {code}"
            print(json.dumps({"figure": FIGURES[name], "error": f"{why}: {err[-1500:]}"}), flush=True)
        if code != 0 or not lines:
            failed = True
        sys.stderr.write(f"[gpu_check] {name}: {'failed' if code else 'ok'} in {time.monotonic() - began:.0f} s total\n")
        if args.verbose or code:
            sys.stderr.write(err[-4000:] + "\n")
    return 1 if failed else 0


def _run_with_limit(cmd: list[str], limit: float) -> tuple[int | None, str, str]:
    """(exit status or None on timeout, stdout, stderr); on timeout the whole process group is killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the section's own process group (torchrun's workers included)
        out, err = proc.communicate()
        return None, out, err


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="every section on the CPU at toy sizes")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--budget", type=float, default=None, help="seconds for all sections (default 480; dry run 600)")
    p.add_argument(
        "--precision", choices=("bf16", "fp32"), default="bf16", help="autocast of the training and evaluation figures"
    )
    p.add_argument("--data", type=Path, help="CIFAR-10 JPEG folder or tarball for cifar_epoch")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed at the end)")
    p.add_argument("--verbose", action="store_true", help="also show each section's log")
    p.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)  # internal: run one section here
    args = p.parse_args(argv)
    if args.section:
        opts = Options(args.dry_run, "cpu" if args.dry_run else "cuda", args.precision, args.work, args.data)
        return run_section(args.section, opts)
    if not args.dry_run and not torch.cuda.is_available():
        p.error("no CUDA device: run on the GPU machine, or use --dry-run")
    if args.budget is None:
        args.budget = 600.0 if args.dry_run else 480.0
    names = [s for s in SECTIONS if args.only is None or s in args.only]
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        return run_all(names, args, args.work.resolve())
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        return run_all(names, args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
