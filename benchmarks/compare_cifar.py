"""Does the discovered network beat what users would otherwise do? (issue 15)

The flow users have: a trained network.  From it this benchmark

1. builds and trains the NetAdaptV2 super-network (``--recipe`` of ``bench_ranking.py``, started
   from the trained network) and searches it to each target (MACs: 50%, 30%; latency with a
   lookup table) with ``netadapt search``;
2. builds the alternatives at the *same* resource: the uniformly scaled network
   (``netadapt.search.baseline.uniform_matching``, within ±2%), and Torch-Pruning's structured
   pruning of the trained network (magnitude and Taylor importance, iterative, to within ±2%);
3. fine-tunes every network with the same loop, data, schedule and number of epochs, for
   ``--seeds`` seeds: the discovered network from the super-network's weights, the uniform network
   and the pruned networks from the trained network's weights (what a practitioner would do), and
   the uniform network from the super-network's weights too (the same start as the discovered one);
4. prints top-1 (mean ± std over seeds) per network and the paired difference discovered − each
   alternative with a 95% t-interval over seeds.

Every result is a file written atomically; rerunning skips what exists.

    python benchmarks/compare_cifar.py run --size cpu --data data/cifar10-jpg --target 0.5
    python benchmarks/compare_cifar.py run --size cpu --data data/cifar10-jpg --target 0.3
    python benchmarks/compare_cifar.py table --size cpu
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netadapt.arch.space import Architecture
from netadapt.config import config_from_dict
from netadapt.io import load_json, save_json

log = logging.getLogger("compare_cifar")

HERE = Path(__file__).resolve().parent


def _ranking_module():
    spec = importlib.util.spec_from_file_location("bench_ranking", HERE / "bench_ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ranking = _ranking_module()

SIZES: dict[str, dict[str, Any]] = {
    "cpu": {"ranking": "cpu", "finetune_epochs": 3, "samples": 20, "layers": 6, "initial_reduction": 0.03,
            "eval_batch": 500, "prune_steps": 5},
    "gpu": {"ranking": "gpu", "finetune_epochs": 30, "samples": 100, "layers": 10, "initial_reduction": 0.015,
            "eval_batch": 1000, "prune_steps": 10},
    "smoke": {"ranking": "smoke", "finetune_epochs": 1, "samples": 3, "layers": 4, "initial_reduction": 0.2,
              "eval_batch": 30, "prune_steps": 2},
}  # fmt: skip
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


# -- the networks ----------------------------------------------------------------------------------
def supernet_and_pretrained(size: dict, data: Path, recipe: str, root: Path, threads: int) -> tuple[Path, Path]:
    """(super-network file, trained initial network file), trained once and kept."""
    if not ranking.RECIPES[recipe].get("pretrain"):
        raise SystemExit(f"error: recipe {recipe!r} does not start from a trained network; choose a pre-* recipe")
    supernet = ranking.train_recipe_supernet(ranking.SIZES[size["ranking"]], data, recipe, root, threads)
    return supernet, root / "supernets" / "_pretrained" / "supernet.pt"


def discovered(supernet: Path, target: float, size: dict, root: Path) -> Architecture:
    """The searched architecture at ``target`` × the initial network's MACs (``netadapt search``)."""
    from netadapt.search.config import SearchConfig
    from netadapt.search.evaluate import EvalConfig
    from netadapt.search.run import SearchRunConfig, run_search

    run_dir = root / f"search-{target:g}"
    if not (run_dir / "final_arch.json").exists():
        rsize = ranking.SIZES[size["ranking"]]
        run_search(
            SearchRunConfig(
                supernet=str(supernet), metric="macs", run_dir=str(run_dir), batch_size=size["eval_batch"],
                search=SearchConfig(samples=size["samples"], layers=size["layers"], initial_reduction=size["initial_reduction"],
                                    decay=0.98, target=target),
                eval=EvalConfig(calibration_images=rsize["calibration"]),
            )
        )  # fmt: skip
    return Architecture.from_dict(load_json(run_dir / "final_arch.json"))


def macs_of_module(module: nn.Module, input_size: int) -> int:
    """Multiply-accumulates of convolutions and linear layers (``torch.utils.flop_counter`` / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    module = module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 3, input_size, input_size))
    return counter.get_total_flops() // 2


def to_plain(compact: nn.Module) -> nn.Module:
    """The full compact network as standard modules (Conv2d, BatchNorm2d, activations, a residual
    wrapper), so that Torch-Pruning's dependency graph sees only operations it knows."""
    from netadapt.model.blocks import ClassifierHead, ConvBlock, InvertedResidual, Sequential
    from netadapt.model.layers import ElasticConv

    def layer(conv: ElasticConv) -> nn.Module:
        if conv.out_channels != conv.filters:
            raise SystemExit(f"error: layer {conv.name} passes channels through; not a plain convolution")
        return nn.Sequential(*[m for m in (conv.conv, conv.bn, conv.act) if m is not None])

    parts: list[nn.Module] = []
    for block in compact.blocks:
        if isinstance(block, ConvBlock):
            parts.append(layer(block.conv))
        elif isinstance(block, Sequential):
            parts += [layer(c) for c in block.layers]
        elif isinstance(block, InvertedResidual):
            body = [layer(c) for c in (block.expand, block.depthwise) if c is not None]
            body += [block.se] if block.se is not None else []
            body.append(layer(block.project))
            parts.append(_Residual(nn.Sequential(*body)) if block.residual else nn.Sequential(*body))
        elif isinstance(block, ClassifierHead):
            parts.append(nn.AdaptiveAvgPool2d(1))
            if block.hidden is not None:
                parts.append(layer(block.hidden))
            parts += [nn.Flatten(), block.dropout, block.classifier]
        else:
            raise SystemExit(f"error: no plain form of block {type(block).__name__}")
    return nn.Sequential(*parts)


class _Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def torch_pruned(pretrained: Path, importance: str, ratio: float, batches: list, steps: int) -> nn.Module:
    """The trained initial network pruned by Torch-Pruning at ``ratio`` of every layer's channels,
    iteratively in ``steps`` rounds (as Torch-Pruning's documentation recommends).

    ``importance``: ``magnitude`` (L2 norm of each channel group's weights) or ``taylor``
    (first-order Taylor: weight × gradient of the training loss on fixed, seeded batches).
    Deterministic, so a worker process rebuilds the same network from (importance, ratio).
    """
    import torch_pruning as tp

    from netadapt.model.checkpoint import load_supernet

    net, _ = load_supernet(pretrained)
    model = to_plain(net.extract(net.space.full())).train()
    example = torch.zeros(1, 3, net.input_size, net.input_size)
    imp = tp.importance.GroupMagnitudeImportance(p=2) if importance == "magnitude" else tp.importance.GroupTaylorImportance()
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)]
    pruner = tp.pruner.MetaPruner(
        model, example, importance=imp, iterative_steps=steps, pruning_ratio=ratio, ignored_layers=classifier
    )
    for _ in range(steps):
        if importance == "taylor":
            model.zero_grad()
            for x, y in batches:
                F.cross_entropy(model(x), y).backward()
        pruner.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def pruning_ratio(
    pretrained: Path, importance: str, budget: int, batches: list, steps: int, input_size: int
) -> tuple[float, int]:
    """(ratio, MACs): the channel ratio at which Torch-Pruning's network lands within ±1-2% of
    ``budget`` MACs (bisection)."""
    low, high = 0.0, 0.95
    best = (0.0, 0, math.inf)
    for _ in range(16):
        ratio = (low + high) / 2
        model = torch_pruned(pretrained, importance, ratio, batches, steps)
        macs = macs_of_module(model, input_size)
        err = macs / budget - 1
        if abs(err) < abs(best[2]):
            best = (ratio, macs, err)
        if abs(err) <= 0.01:
            break
        low, high = (ratio, high) if macs > budget else (low, ratio)
    if abs(best[2]) > 0.02:
        raise SystemExit(f"error: Torch-Pruning ({importance}) did not reach the budget within 2% ({100 * best[2]:+.1f}%)")
    return best[0], best[1]


def _calibration_batches(root: Path, count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` fixed batches of 64 training images (never held-out ones): Taylor importance."""
    from netadapt.data import build_search_loaders
    from netadapt.search.evaluate import take_images

    _, calibration = build_search_loaders(root / "supernets" / "_pretrained", batch_size=64, calibration_images=64 * count)
    return take_images(calibration, 64 * count)


# -- fine-tuning: one loop for every network -------------------------------------------------------
def finetune(module: nn.Module, size: dict, data: Path, seed: int, epochs: int, threads: int = 1) -> float:
    """Fine-tune ``module`` on the training images and return its validation top-1.

    The same data (the run's held-out images excluded), augmentation, SGD with Nesterov momentum,
    cosine schedule, label smoothing and number of epochs for every network, whatever made it.
    """
    from netadapt.data import DataConfig, build_datasets, make_eval_loader, make_train_loader
    from netadapt.data.batches import TrainBatchSampler
    from netadapt.evaluate import evaluate
    from netadapt.train.config import OptimConfig, ScheduleConfig
    from netadapt.train.optim import build_optimizer, lr_factor, scaled_lr, set_lr

    torch.set_num_threads(threads)
    rsize = ranking.SIZES[size["ranking"]]
    config = config_from_dict(DataConfig, ranking.data_config(rsize, data), prefix="data.")
    sets = build_datasets(config)
    batches = TrainBatchSampler(len(sets.train), config.batch_size, seed=seed)
    loader = make_train_loader(sets.train, batches, config)
    optim = OptimConfig(name="sgd", lr=0.2, lr_batch=1024, weight_decay=4e-5)
    schedule = ScheduleConfig(name="cosine", warmup_epochs=0.0)
    optimizer = build_optimizer(module, optim, scaled_lr(optim, config.batch_size))
    base = scaled_lr(optim, config.batch_size)
    torch.manual_seed(seed)
    module.train()
    step = 0
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        for batch in loader:
            set_lr(optimizer, base * lr_factor(schedule, step, batches.steps_per_epoch, epochs))
            loss = F.cross_entropy(module(batch.images), batch.labels, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return evaluate(module, make_eval_loader(sets.val, config, batch_size=500))["top1"]


def build_network(spec: dict) -> nn.Module:
    """A network to fine-tune from its description: a netadapt architecture extracted from a
    super-network file, or Torch-Pruning's network rebuilt from (importance, ratio)."""
    from netadapt.model.checkpoint import load_supernet

    if spec["kind"] == "netadapt":
        net, _ = load_supernet(spec["weights"])
        return net.extract(net.space.validate(Architecture.from_dict(spec["arch"])))
    batches = _calibration_batches(Path(spec["root"]))
    return torch_pruned(Path(spec["weights"]), spec["importance"], spec["ratio"], batches, spec["steps"])


def _finetune_job(args: tuple) -> tuple[str, float | None, str | None]:
    path, spec, size, data, seed = args
    try:
        out = Path(path)
        if out.exists():
            return path, load_json(out)["top1"], None
        torch.set_num_threads(1)
        started = time.perf_counter()
        top1 = finetune(build_network(spec), size, Path(data), seed, size["finetune_epochs"])
        save_json(out, {"top1": top1, "seconds": time.perf_counter() - started})
        return path, top1, None
    except Exception as exc:  # reported by the parent
        return path, None, f"{type(exc).__name__}: {exc}"


def run(args: argparse.Namespace) -> int:
    size = SIZES[args.size]
    root = Path(args.out or f"runs/compare-{args.size}")
    rsize = ranking.SIZES[size["ranking"]]
    data = ranking._extract_data(Path(args.data), root)
    supernet_file, pretrained_file = supernet_and_pretrained(size, data, args.recipe, root, args.threads)
    from netadapt.model.checkpoint import load_supernet
    from netadapt.resources.counting import count_macs
    from netadapt.search.baseline import uniform_matching

    supernet, _ = load_supernet(supernet_file)
    arch = discovered(supernet_file, args.target, size, root)
    budget = count_macs(supernet, arch)
    uniform = uniform_matching(supernet.space, lambda a: float(count_macs(supernet, a)), float(budget)).arch
    folder = root / f"target-{args.target:g}"
    specs: dict[str, dict] = {
        "discovered (super-network weights)": {"kind": "netadapt", "weights": str(supernet_file), "arch": arch.to_dict()},
        "uniform (trained weights)": {"kind": "netadapt", "weights": str(pretrained_file), "arch": uniform.to_dict()},
        "uniform (super-network weights)": {"kind": "netadapt", "weights": str(supernet_file), "arch": uniform.to_dict()},
    }
    if not args.no_pruning:
        batches = _calibration_batches(root)
        for importance in ("magnitude", "taylor"):
            found = folder / f"pruning-{importance}.json"
            if not found.exists():
                ratio, macs = pruning_ratio(
                    pretrained_file, importance, budget, batches, size["prune_steps"], supernet.input_size
                )
                save_json(found, {"ratio": ratio, "macs": macs})
            specs[f"Torch-Pruning {importance} (trained weights)"] = {
                "kind": "torch-pruning", "weights": str(pretrained_file), "importance": importance,
                "ratio": load_json(found)["ratio"], "steps": size["prune_steps"], "root": str(root),
            }  # fmt: skip
    rows, jobs = {}, []
    for name, spec in specs.items():
        module = build_network(spec)
        rows[name] = {"macs": macs_of_module(module, supernet.input_size), "params": sum(p.numel() for p in module.parameters())}
        slug = name.split(" (")[0].replace(" ", "-").lower() + ("-super" if "super-network" in name else "")
        for seed in range(args.seeds):
            jobs.append((name, (str(folder / "results" / f"{slug}-s{seed}.json"), spec, size, str(data), seed)))
    (folder / "results").mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) if args.jobs > 1 else _Serial() as pool:
        for (name, _), (path, top1, error) in zip(jobs, pool.map(_finetune_job, [j[1] for j in jobs]), strict=True):
            if error is not None:
                raise SystemExit(f"error: fine-tuning {path} failed: {error}")
            rows[name].setdefault("top1", []).append(top1)
            log.info("%s: %s -> %.4f", name, Path(path).name, top1)
    report = {"target": args.target, "recipe": args.recipe, "size": args.size, "budget_macs": budget,
              "full_macs": count_macs(supernet, supernet.space.full()), "epochs": size["finetune_epochs"], "rows": rows,
              "architecture": arch.to_dict(supernet.space), "uniform": uniform.to_dict(supernet.space),
              "data": str(data), "subset": rsize["subset"]}  # fmt: skip
    save_json(root / "results" / f"target-{args.target:g}.json", report)
    print(format_table([report]))
    return 0


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return map(fn, items)


def paired(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """Mean paired difference and its 95% t-interval (seeds pair the two networks)."""
    d = np.asarray(a) - np.asarray(b)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, math.nan, math.nan
    half = T_975.get(len(d) - 1, 1.96) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return mean, mean - half, mean + half


def format_table(reports: list[dict]) -> str:
    lines = []
    for report in reports:
        rows = report["rows"]
        ours = rows["discovered (super-network weights)"]["top1"]
        lines += [
            f"Target {100 * report['target']:g}% of the initial network's MACs ({report['budget_macs'] / 1e6:.2f} M of "
            f"{report['full_macs'] / 1e6:.2f} M), {report['epochs']} fine-tuning epochs, {len(ours)} seeds",
            "",
            "| network | MACs (M) | params | top-1 % (mean ± std) | discovered − this, points [95% CI] |",
            "|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            top1 = np.asarray(row["top1"]) * 100
            diff = (
                "–"
                if name.startswith("discovered")
                else "{:+.2f} [{:+.2f}, {:+.2f}]".format(*(100 * v for v in paired(ours, row["top1"])))
            )
            std = f"{top1.std(ddof=1):.2f}" if len(top1) > 1 else "–"
            lines.append(f"| {name} | {row['macs'] / 1e6:.2f} | {row['params']:,} | {top1.mean():.2f} ± {std} | {diff} |")
        lines.append("")
    return "\n".join(lines)


def table(args: argparse.Namespace) -> int:
    root = Path(args.out or f"runs/compare-{args.size}")
    reports = [load_json(p) for p in sorted((root / "results").glob("target-*.json"))]
    if not reports:
        raise SystemExit(f"error: no results under {root / 'results'}")
    print(format_table(reports))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="search one target and fine-tune every network at its MACs")
    r.add_argument("--target", type=float, default=0.5, help="fraction of the initial network's MACs")
    r.add_argument("--recipe", choices=sorted(ranking.RECIPES), default="pre-spread-prog")
    r.add_argument("--size", choices=sorted(SIZES), default="cpu")
    r.add_argument("--data", default="data/cifar10-jpg")
    r.add_argument("--out", default=None, help="results folder (default runs/compare-SIZE)")
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--no-pruning", action="store_true", help="skip Torch-Pruning")
    t = sub.add_parser("table")
    t.add_argument("--size", choices=sorted(SIZES), default="cpu")
    t.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    return run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    sys.exit(main())
