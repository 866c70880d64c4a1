"""Does the super-network rank sub-networks the way stand-alone training does? (issue 14)

For one super-network recipe this benchmark

1. trains the super-network (``netadapt.train.train_supernet``, resumable run folder);
2. draws two sets of architectures of its search space, removed blocks included:
   *wide* -- spread evenly over 30-100% of the initial network's MACs -- and *narrow* -- within
   ±10% of the MACs of a target (50%), the choice the search actually makes;
3. scores every architecture with the shared weights exactly as ``netadapt search`` does
   (``build_search_loaders`` on the run folder's held-out split, BatchNorm recalibrated on
   training images, ``shared_weight_evaluator``);
4. trains every architecture stand-alone as its extracted compact network -- *fine-tuned* from
   the super-network's weights (what the flow's final training does) with two seeds, and *from
   scratch* (a second column) -- and evaluates it on the validation (test) images;
5. prints Kendall τ, Spearman ρ and top-5 overlap of the shared-weight scores against the mean
   of the seeds, with 95% bootstrap intervals, and the seed-to-seed τ of the ground truth itself.

Every step writes its result atomically and is skipped when its result exists, so a killed run
resumes; stand-alone trainings run ``--jobs`` at a time in worker processes (one thread each).

    python benchmarks/bench_ranking.py run --recipe block --size cpu --data data/cifar10-jpg
    python benchmarks/bench_ranking.py table --size cpu          # every recipe run so far

Recipes (``RECIPES``) are changes to the super-network training config; recipes with the same
search space share their architecture sets and their from-scratch trainings.  Sizes: ``cpu``
(MobileNetV1 ×0.5 on 10k CIFAR-10 images, 16 architectures per set; a recipe ~1 h on two cores, the scratch column
once per space), ``gpu`` (one H100/H200, the full training set), ``smoke`` (seconds; the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import multiprocessing
import random
import sys
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from netadapt.allocator import retain_freed_memory
from netadapt.arch.space import Architecture, SearchSpace
from netadapt.config import config_from_dict, merge_mappings
from netadapt.io import atomic_write, load_json, read_jsonl, save_json

log = logging.getLogger("bench_ranking")

# -- sizes and recipes ---------------------------------------------------------------------------
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {
        "model": "mobilenet_v1_cifar", "width_mult": 0.5, "subset": 10000, "heldout": 2000, "batch": 64,
        "epochs": 8, "pretrain_epochs": 5, "calibration": 500, "archs": 16, "finetune_epochs": 1, "scratch_epochs": 2,
        "finetune_seeds": 2, "scratch_seeds": 1, "val_subset": None, "device": "cpu",
    },
    # the paper's kind of space: MobileNetV3 blocks with residual paths, removed whole (a removed
    # block computes exactly its input), at about the MACs of the cpu size
    "cpu-v3": {
        "model": "mobilenet_v3_small_cifar", "width_mult": 0.75, "subset": 10000, "heldout": 2000, "batch": 64,
        "epochs": 8, "pretrain_epochs": 5, "calibration": 500, "archs": 16, "finetune_epochs": 1, "scratch_epochs": 2,
        "finetune_seeds": 2, "scratch_seeds": 1, "val_subset": None, "device": "cpu",
    },
    "gpu": {
        "model": "mobilenet_v3_large_cifar", "width_mult": 1.0, "subset": None, "heldout": 5000, "batch": 256,
        "epochs": 60, "pretrain_epochs": 40, "calibration": 2000, "archs": 20, "finetune_epochs": 5, "scratch_epochs": 30,
        "finetune_seeds": 2, "scratch_seeds": 2, "val_subset": None, "device": "auto",
    },
    "smoke": {
        "model": "mobilenet_v1_cifar", "width_mult": 0.25, "subset": 120, "heldout": 30, "batch": 30,
        "epochs": 1, "pretrain_epochs": 1, "calibration": 30, "archs": 4, "finetune_epochs": 1, "scratch_epochs": 1,
        "finetune_seeds": 2, "scratch_seeds": 1, "val_subset": 30, "device": "cpu",
    },
}  # fmt: skip

#: Super-network recipes: changes to the base training config (dotted keys of SupernetTrainConfig).
#: ``pretrain: True`` starts the super-network from the initial network trained plainly for the
#: size's ``pretrain_epochs`` (what a user with a trained model does; NetAdaptV1 starts there too).
#: The default recipe: from the trained network, progressive shrinking, one width level per image
#: with every layer within one choice of it, the sandwich rule.
SPREAD_PROG: dict[str, Any] = {
    "pretrain": True, "ordered_dropout.spread": 1, "ordered_dropout.sandwich": True, "ordered_dropout.width_epochs": 0.5,
}  # fmt: skip
SPREAD_DEEP: dict[str, Any] = {**SPREAD_PROG, "ordered_dropout.width_epochs": 0.25, "ordered_dropout.block_drop": 0.25}
# groups of 8 and a second pass of the initial network on every batch (recipes -lp below)
LARGEST_PASS: dict[str, Any] = {**SPREAD_PROG, "ordered_dropout.group_size": 8, "ordered_dropout.largest_pass": True}

RECIPES: dict[str, dict[str, Any]] = {
    # the initial network trained plainly for the recipes' whole budget (the reference of the goal
    # "full network within 3 points of the plainly trained one"); not a super-network
    "plain": {"ordered_dropout.enabled": False, "epochs_total": True},
    # the paper's space: any layer may keep 0 filters on its own (channel-level bypass)
    "layer": {"model.options": {"removal": "layer"}},
    # whole removable blocks (the default space), plain ordered dropout
    "block": {},
    # + the sandwich rule and in-place distillation from the initial network (BigNAS, US-Nets)
    "block-sd": {"ordered_dropout.sandwich": True, "ordered_dropout.distill": 0.5},
    # + a progressive schedule: initial network alone, then widths, then depth (Once-for-All)
    "block-prog": {"ordered_dropout.full_epochs": 0.25, "ordered_dropout.width_epochs": 0.25},
    # all of the above
    "block-sd-prog": {
        "ordered_dropout.sandwich": True, "ordered_dropout.distill": 0.5,
        "ordered_dropout.full_epochs": 0.25, "ordered_dropout.width_epochs": 0.25,
    },
    # widths from 50% of each layer up, whole blocks still removable
    "block-half": {"model.options": {"min_width_fraction": 0.5}, "ordered_dropout.sandwich": True,
                   "ordered_dropout.distill": 0.5},
    # from the trained initial network: plain ordered dropout, then with the levers
    "pre-block": {"pretrain": True},
    "pre-block-sd-prog": {
        "pretrain": True, "ordered_dropout.sandwich": True, "ordered_dropout.distill": 0.5,
        "ordered_dropout.width_epochs": 0.5,
    },
    # the default recipe: from the trained network, progressive shrinking, one width level per
    # image with every layer within one choice of it, the sandwich rule
    "pre-spread-prog": SPREAD_PROG,
    # the same with a fine-tuning learning rate (0.01 instead of 0.05): the trained weights are a
    # starting point to keep, not to re-learn (Once-for-All lowers the rate for its shrinking stages);
    # optim.lr is per 1024 images: 0.16 is 0.01 at batch 64
    "pre-spread-prog-lr": {**SPREAD_PROG, "optim.lr": 0.16},
    # the default recipe with more depth in training: removal from a quarter of the epochs on (not
    # half) and each removable block dropped for a quarter of the images (not one in nine)
    "pre-spread-deep": SPREAD_DEEP,
    # the default recipe with one sub-network per group of images, each group normalized with its
    # own BatchNorm statistics (ordered_dropout.group_size; docs/ranking.md)
    "pre-spread-prog-g16": {**SPREAD_PROG, "ordered_dropout.group_size": 16},
    "pre-spread-prog-g8": {**SPREAD_PROG, "ordered_dropout.group_size": 8},
    # the same with another seed of the super-network's training (its repeatability)
    "pre-spread-prog-g8-s1": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "seed": 1},
    # the "without CBC" ablation (paper Table 4) of the same recipe: no channel-level bypass, so no
    # layer keeps 0 filters on its own and each depthwise layer is tied to the layer feeding it;
    # residual blocks stay removable whole (their own skip connection carries the input)
    "pre-spread-prog-g8-nocbc": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "model.options": {"bypass": "none"}},
    # the same over a grid of widths in multiples of 8 (``width_divisor: 8``): the grid on which
    # ONNX Runtime's x86 kernels run fast (docs/resources.md), fair to uniform scaling at a latency target
    "pre-spread-prog-g8-wd8": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "model.options": {"width_divisor": 8}},
    # ... with in-place distillation from the initial network, with more depth in training
    "pre-spread-prog-g8-kd": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "ordered_dropout.distill": 0.5},
    "pre-spread-deep-g8": {**SPREAD_DEEP, "ordered_dropout.group_size": 8},
    # a quarter of the groups (two of eight, not the sandwich's one) train the initial network
    "pre-spread-prog-g8-top25": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "ordered_dropout.largest_share": 0.25},
    # half the groups train the initial network; 9 plain epochs and a quarter of the groups
    "pre-spread-prog-g8-top50": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "ordered_dropout.largest_share": 0.5},
    # every step also trains the initial network on the whole batch (a second forward-backward
    # pass, BigNAS's sandwich), so it sees every image of every epoch; with in-place distillation
    # of the ordered-dropout pass from that pass's outputs (-kd)
    "pre-spread-prog-g8-lp": LARGEST_PASS,
    "pre-spread-prog-g8-lp-kd": {**LARGEST_PASS, "ordered_dropout.distill": 0.5},
    "pre-spread-prog-g8-lp-s1": {**LARGEST_PASS, "seed": 1},
    "pre-spread-prog-g8-lp-kd-s1": {**LARGEST_PASS, "ordered_dropout.distill": 0.5, "seed": 1},
    # the control at equal compute: the default recipe for twice the epochs (a largest pass
    # costs about a second step)
    "pre-spread-prog-g8-x2": {**SPREAD_PROG, "ordered_dropout.group_size": 8, "epochs_scale": 2},
    "pre9-spread-prog-g8-top25": {
        **SPREAD_PROG, "pretrain": 9, "ordered_dropout.group_size": 8, "ordered_dropout.largest_share": 0.25,
    },
    # the same total budget split otherwise: 9 plain epochs (not 5), then 4 with ordered dropout
    # (not 8) -- the full network trained longer alone, the sub-networks shorter
    "pre9-spread-prog-g8": {**SPREAD_PROG, "pretrain": 9, "ordered_dropout.group_size": 8},
    # the same 13 epochs (5 + 8) in one run and one learning-rate schedule, not a trained network
    # then a restarted schedule: the first 5 epochs train the initial network alone, the next 4
    # widths only, the last 4 everything (the phases of pre-spread-prog-g8, without the restart;
    # phase lengths are fractions of the size's 8 epochs: 0.625 x 8 = 5); with half the groups
    # training the initial network (-top50)
    "cont-spread-prog-g8": {
        "ordered_dropout.spread": 1, "ordered_dropout.sandwich": True, "ordered_dropout.group_size": 8, "epochs_total": True,
        "ordered_dropout.full_epochs": 0.625, "ordered_dropout.width_epochs": 0.5,
    },
    "cont-spread-prog-g8-top50": {
        "ordered_dropout.spread": 1, "ordered_dropout.sandwich": True, "ordered_dropout.group_size": 8, "epochs_total": True,
        "ordered_dropout.full_epochs": 0.625, "ordered_dropout.width_epochs": 0.5, "ordered_dropout.largest_share": 0.5,
    },
    # from scratch (no pre-training, no progressive shrinking): one width level per image and the
    # sandwich rule, with one batch statistic or groups of 8 images normalized apart
    "spread": {"ordered_dropout.spread": 1, "ordered_dropout.sandwich": True},
    "spread-g8": {"ordered_dropout.spread": 1, "ordered_dropout.sandwich": True, "ordered_dropout.group_size": 8},
    "pre-layer-sd-prog": {
        "pretrain": True, "model.options": {"removal": "layer"}, "ordered_dropout.sandwich": True,
        "ordered_dropout.distill": 0.5, "ordered_dropout.width_epochs": 0.5,
    },
}  # fmt: skip
#: Phase lengths above are fractions of the recipe's epochs (resolved per size).  ``pretrain: N``
#: (an int) moves the split of the same total budget: N plain epochs, the rest ordered dropout.
FRACTION_KEYS = ("ordered_dropout.full_epochs", "ordered_dropout.width_epochs")

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]


def data_config(size: dict[str, Any], data: Path) -> dict[str, Any]:
    return {
        "dataset": "folder", "root": str(data), "preset": "cifar", "mean": CIFAR_MEAN, "std": CIFAR_STD,
        "batch_size": size["batch"], "heldout": size["heldout"], "subset": size["subset"], "val_subset": size["val_subset"],
    }  # fmt: skip


def epoch_split(size: dict[str, Any], recipe: str) -> tuple[int, int]:
    """(plain pre-training epochs, ordered-dropout epochs) of ``recipe``: the size's split, or with
    ``pretrain: N`` N plain epochs and the rest of the same total budget with ordered dropout."""
    pretrain = RECIPES[recipe].get("pretrain")
    if pretrain is True or not pretrain:
        return (size["pretrain_epochs"] if pretrain else 0), size["epochs"]
    total = size["pretrain_epochs"] + size["epochs"]
    if not 0 < pretrain < total:
        raise SystemExit(f"error: recipe {recipe!r}: pretrain {pretrain} must be between 0 and {total} epochs")
    return pretrain, total - pretrain


def pretrained_dir(size: dict[str, Any], recipe: str, root: Path) -> Path:
    """The folder of the plainly trained initial network that ``recipe`` starts from (one per
    number of pre-training epochs, shared by the recipes that use it)."""
    epochs = epoch_split(size, recipe)[0]
    return root / "supernets" / ("_pretrained" if epochs == size["pretrain_epochs"] else f"_pretrained-e{epochs}")


def supernet_config(size: dict[str, Any], data: Path, recipe: str, run_dir: Path) -> dict[str, Any]:
    """The super-network training config of ``recipe`` (a SupernetTrainConfig mapping)."""
    # ``epochs_scale``: the same phases (fractions of the epochs) over a multiple of the epochs
    epochs = epoch_split(size, recipe)[1] * RECIPES[recipe].get("epochs_scale", 1)
    base = {
        "run_dir": str(run_dir), "seed": 0, "epochs": epochs, "device": size["device"],
        "model": {"name": size["model"], "width_mult": size["width_mult"], "options": {}},
        "data": data_config(size, data),
        "optim": {"name": "sgd", "lr": 0.8, "lr_batch": 1024, "weight_decay": 4.0e-5},
        "schedule": {"name": "cosine", "warmup_epochs": min(1.0, epochs / 2)},
        "label_smoothing": 0.1, "ema_decay": None, "eval_every": 1000, "val_calibration_images": size["calibration"],
        "progress": False, "tensorboard": False,
    }  # fmt: skip
    changes: dict[str, Any] = {}
    for key, value in RECIPES[recipe].items():
        if key == "pretrain":
            changes["init_from"] = str(pretrained_dir(size, recipe, run_dir.parent.parent) / "supernet.pt")
        elif key == "epochs_total":
            changes["epochs"] = size["pretrain_epochs"] + size["epochs"]
        elif key == "epochs_scale":  # applied to ``epochs`` above
            continue
        else:
            _set(changes, key, value * epochs if key in FRACTION_KEYS else value)
    return merge_mappings(base, changes)


def pretrain_config(size: dict[str, Any], data: Path, run_dir: Path, epochs: int | None = None) -> dict[str, Any]:
    """The initial network trained plainly for ``epochs`` (default: the size's ``pretrain_epochs``;
    recipes with ``pretrain``)."""
    mapping = supernet_config(size, data, "block", run_dir)
    mapping["epochs"] = epochs or size["pretrain_epochs"]
    mapping["schedule"]["warmup_epochs"] = min(1.0, mapping["epochs"] / 2)
    mapping["ordered_dropout"] = {"enabled": False}
    return mapping


def standalone_config(
    size: dict[str, Any], data: Path, run_dir: Path, arch_file: Path, init: str | None, seed: int, options: dict | None = None
) -> dict:
    """Stand-alone training of one architecture (its compact network): fine-tuned from ``init``
    (a super-network file) or from scratch (``init=None``); ``options``: the search space's
    (a recipe's ``model.options``) where it is not the default one."""
    epochs = size["finetune_epochs"] if init else size["scratch_epochs"]
    return {
        "run_dir": str(run_dir), "seed": seed, "epochs": epochs, "device": "cpu" if size["device"] == "cpu" else "auto",
        "model": {"name": size["model"], "width_mult": size["width_mult"], "options": options or {}},
        "data": data_config(size, data),
        # fine-tuning starts from trained weights: a smaller learning rate, no warm-up
        "optim": {"name": "sgd", "lr": 0.2 if init else 0.8, "lr_batch": 1024, "weight_decay": 4.0e-5},
        "schedule": {"name": "cosine", "warmup_epochs": 0.0 if init else min(1.0, epochs / 2)},
        "label_smoothing": 0.1, "ema_decay": None, "eval_every": 1000,
        "ordered_dropout": {"enabled": False}, "architecture": str(arch_file), "init_from": init,
        "progress": False, "tensorboard": False,
    }  # fmt: skip


def _set(mapping: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        mapping = mapping.setdefault(key, {})
    mapping[keys[-1]] = value


# -- architecture sets ---------------------------------------------------------------------------
def _candidate(space: SearchSpace, rng: random.Random) -> Architecture:
    """A random architecture with a random width floor and block-removal rate, so that the
    candidates cover the whole range of MACs (uniform sampling concentrates around its mean)."""
    floor, drop = rng.random(), rng.random() * 0.5
    filters = [0] * len(space.layers)
    for group in space.tie_groups():
        layer = space.layers[group[0]]
        options = [w for w in layer.widths if w > 0 and w >= floor * layer.max_filters] or [layer.max_filters]
        value = rng.choice(options)
        for i in group:
            filters[i] = value
    kernels = [rng.choice(layer.kernels) for layer in space.layers]
    for group in space.removal_groups():
        if rng.random() < drop:
            for i in group:
                filters[i] = 0
    return space.make(filters, kernels)


def draw_sets(space: SearchSpace, macs_of, count: int, *, target: float = 0.5, seed: int = 0) -> dict[str, list[Architecture]]:
    """The *wide* and *narrow* architecture sets (see the module docstring)."""
    rng = random.Random(f"ranking:{seed}")
    full = macs_of(space.full())
    pool = {arch: macs_of(arch) / full for arch in (_candidate(space, rng) for _ in range(max(4000, 200 * count)))}
    items = sorted(pool.items(), key=lambda kv: kv[1])
    wide: list[Architecture] = []
    for k in range(count):  # evenly spaced MAC fractions over [0.3, 1.0]
        goal = 0.3 + 0.7 * (k + 0.5) / count
        arch = min((a for a, f in items if a not in wide), key=lambda a: abs(pool[a] - goal))
        wide.append(arch)
    near = [a for a, f in items if abs(f - target) <= 0.1 * target]
    rng.shuffle(near)
    return {"wide": wide, "narrow": near[:count]}


def arch_key(arch: Architecture) -> str:
    return hashlib.sha256(json.dumps([arch.space, arch.filters, arch.kernels]).encode()).hexdigest()[:12]


# -- statistics ----------------------------------------------------------------------------------
def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's τ-b (ties counted as neither concordant nor discordant, τ-b normalization)."""
    n = len(a)
    s = t_a = t_b = 0
    for i in range(n):
        da, db = np.sign(a[i + 1 :] - a[i]), np.sign(b[i + 1 :] - b[i])
        s += int((da * db).sum())
        t_a += int((da == 0).sum())
        t_b += int((db == 0).sum())
    pairs = n * (n - 1) // 2
    denom = math.sqrt((pairs - t_a) * (pairs - t_b))
    return s / denom if denom else float("nan")


def spearman_rho(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum()) / denom if denom else float("nan")


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):  # average ranks of ties
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = 5) -> int:
    k = min(k, len(a))
    return len(set(np.argsort(-a)[:k].tolist()) & set(np.argsort(-b)[:k].tolist()))


def bootstrap(fn, a: np.ndarray, b: np.ndarray, *, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``fn(a, b)`` over resampled architectures."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(a), len(a))
        v = fn(a[idx], b[idx])
        if not math.isnan(v):
            values.append(v)
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))) if values else (math.nan, math.nan)


def removed_versus_width(truth: list[list[float]], removed: list[int], fractions: list[float]) -> dict[str, Any] | None:
    """Stand-alone accuracy of architectures with ≥ 2 removed blocks against width-only ones at
    the same MACs: the mean residual of the removed ones from a least-squares line of accuracy on
    MAC fraction fitted to the width-only ones (points; > 0: removing blocks did better)."""
    acc = np.asarray(truth, dtype=float).mean(0)
    removed_ = np.asarray(removed)
    fraction = np.asarray(fractions, dtype=float)
    width_only, deep = removed_ == 0, removed_ >= 2
    if width_only.sum() < 3 or deep.sum() < 1:
        return None
    slope, intercept = np.polyfit(fraction[width_only], acc[width_only], 1)
    residual = acc[deep] - (intercept + slope * fraction[deep])
    return {
        "removed_2plus": int(deep.sum()),
        "width_only": int(width_only.sum()),
        "mean_residual_points": float(100 * residual.mean()),
        "worst_residual_points": float(100 * residual.min()),
    }


def summarize(shared: list[float], truth: list[list[float]]) -> dict[str, Any]:
    """Ranking figures of shared-weight scores against the mean of the seeds' accuracies."""
    a = np.asarray(shared, dtype=float)
    runs = np.asarray(truth, dtype=float)  # (seeds, archs)
    mean = runs.mean(0)
    out = {
        "n": len(a),
        "tau": kendall_tau(a, mean),
        "tau_ci": bootstrap(kendall_tau, a, mean),
        "rho": spearman_rho(a, mean),
        "top5": top_overlap(a, mean),
        "truth_mean": float(mean.mean()),
        "truth_range": [float(mean.min()), float(mean.max())],
        "shared_range": [float(a.min()), float(a.max())],
    }
    if len(runs) >= 2:
        out["seed_tau"] = kendall_tau(runs[0], runs[1])
        out["seed_tau_ci"] = bootstrap(kendall_tau, runs[0], runs[1])
        out["seed_abs_diff"] = float(np.abs(runs[0] - runs[1]).mean())
    return out


# -- the stages ----------------------------------------------------------------------------------
def _extract_data(data: Path, out: Path) -> Path:
    if data.is_dir():
        return data
    if data.name.endswith(".tar.gz") and data.is_file():
        target = out.parent / "data"
        folder = target / "cifar10-jpg"
        if not folder.is_dir():
            with tarfile.open(data) as archive:
                archive.extractall(target, filter="data")
        return folder
    raise SystemExit(f"error: data folder {data} does not exist")


def train_pretrained(size: dict, data: Path, recipe: str, root: Path) -> Path:
    """The plainly trained initial network that the ``pre-*`` ``recipe`` starts from, trained once
    (an interrupted training resumes, a finished one is reused); its file."""
    from netadapt.train.config import SupernetTrainConfig
    from netadapt.train.loop import train_supernet

    if not RECIPES[recipe].get("pretrain"):
        raise SystemExit(f"error: recipe {recipe!r} does not start from a trained network; choose a pre-* recipe")
    epochs = epoch_split(size, recipe)[0]
    folder = pretrained_dir(size, recipe, root)
    return train_supernet(config_from_dict(SupernetTrainConfig, pretrain_config(size, data, folder, epochs)))


def train_recipe_supernet(size: dict, data: Path, recipe: str, root: Path, threads: int) -> Path:
    from netadapt.train.config import SupernetTrainConfig
    from netadapt.train.loop import train_supernet

    torch.set_num_threads(threads)
    started = time.perf_counter()
    if RECIPES[recipe].get("pretrain"):
        train_pretrained(size, data, recipe, root)
    mapping = supernet_config(size, data, recipe, root / "supernets" / recipe)
    path = train_supernet(config_from_dict(SupernetTrainConfig, mapping))
    log.info("super-network of %s: %s (%.0f s this call)", recipe, path, time.perf_counter() - started)
    return path


def architecture_sets(
    supernet: Path, size: dict, root: Path, copy_from: Path | None = None
) -> tuple[str, dict[str, list[Architecture]]]:
    """(space fingerprint, sets), drawn once per search space and kept in ``spaces/FP/archs.json``
    (copied from the results folder ``copy_from`` where that holds the space's sets)."""
    from netadapt.model.checkpoint import load_supernet
    from netadapt.resources.counting import count_macs

    net, _ = load_supernet(supernet)
    folder = root / "spaces" / net.space.fingerprint
    path = folder / "archs.json"
    earlier = None if copy_from is None else copy_from / "spaces" / net.space.fingerprint / "archs.json"
    if not path.exists() and earlier is not None and earlier.exists():
        save_json(path, load_json(earlier))
    if not path.exists():
        sets = draw_sets(net.space, lambda a: count_macs(net, a), size["archs"])
        full = count_macs(net, net.space.full())
        save_json(path, {name: [{"arch": a.to_dict(), "macs": count_macs(net, a), "mac_fraction": count_macs(net, a) / full,
                                 "removed_blocks": len(net.space.removed_blocks(a))} for a in archs]
                         for name, archs in sets.items()})  # fmt: skip
    saved = load_json(path)
    return net.space.fingerprint, {name: [Architecture.from_dict(r["arch"]) for r in rows] for name, rows in saved.items()}


@contextmanager
def shared_evaluator(supernet: Path, size: dict) -> Iterator[tuple[Any, list]]:
    """(evaluator, held-out batches): the super-network's held-out split decoded once and its
    samples prepared exactly as ``netadapt search`` prepares them (BatchNorm recalibrated)."""
    from netadapt.data import build_search_loaders
    from netadapt.model.checkpoint import load_supernet
    from netadapt.search.evaluate import EvalConfig, shared_weight_evaluator, take_images

    net, _ = load_supernet(supernet)
    heldout, calibration = build_search_loaders(supernet.parent, batch_size=500, calibration_images=size["calibration"])
    heldout = take_images(heldout, len(heldout.dataset))  # decoded once, as the search does
    with shared_weight_evaluator(net, heldout, calibration, EvalConfig(calibration_images=size["calibration"])) as ev:
        yield ev, heldout


def shared_outputs(supernet: Path, archs: list[Architecture], size: dict) -> Iterator[tuple[Architecture, list]]:
    """Each architecture with its (logits, labels) batches on the held-out split, the network
    prepared as the search prepares a sample (:func:`shared_evaluator`)."""
    with shared_evaluator(supernet, size) as (ev, heldout):
        for arch in archs:
            with ev.prepare(ev.supernet, arch, ev.device) as forward, torch.inference_mode():
                yield arch, [(forward(x).float(), y) for x, y in heldout]


def shared_scores(supernet: Path, archs: list[Architecture], size: dict, out: Path) -> dict[str, float]:
    """Shared-weight scores exactly as ``netadapt search`` computes them (cached in ``out``)."""
    cached = load_json(out) if out.exists() else {}
    todo = [a for a in archs if arch_key(a) not in cached]
    if todo:
        with shared_evaluator(supernet, size) as (ev, _):
            for arch, score in zip(todo, ev(todo), strict=True):
                cached[arch_key(arch)] = score
                save_json(out, cached)
    return {arch_key(a): cached[arch_key(a)] for a in archs}


def _job(args: tuple[dict, str, str]) -> tuple[str, float | None, str | None]:
    """One stand-alone training (in a worker process): returns (folder, val_top1 or None, error)."""
    mapping, arch_text, folder = args
    try:
        from netadapt.train.config import SupernetTrainConfig
        from netadapt.train.loop import train_supernet

        run_dir = Path(folder)
        result = run_dir / "result.json"
        if result.exists():
            return folder, load_json(result)["val_top1"], None
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "architecture.json", lambda f: f.write(arch_text.encode()))
        started = time.perf_counter()
        train_supernet(config_from_dict(SupernetTrainConfig, mapping))
        record = read_jsonl(run_dir / "metrics.jsonl")[-1]
        save_json(result, {"val_top1": record["val_top1"], "seconds": time.perf_counter() - started})
        for name in ("checkpoint.pt", "supernet.pt"):  # the figure is kept; the weights are not needed
            (run_dir / name).unlink(missing_ok=True)
        return folder, record["val_top1"], None
    except Exception as exc:  # reported by the parent, which goes on with the other jobs
        return folder, None, f"{type(exc).__name__}: {exc}"


def _init_worker() -> None:
    torch.set_num_threads(1)
    retain_freed_memory()  # as the netadapt command does (netadapt.allocator)
    logging.basicConfig(level=logging.WARNING)


def standalone(
    jobs_spec: list[tuple[str, Architecture, str | None, int]],
    size: dict,
    data: Path,
    root: Path,
    jobs: int,
    options: dict | None = None,
) -> dict[tuple[str, str, int], float]:
    """Train every (column, architecture, init, seed) of ``jobs_spec``; results by (column, key, seed);
    ``options``: the search space's where it is not the default one."""
    work, keys = [], []
    for column, arch, init, seed in jobs_spec:
        key = arch_key(arch)
        folder = root / "standalone" / (column if init else f"scratch-{arch.space}") / f"{key}-s{seed}"
        arch_file = folder / "architecture.json"
        mapping = standalone_config(size, data, folder, arch_file, init, seed, options)
        work.append((mapping, arch.to_json(), str(folder)))
        keys.append((column, key, seed))
    results: dict[tuple[str, str, int], float] = {}
    if jobs > 1:  # spawned workers, one thread each (forking after OpenMP started is unsafe)
        pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
        outcomes = pool.map(_job, work)
    else:
        pool, outcomes = None, map(_job, work)
    try:
        for done, ((column, key, seed), (folder, value, error)) in enumerate(zip(keys, outcomes, strict=True), 1):
            if error is not None:
                raise SystemExit(f"error: stand-alone training in {folder} failed: {error}")
            results[(column, key, seed)] = float(value)
            log.info("stand-alone %d/%d: %s %s seed %d -> %.4f", done, len(work), column, key, seed, value)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results


def run(args: argparse.Namespace) -> int:
    size = SIZES[args.size]
    root = Path(args.out or f"runs/ranking-{args.size}")
    data = _extract_data(Path(args.data), root)
    started = time.perf_counter()
    supernet = train_recipe_supernet(size, data, args.recipe, root, args.threads)
    validation = {k: v for k, v in read_jsonl(supernet.parent / "metrics.jsonl")[-1].items() if k.startswith("val_top1")}
    if not RECIPES[args.recipe].get("ordered_dropout.enabled", True):  # a plain network: nothing to rank
        save_json(root / "results" / f"{args.recipe}.json", {"recipe": args.recipe, "size": args.size, "validation": validation,
                                                            "sets": {}, "machine": _machine()})  # fmt: skip
        print(f"{args.recipe}: validation top-1 {100 * validation['val_top1']:.2f}%")
        return 0
    fingerprint, sets = architecture_sets(supernet, size, root, Path(args.truth_from).parent.parent if args.truth_from else None)
    sets = {name: archs for name, archs in sets.items() if name in args.sets}
    saved = load_json(root / "spaces" / fingerprint / "archs.json")
    info = {name: {"removed": [r["removed_blocks"] for r in rows], "fraction": [r["mac_fraction"] for r in rows]}
            for name, rows in saved.items()}  # fmt: skip
    all_archs = [a for archs in sets.values() for a in archs]
    scores = shared_scores(supernet, all_archs, size, root / "supernets" / args.recipe / "shared_scores.json")
    spec = []
    truth_of = args.truth_of or args.recipe  # another recipe's fine-tuned networks: a cheaper, shared truth
    if args.truth_from:
        truth_of, known = stored_truth(Path(args.truth_from), fingerprint, sets)
    else:
        for seed in range(size["finetune_seeds"]):
            spec += [(f"finetune-{truth_of}", a, str(supernet.parent.parent / truth_of / "supernet.pt"), seed) for a in all_archs]
        known = {}
    if not args.no_scratch:
        for seed in range(size["scratch_seeds"]):
            spec += [("scratch", a, None, seed) for a in all_archs]
    trained = {**known, **standalone(spec, size, data, root, args.jobs)}
    report: dict[str, Any] = {"recipe": args.recipe, "truth_of": truth_of, "size": args.size, "space": fingerprint, "validation": validation,
                              "sets": {}}  # fmt: skip
    for name, archs in sets.items():
        keys = [arch_key(a) for a in archs]
        shared = [scores[k] for k in keys]
        entry: dict[str, Any] = {"shared": shared}
        for column, seeds, label in ((f"finetune-{truth_of}", size["finetune_seeds"], "finetune"),
                                     ("scratch", size["scratch_seeds"], "scratch")):  # fmt: skip
            runs = [[trained[(column, k, s)] for k in keys] for s in range(seeds) if (column, keys[0], s) in trained]
            if runs:
                entry[label] = summarize(shared, runs)
                entry[f"{label}_accuracy"] = runs
                entry[label]["removed_vs_width"] = removed_versus_width(runs, info[name]["removed"], info[name]["fraction"])
        report["sets"][name] = entry
    report["wall_seconds_this_call"] = time.perf_counter() - started
    report["machine"] = _machine()
    save_json(root / "results" / f"{args.recipe}.json", report)
    print(format_table([report]))
    return 0


def stored_truth(
    path: Path, fingerprint: str, sets: dict[str, list[Architecture]]
) -> tuple[str, dict[tuple[str, str, int], float]]:
    """(recipe, fine-tuned accuracies by (column, architecture key, seed)) of an earlier report
    of the same space and architecture sets: a measured truth reused without training again."""
    if not path.is_file():
        raise SystemExit(f"error: --truth-from {path}: no such report")
    report = load_json(path)
    if report.get("space") != fingerprint:
        raise SystemExit(f"error: --truth-from {path}: its space {report.get('space')} is not this one ({fingerprint})")
    truth_of = report.get("truth_of", report["recipe"])
    known = {}
    for name, archs in sets.items():
        runs = report["sets"].get(name, {}).get("finetune_accuracy")
        if not runs or any(len(run) != len(archs) for run in runs):
            raise SystemExit(f"error: --truth-from {path}: no fine-tuned accuracy of every architecture of set {name!r}")
        for seed, run in enumerate(runs):
            known.update({(f"finetune-{truth_of}", arch_key(a), seed): value for a, value in zip(archs, run, strict=True)})
    return truth_of, known


def _machine() -> str:
    import platform

    return (
        f"{platform.machine()} {platform.processor() or ''} {torch.get_num_threads()} threads, torch {torch.__version__}".strip()
    )


def format_table(reports: list[dict]) -> str:
    def ci(pair) -> str:
        return f"[{pair[0]:+.2f}, {pair[1]:+.2f}]"

    def pct(report: dict, key: str) -> str:
        value = report.get("validation", {}).get(key)
        return "–" if value is None else f"{100 * value:.1f}"

    networks = [
        "| recipe | validation top-1 % of the initial / half-width / smallest network (BatchNorm recalibrated) |",
        "|---|---|",
    ] + [f"| {r['recipe']} | {pct(r, 'val_top1')} / {pct(r, 'val_top1_half')} / {pct(r, 'val_top1_min')} |" for r in reports]

    lines = [
        "| recipe | set | N | truth | Kendall τ [95% CI] | Spearman ρ | top-5 | seed-to-seed τ | truth top-1 range | "
        "≥2 blocks removed vs width-only, points |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for report in reports:
        for name, entry in report["sets"].items():
            for label in ("finetune", "scratch"):
                s = entry.get(label)
                if s is None:
                    continue
                seed = f"{s['seed_tau']:+.2f} {ci(s['seed_tau_ci'])}" if "seed_tau" in s else "– (one seed)"
                rv = s.get("removed_vs_width")
                removed = (
                    "–"
                    if not rv
                    else f"{rv['mean_residual_points']:+.1f} (n={rv['removed_2plus']}, worst {rv['worst_residual_points']:+.1f})"
                )
                truth_of = report.get("truth_of", report["recipe"])
                truth = f"{label} of {truth_of}" if label == "finetune" and truth_of != report["recipe"] else label
                lines.append(
                    f"| {report['recipe']} | {name} | {s['n']} | {truth} | {s['tau']:+.2f} {ci(s['tau_ci'])} | "
                    f"{s['rho']:+.2f} | {s['top5']}/5 | {seed} | "
                    f"{100 * s['truth_range'][0]:.1f}–{100 * s['truth_range'][1]:.1f}% | {removed} |"
                )
    return "\n".join(networks) + "\n\n" + "\n".join(lines)


def resummarize(report: dict, root: Path) -> dict:
    """The report's figures computed again from its raw scores and accuracies (so that the
    table of earlier runs follows the current statistics)."""
    archs = root / "spaces" / str(report.get("space")) / "archs.json"
    saved = load_json(archs) if archs.exists() else {}
    for name, entry in report["sets"].items():
        rows = saved.get(name)
        for label in ("finetune", "scratch"):
            runs = entry.get(f"{label}_accuracy")
            if runs:
                entry[label] = summarize(entry["shared"], runs)
                if rows:
                    removed, fraction = [r["removed_blocks"] for r in rows], [r["mac_fraction"] for r in rows]
                    entry[label]["removed_vs_width"] = removed_versus_width(runs, removed, fraction)
    return report


def score_noise(args: argparse.Namespace) -> int:
    """How much of the disagreement is the score's own noise?  The same shared weights score every
    architecture a second time on the 10,000 test images (a diagnostic only: the search never sees
    them) and both scores are ranked against the stand-alone truth."""
    from netadapt.data import build_datasets, make_eval_loader
    from netadapt.data.config import DataConfig
    from netadapt.data.loaders import calibration_set, load_heldout
    from netadapt.model.checkpoint import load_supernet
    from netadapt.search.evaluate import EvalConfig, shared_weight_evaluator, take_images

    root = Path(args.out or f"runs/ranking-{args.size}")
    size = SIZES[args.size]
    report = load_json(root / "results" / f"{args.recipe}.json")
    supernet = root / "supernets" / args.recipe / "supernet.pt"
    _, sets = architecture_sets(supernet, size, root)
    archs = [a for rows in sets.values() for a in rows]
    out = root / "supernets" / args.recipe / "shared_scores_test.json"
    cached = load_json(out) if out.exists() else {}
    todo = [a for a in archs if arch_key(a) not in cached]
    if todo:
        torch.set_num_threads(args.threads)
        net, _ = load_supernet(supernet)
        split = load_heldout(supernet.parent)
        config = config_from_dict(DataConfig, dict(split.data), prefix="data.")
        data = build_datasets(config, split)
        test = take_images(make_eval_loader(data.val, config, batch_size=500), len(data.val))
        calibration = make_eval_loader(calibration_set(data, size["calibration"], 0), config, batch_size=500)
        with shared_weight_evaluator(net, test, calibration, EvalConfig(calibration_images=size["calibration"])) as ev:
            for arch, score in zip(todo, ev(todo), strict=True):
                cached[arch_key(arch)] = score
                save_json(out, cached)
    scores = shared_scores(supernet, archs, size, root / "supernets" / args.recipe / "shared_scores.json")
    lines = ["| set | N | τ held-out score vs truth | τ test-set score vs truth | τ held-out vs test-set score |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, rows in sets.items():
        keys = [arch_key(a) for a in rows]
        truth = np.asarray(report["sets"][name]["finetune_accuracy"], dtype=float).mean(0)
        held, test_ = np.asarray([scores[k] for k in keys]), np.asarray([cached[k] for k in keys])
        lines.append(_two_scores_row(name, held, test_, truth))
    print("\n".join(lines))
    save_json(root / "supernets" / args.recipe / "score_noise.json", {"table": lines})
    return 0


def score_loss(args: argparse.Namespace) -> int:
    """Would the held-out cross-entropy rank better than top-1?  Every architecture of a recipe's
    sets is scored on the held-out images as the search scores it (same preparation: extracted,
    BatchNorm recalibrated), keeping top-1 and the mean cross-entropy; both are ranked against the
    stand-alone truth (the top-1 column reproduces the recipe's report)."""
    import torch.nn.functional as F

    root = Path(args.out or f"runs/ranking-{args.size}")
    size = SIZES[args.size]
    report = load_json(root / "results" / f"{args.recipe}.json")
    supernet = Path(args.supernet) if args.supernet else root / "supernets" / args.recipe / "supernet.pt"
    sets = {name: [Architecture.from_dict(d["arch"]) for d in rows] for name, rows in
            load_json(root / "spaces" / str(report["space"]) / "archs.json").items()}  # fmt: skip
    out = root / "supernets" / args.recipe / "shared_losses.json"
    cached = load_json(out) if out.exists() else {}
    todo = [a for rows in sets.values() for a in rows if arch_key(a) not in cached]
    if todo:
        torch.set_num_threads(args.threads)
        for arch, outs in shared_outputs(supernet, todo, size):
            n = sum(len(y) for _, y in outs)
            cached[arch_key(arch)] = {
                "top1": float(sum(int((o.argmax(1) == y).sum()) for o, y in outs)) / n,
                "loss": float(sum(float(F.cross_entropy(o, y, reduction="sum")) for o, y in outs)) / n,
            }
            save_json(out, cached)
    lines = ["| set | N | τ top-1 vs truth | τ −cross-entropy vs truth | τ top-1 vs −cross-entropy |", "|---|---|---|---|---|"]
    for name, rows in sets.items():
        keys = [arch_key(a) for a in rows]
        truth = np.asarray(report["sets"][name]["finetune_accuracy"], dtype=float).mean(0)
        top1 = np.asarray([cached[k]["top1"] for k in keys])
        loss = -np.asarray([cached[k]["loss"] for k in keys])
        lines.append(_two_scores_row(name, top1, loss, truth))
    print("\n".join(lines))
    save_json(root / "supernets" / args.recipe / "score_loss.json", {"table": lines})
    return 0


def _two_scores_row(name: str, first: np.ndarray, second: np.ndarray, truth: np.ndarray) -> str:
    """A table row: set, N, τ of each score against the truth (bootstrap interval), τ between them."""
    taus = [f"{kendall_tau(s, truth):+.2f} {_ci(bootstrap(kendall_tau, s, truth))}" for s in (first, second)]
    return f"| {name} | {len(truth)} | {taus[0]} | {taus[1]} | {kendall_tau(first, second):+.2f} |"


def _ci(pair: tuple[float, float]) -> str:
    return f"[{pair[0]:+.2f}, {pair[1]:+.2f}]"


def table(args: argparse.Namespace) -> int:
    root = Path(args.out or f"runs/ranking-{args.size}")
    reports = [resummarize(load_json(p), root) for p in sorted((root / "results").glob("*.json"))]
    if not reports:
        raise SystemExit(f"error: no results under {root / 'results'}; run a recipe first")
    print(format_table(reports))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train, score and rank one recipe (resumable)")
    r.add_argument("--recipe", choices=sorted(RECIPES), default="block-sd")
    r.add_argument("--size", choices=sorted(SIZES), default="cpu")
    r.add_argument("--data", default="data/cifar10-jpg", help="the cifar10-jpg folder or the .tar.gz")
    r.add_argument("--out", default=None, help="results folder (default runs/ranking-SIZE)")
    r.add_argument("--jobs", type=int, default=2, help="stand-alone trainings at a time (one thread each)")
    r.add_argument("--threads", type=int, default=2, help="threads of the super-network training")
    r.add_argument("--no-scratch", action="store_true", help="skip the from-scratch column")
    truth = r.add_mutually_exclusive_group()
    truth.add_argument("--truth-of", choices=sorted(RECIPES), help="rank against this recipe's fine-tuned networks "
                   "(already trained) instead of fine-tuning from this recipe's super-network")  # fmt: skip
    r.add_argument("--sets", nargs="+", choices=("wide", "narrow"), default=["wide", "narrow"],
                   help="rank these architecture sets only (each costs its stand-alone trainings)")  # fmt: skip
    truth.add_argument("--truth-from", metavar="REPORT", help="rank against the fine-tuned accuracies stored in an earlier "
                   "report (results/RECIPE.json) of the same space; its spaces/ folder is reused")  # fmt: skip
    t = sub.add_parser("table", help="the ranking table of every recipe run so far")
    t.add_argument("--size", choices=sorted(SIZES), default="cpu")
    t.add_argument("--out", default=None)
    n = sub.add_parser("score-noise", help="rank a recipe's architectures by shared-weight scores on the test images too")
    n.add_argument("--recipe", choices=sorted(RECIPES), default="pre-spread-prog")
    n.add_argument("--size", choices=sorted(SIZES), default="cpu")
    n.add_argument("--out", default=None)
    n.add_argument("--threads", type=int, default=1)
    lo = sub.add_parser("score-loss", help="rank a recipe's architectures by held-out cross-entropy as well as top-1")
    lo.add_argument("--recipe", choices=sorted(RECIPES), default="pre-spread-prog")
    lo.add_argument("--size", choices=sorted(SIZES), default="cpu")
    lo.add_argument("--out", default=None)
    lo.add_argument("--supernet", default=None, help="the super-network file (default OUT/supernets/RECIPE/supernet.pt)")
    lo.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    retain_freed_memory()  # as the netadapt command does (netadapt.allocator)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    return {"run": run, "table": table, "score-noise": score_noise, "score-loss": score_loss}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
