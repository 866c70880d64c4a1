"""Reproduce the paper's claims at CIFAR-10 scale (issue 8): one command per number.

Every experiment is a ``netadapt run`` (:func:`netadapt.pipeline.run_pipeline`) of one config
built here from a size preset, so each number comes from the same code path a user runs, every
run resumes after a crash, and the run folders keep everything (history, timing, report).

    python benchmarks/repro_cifar.py v2       --size cpu --data data/cifar10-jpg   # full method + uniform baseline
    python benchmarks/repro_cifar.py v1       --size cpu --data data/cifar10-jpg   # NetAdaptV1 (SCD + fine-tuning)
    python benchmarks/repro_cifar.py scd      --size cpu ...   # ablation: SCD instead of MCD (v2's super-network)
    python benchmarks/repro_cifar.py nobypass --size cpu ...   # ablation: no channel-level bypass
    python benchmarks/repro_cifar.py hparams  --size cpu ...   # Table 5: initial reduction x samples
    python benchmarks/repro_cifar.py seeds    --size cpu ...   # Table 6: search seeds 1, 2 (seed 0 = v2)
    python benchmarks/repro_cifar.py retrain  --size cpu ...   # Table 6: v2's discovered network trained with seeds 1, 2
    python benchmarks/repro_cifar.py flows    --size cpu ...   # Table 6: the entire flow with seeds 1, 2
    python benchmarks/repro_cifar.py table    --size cpu       # the tables of docs/RESULTS.md from the runs

``--data`` is the extracted ``cifar10-jpg`` folder (``tar xzf ../shared/data/cifar10-jpg.tar.gz
-C data``) or the ``.tar.gz`` itself, which is then extracted into ``data/``.  Sizes: ``cpu``
(each experiment under about an hour on two cores), ``gpu`` (one H100/H200: full training set,
bigger budgets), ``smoke`` (seconds; what the tests run).  Results land in
``runs/repro-SIZE/EXPERIMENT/`` and one line per run in ``runs/repro-SIZE/results.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

import torch

from netadapt.allocator import retain_freed_memory
from netadapt.config import config_from_dict, merge_mappings, read_yaml_mapping
from netadapt.io import append_jsonl, atomic_write, load_json, read_jsonl
from netadapt.pipeline.run import RunConfig, run_pipeline

EXPERIMENTS = ("v2", "v1", "v2pre", "uniform", "scd", "nobypass", "hparams", "seeds", "retrain", "flows")
SEEDS = (1, 2)  # the other two runs of each Table 6 row (seed 0 is v2 itself)

# One preset per machine size.  The network is MobileNetV1 (x0.5 on CPU), the network of the
# paper's NetAdaptV1 comparison (Table 3); the target is 50% of its MACs.
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {
        "width_mult": 0.5, "subset": 20000, "heldout": 1000, "batch": 64, "epochs": 8, "final_epochs": 8,
        "samples": 10, "layers": 5, "initial_reduction": 0.02, "calibration": 500, "eval_batch": 250,
        "finetune_steps": 10, "finetune_batch": 64, "workers": 0, "device": "cpu",
        "hparams": [(0.04, 10), (0.04, 20), (0.01, 10), (0.08, 40)],
    },
    "gpu": {
        "width_mult": 1.0, "subset": None, "heldout": 5000, "batch": 256, "epochs": 30, "final_epochs": 30,
        "samples": 50, "layers": 8, "initial_reduction": 0.03, "calibration": 2000, "eval_batch": 1000,
        "finetune_steps": 100, "finetune_batch": 256, "workers": 8, "device": "auto",
        "hparams": [(0.015, 50), (0.06, 50), (0.03, 100), (0.06, 200)],
    },
    "smoke": {
        "width_mult": 0.25, "subset": 200, "heldout": 60, "batch": 32, "epochs": 1, "final_epochs": 1,
        "samples": 3, "layers": 6, "initial_reduction": 0.1, "calibration": 64, "eval_batch": 64,
        "finetune_steps": 1, "finetune_batch": 32, "workers": 0, "device": "cpu",
        "hparams": [(0.3, 3)],
    },
}  # fmt: skip

DATA_NOTE = "CIFAR-10 images are JPEG re-encodings (about 30 dB PSNR): top-1 1-2 points below published figures."


def base_config(size: dict[str, Any], data: Path, run_dir: Path) -> dict[str, Any]:
    """The full method (ordered dropout + channel-level bypass + MCD) as a ``RunConfig`` mapping."""
    return {
        "run_dir": str(run_dir),
        "supernet": {
            "seed": 0,
            "epochs": size["epochs"],
            "device": size["device"],
            # The super-network recipe (netadapt/train/recipes.py): SGD, cosine, the paper's whole
            # space with progressive phases and groups normalized apart (docs/training.md).
            "recipe": "small",
            "model": {"name": "mobilenet_v1_cifar", "width_mult": size["width_mult"]},
            "data": {
                "dataset": "folder",
                "root": str(data),
                "preset": "cifar",
                "batch_size": size["batch"],
                "heldout": size["heldout"],
                "subset": size["subset"],
                "workers": size["workers"],
            },
            "schedule": {"warmup_epochs": min(1.0, size["epochs"] / 2)},  # the smoke size trains one epoch
            "eval_every": 1000,  # validate after the last epoch only (the test set costs time)
            "progress": False,
        },
        "search": {
            "metric": "macs",
            "device": size["device"],
            "batch_size": size["eval_batch"],
            "search": {
                "optimizer": "mcd",
                "samples": size["samples"],
                "layers": size["layers"],
                "initial_reduction": size["initial_reduction"],
                "decay": 0.98,
                "target": 0.5,
            },
            "eval": {"calibration_images": size["calibration"]},
        },
        "final": {"epochs": size["final_epochs"], "init": "supernet", "baseline": False, "initial": False},
        "export": ["pytorch", "onnx"],
        "latency_backend": "torch",
        "data_note": DATA_NOTE,
    }


def experiment_configs(name: str, size: dict[str, Any], data: Path, root: Path) -> list[tuple[str, dict, str | None]]:
    """[(run name, RunConfig mapping, run whose super-network it reuses or None)] of ``name``."""

    def variant(run: str, changes: dict) -> dict:
        return merge_mappings(copy.deepcopy(base_config(size, data, root / run)), changes)

    if name == "v2":  # the full method, with the initial network and the uniform baseline trained alike
        return [("v2", variant("v2", {"final": {"baseline": True, "initial": True}}), None)]
    if name == "v1":  # NetAdaptV1: no super-network; each sample fine-tuned; SCD; filters only
        return [
            (
                "v1",
                variant(
                    "v1",
                    {
                        "supernet": {"ordered_dropout": {"enabled": False}},
                        "search": {
                            "batch_size": size["finetune_batch"],
                            "finetune_steps": size["finetune_steps"],
                            "search": {"optimizer": "scd", "shrink": "filters"},
                        },
                    },
                ),
                None,
            )
        ]
    if name == "v2pre":  # NetAdaptV2 given the same pre-trained network as NetAdaptV1 (beyond the paper)
        pretrained = root / "v1" / "supernet" / "supernet.pt"
        if not pretrained.exists():
            raise SystemExit("v2pre starts from NetAdaptV1's pre-trained network: run the v1 experiment first")
        return [("v2pre", variant("v2pre", {"supernet": {"init_from": str(pretrained)}}), None)]
    if name == "scd":
        return [("scd", variant("scd", {"search": {"search": {"optimizer": "scd"}}}), "v2")]
    if name == "nobypass":
        return [("nobypass", variant("nobypass", {"supernet": {"model": {"options": {"bypass": "none"}}}}), None)]
    if name == "hparams":
        return [
            (f"hp_r{r:g}_j{j}", variant(f"hp_r{r:g}_j{j}", {"search": {"search": {"initial_reduction": r, "samples": j}}}), "v2")
            for r, j in size["hparams"]
        ]
    if name == "seeds":  # Table 6, second row: one super-network, the search run again
        return [(f"seed{s}", variant(f"seed{s}", {"search": {"seed": s}}), "v2") for s in SEEDS]
    if name == "flows":  # Table 6, last row: the entire flow again (super-network, search and final training seeds)
        return [(f"flow{s}", variant(f"flow{s}", {"supernet": {"seed": s}, "search": {"seed": s}}), None) for s in SEEDS]
    raise SystemExit(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)} or table")


def run_one(name: str, mapping: dict, reuse: str | None, root: Path) -> dict:
    """Run (or resume) one config; returns its result row (also appended to results.jsonl)."""
    run_dir = Path(mapping["run_dir"])
    if reuse is not None and not (run_dir / "supernet" / "supernet.pt").exists():
        source = root / reuse / "supernet"
        if not (source / "supernet.pt").exists():
            raise SystemExit(f"{name} reuses the super-network of {reuse!r}: run that experiment first")
        shutil.copytree(source, run_dir / "supernet", dirs_exist_ok=True)
    config = config_from_dict(RunConfig, mapping)
    run_pipeline(config)
    row = collect(name, run_dir, reused=reuse)
    append_jsonl(root / "results.jsonl", row)
    return row


def _train_like(source: Path, folder: Path, architecture, space, changes: dict) -> dict:
    """Train ``architecture`` exactly as the run whose training config is ``source`` was trained,
    with ``changes`` applied, in ``folder``; returns the trained file's metadata."""
    from netadapt.model.checkpoint import load_supernet_extra
    from netadapt.train.config import SupernetTrainConfig
    from netadapt.train.loop import train_supernet

    folder.mkdir(parents=True, exist_ok=True)
    arch_file = folder / "architecture.json"
    atomic_write(arch_file, lambda f: f.write(architecture.to_json(space).encode()))
    mapping = read_yaml_mapping(source)
    mapping.update(run_dir=str(folder), architecture=str(arch_file), **changes)
    return load_supernet_extra(train_supernet(config_from_dict(SupernetTrainConfig, mapping)))


def _trained_row(root: Path, name: str, extra: dict, macs: int) -> dict:
    """The result row of one network trained by :func:`_train_like` (also appended to results.jsonl)."""
    row = {
        "run": name,
        "top1": extra["metrics"]["val_top1"],
        "macs": macs,
        "train_seconds": extra["timing"]["wall_seconds"],
        "machine": machine(),
    }
    append_jsonl(root / "results.jsonl", row)
    return row


def _v2_summary(root: Path, experiment: str) -> dict:
    if not (root / "v2" / "summary.json").exists():
        raise SystemExit(f"the {experiment} experiment builds on v2's run: run the v2 experiment first")
    return load_json(root / "v2" / "summary.json")


def uniform_above(root: Path) -> list[dict]:
    """Train the uniformly scaled network just *above* v2's discovered MACs exactly as the run
    trained its (MAC-matched) baseline: a second point of the uniform curve; where the baseline
    lies below the discovered MACs the table also interpolates top-1 between the two."""
    from netadapt.model.checkpoint import load_supernet
    from netadapt.resources.counting import count_macs

    budget = _v2_summary(root, "uniform")["discovered"]["macs"]
    net, _ = load_supernet(root / "v2" / "supernet" / "supernet.pt")
    above = next((a for a in (net.space.uniform(i / 100) for i in range(1, 101)) if count_macs(net, a) > budget), None)
    if above is None:
        raise SystemExit("no uniformly scaled network is larger than the discovered one")
    extra = _train_like(root / "v2" / "baseline" / "config.yaml", root / "uniform_above", above, net.space, {})
    return [_trained_row(root, "uniform_above", extra, count_macs(net, above))]


def retrain(root: Path, only: set[str] | None = None) -> list[dict]:
    """Table 6, first row: v2's discovered network trained again exactly as its final training,
    with other seeds (initialisation from the super-network is the same; data order,
    augmentation and ordered-dropout draws change)."""
    from netadapt.arch.space import Architecture
    from netadapt.model.checkpoint import load_supernet

    summary = _v2_summary(root, "retrain")
    net, _ = load_supernet(root / "v2" / "supernet" / "supernet.pt")
    discovered = Architecture.from_dict(summary["discovered"]["architecture"])
    rows = []
    for seed in SEEDS:
        name = f"retrain{seed}"
        if only is not None and name not in only:
            continue
        extra = _train_like(root / "v2" / "final" / "config.yaml", root / name, discovered, net.space, {"seed": seed})
        rows.append(_trained_row(root, name, extra, summary["discovered"]["macs"]))
    return rows


def collect(name: str, run_dir: Path, *, reused: str | None = None) -> dict:
    """The numbers of one finished run folder."""
    summary = load_json(run_dir / "summary.json")
    steps = load_json(run_dir / "timing.json")["steps"]
    config = load_json(run_dir / "search" / "search_config.json")["config"]
    discovered = summary["discovered"]
    layers = discovered["architecture"]["layers"]
    history = read_jsonl(run_dir / "search" / "history.jsonl")
    evaluated = (
        read_jsonl(run_dir / "search" / "evaluated.jsonl") if (run_dir / "search" / "evaluated.jsonl").exists() else history
    )
    supernet_cfg = read_yaml_mapping(run_dir / "config.yaml")["supernet"]
    seconds = {k: v["wall_seconds"] for k, v in steps.items()}
    od = supernet_cfg["ordered_dropout"]["enabled"]
    pretrained = supernet_cfg.get("init_from")
    row = {
        "run": name,
        "model": summary["model"],
        "width_mult": supernet_cfg["model"]["width_mult"],
        "optimizer": config.get("optimizer"),
        "samples_per_iteration": config.get("samples"),
        "initial_reduction": config.get("initial_reduction"),
        "bypass": supernet_cfg["model"]["options"].get("bypass", "resolution"),
        "ordered_dropout": od,
        "top1": discovered["accuracy"],
        "macs": discovered["macs"],
        "params": discovered["params"],
        "latency_ms": discovered.get("latency_ms"),
        "layers_kept": sum(1 for layer in layers if layer["filters"] > 0),
        "layers_total": len(layers),
        "iterations": max((h["iteration"] for h in history), default=0),
        "samples_evaluated": len(evaluated),
        # NetAdaptV1 starts from a trained network: its "super-network training" is that network's
        # pre-training, which the paper's Table 3 does not count.
        "supernet_seconds": seconds.get("supernet_training", 0.0) if od else 0.0,
        "pretrain_seconds": 0.0 if od else seconds.get("supernet_training", 0.0),
        "search_seconds": seconds.get("sample_evaluation", 0.0),
        "final_seconds": seconds.get("final_training", 0.0),
        "supernet_epoch_seconds": seconds.get("supernet_training", 0.0) / supernet_cfg["epochs"],
        "reused_supernet_of": reused,
        "starts_from": pretrained,
        "machine": machine(),
    }
    row["total_seconds"] = row["supernet_seconds"] + row["search_seconds"] + row["final_seconds"]
    for key in ("initial", "baseline"):
        if key in summary:
            row[f"{key}_top1"] = summary[key]["accuracy"]
            row[f"{key}_macs"] = summary[key]["macs"]
    return row


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def latest_rows(root: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    if (root / "results.jsonl").exists():
        for row in read_jsonl(root / "results.jsonl"):
            rows[row["run"]] = row
    return rows


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _min(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def tables(root: Path) -> str:
    """docs/RESULTS.md's tables from ``results.jsonl`` (the latest row of each run)."""
    rows = latest_rows(root)
    out: list[str] = []
    v2, v1, v2pre = rows.get("v2"), rows.get("v1"), rows.get("v2pre")
    if v2:
        out += ["### Search time and accuracy (Table 3)", "",
                "| method | top-1 % | MACs (M) | super-network min | samples min (count) | final training min | total min |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        methods = (
            ("NetAdaptV1 (SCD, fine-tuned samples)", v1),
            ("NetAdaptV2 (OD + CBC + MCD)", v2),
            ("NetAdaptV2, super-network from V1's pre-trained network", v2pre),
        )
        for label, r in methods:
            if r:
                out.append(
                    f"| {label} | {_pct(r['top1'])} | {r['macs'] / 1e6:.2f} | {_min(r['supernet_seconds'])} | "
                    f"{_min(r['search_seconds'])} ({r['samples_evaluated']}) | {_min(r['final_seconds'])} | {_min(r['total_seconds'])} |"
                )
        if v1:
            out += ["", f"Total search time NetAdaptV1 / NetAdaptV2: **{v1['total_seconds'] / v2['total_seconds']:.2f}x** "
                    f"(sample stage alone {v1['search_seconds'] / max(v2['supernet_seconds'] + v2['search_seconds'], 1e-9):.2f}x "
                    f"against super-network + samples); NetAdaptV1's pre-training of the initial network "
                    f"({_min(v1['pretrain_seconds'])} min) is not counted, as in the paper (nor for the run "
                    f"that starts from it)."]  # fmt: skip
            if v2pre:
                out.append(
                    f"NetAdaptV1 / NetAdaptV2 from the pre-trained network: **{v1['total_seconds'] / v2pre['total_seconds']:.2f}x**."
                )
        out += ["", "### Against uniform scaling", "", "| network | top-1 % | MACs (M) |", "|---|---|---|"]
        out.append(f"| initial | {_pct(v2.get('initial_top1'))} | {v2.get('initial_macs', 0) / 1e6:.2f} |")
        out.append(f"| discovered (NetAdaptV2) | {_pct(v2['top1'])} | {v2['macs'] / 1e6:.2f} |")
        out.append(
            f"| uniform width multiplier, MAC-matched | {_pct(v2.get('baseline_top1'))} | {v2.get('baseline_macs', 0) / 1e6:.2f} |"
        )
        above = rows.get("uniform_above")
        if above:
            out.append(f"| uniform width multiplier, next step up | {_pct(above['top1'])} | {above['macs'] / 1e6:.2f} |")
        if v2.get("baseline_top1") is not None:
            gap = v2["baseline_macs"] / v2["macs"] - 1
            out += ["", f"Discovered - uniform at equal MACs: **{100 * (v2['top1'] - v2['baseline_top1']):+.2f} points** top-1 "
                    f"(the uniform network's MACs are {100 * gap:+.1f}% of the discovered network's; "
                    "the run matches them within ±2% where the width grid allows)."]  # fmt: skip
            if above and v2["baseline_macs"] < v2["macs"] < above["macs"]:
                lo, hi = (v2["baseline_macs"], v2["baseline_top1"]), (above["macs"], above["top1"])
                at = lo[1] + (hi[1] - lo[1]) * (v2["macs"] - lo[0]) / (hi[0] - lo[0])
                out.append(
                    f"Uniform scaling interpolated to the discovered network's MACs: {_pct(at)}%; "
                    f"discovered - uniform interpolated: **{100 * (v2['top1'] - at):+.2f} points**."
                )
    ablation = [
        (label, rows.get(k))
        for label, k in (("full (OD + CBC + MCD)", "v2"), ("without CBC", "nobypass"), ("SCD instead of MCD", "scd"))
    ]
    if any(r for _, r in ablation[1:]):
        out += ["", "### Ablations (Tables 4 and 11)", "",
                "| variant | top-1 % | MACs (M) | layers kept | samples evaluated | super-network s/epoch |", "|---|---|---|---|---|---|"]  # fmt: skip
        for label, r in ablation:
            if r:
                out.append(
                    f"| {label} | {_pct(r['top1'])} | {r['macs'] / 1e6:.2f} | {r['layers_kept']}/{r['layers_total']} | "
                    f"{r['samples_evaluated']} | {r['supernet_epoch_seconds']:.0f} |"
                )
        if v2 and rows.get("scd"):
            out += ["", f"Samples MCD / SCD: **{v2['samples_evaluated'] / rows['scd']['samples_evaluated']:.2f}x**."]
    hp = [r for k, r in sorted(rows.items()) if k.startswith("hp_")] + ([v2] if v2 else [])
    if len(hp) > 1:
        out += ["", "### Initial reduction x samples per iteration (Table 5)", "",
                "| initial reduction | samples/iteration | top-1 % | MACs (M) | samples evaluated | search min |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in sorted(hp, key=lambda r: (r["initial_reduction"], r["samples_per_iteration"])):
            out.append(
                f"| {100 * r['initial_reduction']:.1f}% | {r['samples_per_iteration']} | {_pct(r['top1'])} | "
                f"{r['macs'] / 1e6:.2f} | {r['samples_evaluated']} | {_min(r['search_seconds'])} |"
            )
    variance = [
        (label, [r for r in (v2, *(rows.get(f"{prefix}{s}") for s in SEEDS)) if r])
        for label, prefix in (
            ("final training (one discovered network)", "retrain"),
            ("search (one super-network)", "seed"),
            ("entire flow", "flow"),
        )
    ]
    if any(len(runs) > 1 for _, runs in variance):
        out += ["", "### Variance (Table 6)", "",
                "Each row runs one step three times (seed 0 is the v2 run, then seeds 1 and 2); the steps before it once.", "",
                "| repeated step | top-1 % by seed | MACs (M) by seed | range | std |", "|---|---|---|---|---|"]  # fmt: skip
        for label, runs in variance:
            if len(runs) > 1:
                top = torch.tensor([r["top1"] for r in runs], dtype=torch.float64) * 100
                macs = ", ".join(f"{r['macs'] / 1e6:.2f}" for r in runs)
                out.append(
                    f"| {label} | {', '.join(f'{t:.2f}' for t in top.tolist())} | {macs} | "
                    f"{top.max() - top.min():.2f} | {top.std():.2f} |"
                )
    machines = sorted({r["machine"] for r in rows.values()})
    if machines:
        out += ["", "Machine: " + "; ".join(machines)]
    return "\n".join(out) + "\n"


def resolve_data(path: Path) -> Path:
    if path.is_dir():
        return path
    if path.name.endswith(".tar.gz") and path.is_file():
        target = Path("data")
        if not (target / "cifar10-jpg").is_dir():
            target.mkdir(exist_ok=True)
            with tarfile.open(path) as archive:
                archive.extractall(target, filter="data")
        return target / "cifar10-jpg"
    raise SystemExit(f"CIFAR-10 folder {path} not found (extract ../shared/data/cifar10-jpg.tar.gz or pass the archive)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=(*EXPERIMENTS, "table"))
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--data", type=Path, default=Path("data/cifar10-jpg"))
    parser.add_argument("--out", type=Path, default=None, help="default: runs/repro-SIZE")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="RUN",
        help="run only these runs of the experiment (e.g. flow1), to spread one over several processes",
    )
    args = parser.parse_args(argv)
    retain_freed_memory()  # as the netadapt command does (netadapt.allocator)
    root = args.out or Path("runs") / f"repro-{args.size}"
    if args.experiment == "table":
        sys.stdout.write(tables(root))
        return 0
    torch.set_num_threads(args.threads)
    data = resolve_data(args.data)
    root.mkdir(parents=True, exist_ok=True)
    only = None if args.only is None else set(args.only)
    if args.experiment == "uniform":  # these two train networks of v2's run, not whole runs
        names, runs = {"uniform_above"}, lambda: uniform_above(root)
    elif args.experiment == "retrain":
        names, runs = {f"retrain{s}" for s in SEEDS}, lambda: retrain(root, only)
    else:
        configs = experiment_configs(args.experiment, SIZES[args.size], data.resolve(), root)
        names, runs = {c[0] for c in configs}, lambda: (run_one(*c, root) for c in configs if only is None or c[0] in only)
    if only is not None and only - names:
        raise SystemExit(
            f"--only: {', '.join(sorted(only - names))} is not a run of {args.experiment} ({', '.join(sorted(names))})"
        )
    shown = ("run", "top1", "macs", "layers_kept", "samples_evaluated", "total_seconds")
    for row in runs():
        print(json.dumps({k: row[k] for k in shown if k in row}))
    sys.stdout.write(tables(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
