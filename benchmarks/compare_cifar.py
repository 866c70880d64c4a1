"""Does the discovered network beat what users would otherwise do? (issue 15)

The flow users have: a trained network.  From it this benchmark

1. builds and trains the NetAdaptV2 super-network (``--recipe`` of ``bench_ranking.py``, started
   from the trained network) and searches it to each target with ``netadapt search``: a fraction
   of the initial network's MACs (``--metric macs``, the default: 50%, 30%) or of its latency
   predicted by a lookup table (``--metric latency``, below);
2. builds the alternatives at the *same* resource: the uniformly scaled network
   (``netadapt.search.baseline.uniform_matching``, within ±2%), and Torch-Pruning's structured
   pruning of the trained network (magnitude and Taylor importance, iterative, to within ±2%);
3. fine-tunes every network with the same loop, data, schedule and number of epochs, for
   ``--seeds`` seeds: the discovered network from the super-network's weights, the uniform network
   and the pruned networks from the trained network's weights (what a practitioner would do), and
   the uniform network from the super-network's weights too (the same start as the discovered one);
4. prints top-1 (mean ± std over seeds) per network and the paired difference discovered − each
   alternative with a 95% t-interval over seeds.

A latency target (``--metric latency``) first builds the latency lookup table of the
super-network's search space with ``netadapt lut build``'s builder (``lut-BACKEND-1t.json`` in the
results folder, once; an interrupted build resumes): ONNX Runtime on one CPU thread, the backend
docs/resources.md measured and recommends (the smoke size uses PyTorch eager, only to stay
quick).  The search constrains ``latency:TABLE.json``; the uniform network is matched by the same
predicted latency (±2%); Torch-Pruning's networks are matched by *measured* latency (±2%, each
candidate timed together with the discovered network on the table's backend), since their widths
are not on the search space's grid that the table holds; a pruned network that misses ±2% is left
out and the table says so.  Every network's predicted and measured latency (all timed in the same
interleaved rounds) stands beside its MACs.  Results go to ``target-latency-T/`` and
``results/target-latency-T.json``, beside the MAC targets' ``target-T/``.

``v1`` runs NetAdaptV1 on the same trained network to a MAC target (issue 15, item 5): single
coordinate descent (one sample per layer per iteration), filters only, every sample fine-tuned
``--steps`` batches of 64 from the trained network's weights (BatchNorm then recomputed, as
NetAdaptV2's samples) before it is scored on the same held-out images; its network is fine-tuned
like the others from the trained network's weights.  It prints accuracy and total search time
against NetAdaptV2's run at the same target (super-network training + sample evaluation, from
that search's ``timing.json``), and projects NetAdaptV1's time with the paper's per-sample
budget (four epochs of the training subset, §4.1.4) from per-sample times measured in the same
process -- projected, not run, and labelled so.

``scratch`` trains a finished target's discovered and uniform architectures from random weights
(the same from-scratch schedule and epochs each, ``--seeds`` seeds paired by seed): the searched
shape alone, without the super-network's weights (issue 15's second table).  It needs only the
target's report, not the run's weights.

Every result is a file written atomically; rerunning skips what exists.

    python benchmarks/compare_cifar.py run --size cpu --data data/cifar10-jpg --target 0.5
    python benchmarks/compare_cifar.py run --size cpu --data data/cifar10-jpg --target 0.3
    python benchmarks/compare_cifar.py run --size cpu --data data/cifar10-jpg --target 0.5 --metric latency
    python benchmarks/compare_cifar.py v1 --size cpu-v3 --data data/cifar10-jpg --target 0.5 --steps 10
    python benchmarks/compare_cifar.py scratch --size cpu-v3 --data data/cifar10-jpg --target 0.5 --epochs 10
    python benchmarks/compare_cifar.py table --size cpu
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from netadapt.allocator import retain_freed_memory
from netadapt.arch.space import Architecture
from netadapt.config import config_from_dict
from netadapt.errors import NetAdaptError
from netadapt.io import load_json, save_json
from netadapt.model.supernet import SuperNet

log = logging.getLogger("compare_cifar")

HERE = Path(__file__).resolve().parent


def _ranking_module():
    """bench_ranking.py, imported by name so that its functions reach spawned workers (its
    stand-alone trainings' pool pickles them by module name)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module("bench_ranking")


ranking = _ranking_module()

#: How a latency target is measured (``--metric latency``): the lookup table's backend and build
#: settings (``netadapt lut build``'s options) and how whole networks are timed (``network_time``
#: seconds per network and pass, split into ``rounds`` windows interleaved across the networks,
#: minimum kept, as ``lut check`` does).  ONNX Runtime on one CPU thread is what
#: docs/resources.md measured and recommends (I/O binding, 2 passes, minimum of ~1 ms blocks:
#: 100% of mobilenet_v2_cifar sub-networks within ±10%).  The smoke size uses PyTorch eager
#: instead only to stay quick: exporting its 1,126 operations to ONNX alone takes ~70 s here.
LUT_ONNX = {"backend": "onnxruntime", "threads": 1, "warmup": 5, "min_time": 0.05, "passes": 2, "calibrate": 20,
            "network_time": 1.2, "rounds": 12, "network_passes": 2}  # fmt: skip
LUT_SMOKE = {"backend": "torch", "threads": 1, "warmup": 2, "min_time": 0.002, "passes": 1, "calibrate": 3,
             "network_time": 0.04, "rounds": 4, "network_passes": 1}  # fmt: skip
SIZES: dict[str, dict[str, Any]] = {
    "cpu": {"ranking": "cpu", "finetune_epochs": 3, "samples": 20, "layers": 6, "initial_reduction": 0.03,
            "eval_batch": 500, "prune_steps": 5, "lut": LUT_ONNX},
    # The paper's kind of space (MobileNetV3-Small x0.75, residual blocks removed whole,
    # superkernels): bench_ranking's size cpu-v3, everything else as cpu.
    "cpu-v3": {"ranking": "cpu-v3", "finetune_epochs": 3, "samples": 20, "layers": 6, "initial_reduction": 0.03,
               "eval_batch": 500, "prune_steps": 5, "lut": LUT_ONNX},
    "gpu": {"ranking": "gpu", "finetune_epochs": 30, "samples": 100, "layers": 10, "initial_reduction": 0.015,
            "eval_batch": 1000, "prune_steps": 10, "lut": LUT_ONNX},
    "smoke": {"ranking": "smoke", "finetune_epochs": 1, "samples": 3, "layers": 4, "initial_reduction": 0.2,
              "eval_batch": 30, "prune_steps": 2, "lut": LUT_SMOKE},
}  # fmt: skip
LATENCY_ROUND_TO = 8  # Torch-Pruning's channel multiple at a latency goal (pruning_specs)
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


# -- the networks ----------------------------------------------------------------------------------
def supernet_and_pretrained(
    size: dict, data: Path, recipe: str, root: Path, threads: int, supernet: bool = True
) -> tuple[Path | None, Path]:
    """(super-network file, trained initial network file), trained once and kept; ``supernet=False``:
    the trained network alone (NetAdaptV1 starts from it), the super-network file ``None``."""
    rsize = ranking.SIZES[size["ranking"]]
    pretrained = ranking.train_pretrained(rsize, data, recipe, root)  # checks that the recipe starts from it
    if not supernet:
        return None, pretrained
    return ranking.train_recipe_supernet(rsize, data, recipe, root, threads), pretrained


def discovered(
    supernet: Path, target: float, size: dict, root: Path, metric: str = "macs", label: str = "", remove_blocks: str = "narrowest"
) -> Architecture:
    """The searched architecture at ``target`` × the initial network's resource (``netadapt search``
    with ``metric``; ``remove_blocks``: the search's option), kept in ``search-LABEL`` (LABEL: the
    target alone for MACs)."""
    from netadapt.search.config import SearchConfig
    from netadapt.search.evaluate import EvalConfig
    from netadapt.search.run import SearchRunConfig, run_search

    run_dir = root / f"search-{label or f'{target:g}'}"
    if not (run_dir / "final_arch.json").exists():
        rsize = ranking.SIZES[size["ranking"]]
        run_search(
            SearchRunConfig(
                supernet=str(supernet), metric=metric, run_dir=str(run_dir), batch_size=size["eval_batch"],
                search=SearchConfig(samples=size["samples"], layers=size["layers"], initial_reduction=size["initial_reduction"],
                                    decay=0.98, target=target, remove_blocks=remove_blocks),
                eval=EvalConfig(calibration_images=rsize["calibration"]),
            )
        )  # fmt: skip
    return Architecture.from_dict(load_json(run_dir / "final_arch.json"))


class Goal(NamedTuple):  # a NamedTuple: a dataclass needs its module in sys.modules, which a file loaded by path is not
    """What every network is matched on: the discovered architecture, its resource (the budget),
    the initial network's, and the uniform network at the budget -- or, where no uniform network
    lands within 2% of it, the two just below and above (``neighbours``), trained both and
    interpolated (issue 15: "train the two neighbours and interpolate, and say so")."""

    metric: str  # "macs" or "latency" (predicted by the lookup table ``table``)
    label: str  # names the search, the results folder and file: "0.5", "latency-0.5"
    arch: Architecture
    uniform: Architecture | None
    resource: Callable[[Architecture], float]
    budget: float
    full: float
    table: Path | None = None
    neighbours: tuple[Architecture, Architecture] | None = None  # (below, above) when ``uniform`` is None


def uniform_at(space, resource: Callable[[Architecture], float], budget: float) -> dict:
    """``{"uniform": arch}`` matched within 2% of ``budget``, else ``{"uniform": None,
    "neighbours": (below, above)}``: the closest uniform networks on either side."""
    from netadapt.search.baseline import uniform_matching, uniform_neighbours

    try:
        return {"uniform": uniform_matching(space, resource, budget).arch}
    except NetAdaptError:  # e.g. latency that rises for some channel counts (docs/resources.md)
        try:
            below, above = uniform_neighbours(space, resource, budget)
        except NetAdaptError as exc:
            raise SystemExit(f"error: {exc}: uniform scaling cannot reach the discovered network's resource") from None
        log.info("no uniform network within 2%% of %g: training the neighbours at %g and %g and interpolating",
                 budget, below.resource, above.resource)  # fmt: skip
        return {"uniform": None, "neighbours": (below.arch, above.arch)}


def uniform_specs(goal: Goal, pretrained: Path, supernet: Path, other_space: bool = False) -> dict[str, dict]:
    """The uniform networks to fine-tune: the matched one from each weights, or both neighbours.
    ``other_space``: the trained network's file has other search-space options than the
    super-network's (a recipe's ``model.options``); its weights are then put on the super-network's
    space (:func:`trained_over_space`)."""
    if goal.uniform is not None:
        pairs = [("uniform", goal.uniform)]
    else:
        pairs = list(zip(("uniform below", "uniform above"), goal.neighbours, strict=True))
    specs = {}
    for weights, path in (("trained", pretrained), ("super-network", supernet)):
        for name, arch in pairs:
            spec = {"kind": "netadapt", "weights": str(path), "arch": arch.to_dict()}
            if other_space and weights == "trained":
                spec["space"] = str(supernet)
            specs[f"{name} ({weights} weights)"] = spec
    return specs


def between(lo: dict, hi: dict, w: float) -> dict:
    """The row ``w`` of the way from row ``lo`` to row ``hi``: MACs, parameters (rounded), measured
    latency where the rows have it, and each seed's top-1, all linear."""
    row = {k: lo[k] + w * (hi[k] - lo[k]) for k in ("macs", "params", "latency_measured_ms") if k in lo}
    row["params"] = round(row["params"])
    row["top1"] = [a + w * (b - a) for a, b in zip(lo["top1"], hi["top1"], strict=True)]
    return row


def interpolate_uniform(rows: dict[str, dict], goal: Goal) -> list[str]:
    """Add ``uniform, interpolated (… weights)`` rows: each seed's top-1 (and the MACs, parameters
    and measured latency) linear in the resource between the two neighbours, at the budget; notes."""
    below, above = (goal.resource(a) for a in goal.neighbours)
    w = (goal.budget - below) / (above - below)
    for weights in ("trained", "super-network"):
        lo, hi = rows[f"uniform below ({weights} weights)"], rows[f"uniform above ({weights} weights)"]
        row = between(lo, hi, w)
        if "latency_predicted_ms" in lo:
            row["latency_predicted_ms"] = goal.budget
        row["interpolated"] = {"weight_of_above": w, "below": below, "above": above}
        rows[f"uniform, interpolated ({weights} weights)"] = row
    unit = "ms predicted" if goal.metric == "latency" else "MACs"
    return [f"no uniformly scaled network lies within 2% of the budget; the uniform rows are interpolated linearly "
            f"in {unit} between the uniform networks just below ({below:.4g}) and just above ({above:.4g}) it, "
            f"each trained for every seed"]  # fmt: skip


def mac_goal(
    supernet: SuperNet, supernet_file: Path, target: float, size: dict, root: Path, remove_blocks: str = "narrowest"
) -> Goal:
    """The MAC target: search by MACs, the uniform network matched by MACs (±2%).  A search with
    ``remove_blocks="any"`` is labelled ``T-remove-any``."""
    from netadapt.resources.counting import count_macs

    label = f"{target:g}" + ("-remove-any" if remove_blocks == "any" else "")
    arch = discovered(supernet_file, target, size, root, label=label, remove_blocks=remove_blocks)
    budget = count_macs(supernet, arch)
    matched = uniform_at(supernet.space, lambda a: float(count_macs(supernet, a)), float(budget))
    full = count_macs(supernet, supernet.space.full())
    return Goal("macs", label, arch, resource=lambda a: count_macs(supernet, a), budget=budget, full=full, **matched)


def latency_table(supernet: SuperNet, lut: dict, root: Path) -> Path:
    """The latency lookup table of the super-network's search space, built once into ``root`` with
    ``netadapt lut build``'s builder; an interrupted build resumes, a finished one is reused."""
    from netadapt.resources.lut_build import build_table
    from netadapt.resources.timing import Measurer

    path = root / f"lut-{lut['backend']}-{lut['threads']}t.json"
    measure = Measurer(backend=lut["backend"], threads=lut["threads"], warmup=lut["warmup"], min_time=lut["min_time"])
    build_table(
        supernet, path, measure=measure, passes=lut["passes"], calibrate=lut["calibrate"], network_time=lut["network_time"],
        network_rounds=lut["rounds"], progress=False,
    )  # fmt: skip
    return path


def latency_goal(supernet: SuperNet, supernet_file: Path, target: float, size: dict, root: Path) -> Goal:
    """The latency target: search with ``latency:TABLE.json`` to ``target`` × the initial network's
    predicted latency, the uniform network matched by the same predicted latency (±2%)."""
    from netadapt.resources.lut import LatencyTableMetric

    table = latency_table(supernet, size["lut"], root)
    predict = LatencyTableMetric(table, supernet)
    label = f"latency-{target:g}"
    arch = discovered(supernet_file, target, size, root, metric=f"latency:{table}", label=label)
    budget = predict(arch)
    matched = uniform_at(supernet.space, predict, budget)
    return Goal("latency", label, arch, resource=predict, budget=budget, full=predict(supernet.space.full()), table=table,
                **matched)  # fmt: skip


def measure_latency(modules: list[nn.Module], input_size: int, lut: dict) -> list[float]:
    """Whole-network latency (ms, batch 1) of each module on the lookup table's backend, timed as
    ``lut check`` times networks: ``rounds`` short windows per network interleaved across all of
    them, in ``network_passes`` passes, the minimum kept, so that the machine's changing speed
    (docs/resources.md) reaches every network alike."""
    from netadapt.resources.timing import Measurer, make_runner

    window = Measurer(backend=lut["backend"], threads=lut["threads"], warmup=lut["warmup"],
                      min_time=lut["network_time"] / lut["rounds"])  # fmt: skip
    x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    best = [math.inf] * len(modules)
    for _ in range(lut["network_passes"]):
        runners = [make_runner(m.eval(), (x,), backend=lut["backend"], threads=lut["threads"]) for m in modules]
        for _ in range(lut["rounds"]):
            for i, runner in enumerate(runners):
                best[i] = min(best[i], window.time(runner).min)
    return best


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


def torch_pruned(
    pretrained: Path, importance: str, ratio: float, batches: list, steps: int, round_to: int | None = None
) -> nn.Module:
    """The trained initial network pruned by Torch-Pruning at ``ratio`` of every layer's channels,
    iteratively in ``steps`` rounds (as Torch-Pruning's documentation recommends); ``round_to``:
    every pruned layer keeps a multiple of that many channels (Torch-Pruning's own option).

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
        model, example, importance=imp, iterative_steps=steps, pruning_ratio=ratio, ignored_layers=classifier,
        round_to=round_to,
    )  # fmt: skip
    for _ in range(steps):
        if importance == "taylor":
            model.zero_grad()
            for x, y in batches:
                F.cross_entropy(model(x), y).backward()
        pruner.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def bisect_ratio(
    pretrained: Path,
    importance: str,
    error: Callable[[nn.Module], tuple[float, dict]],
    batches: list,
    steps: int,
    round_to: int | None = None,
) -> tuple[float, float, dict]:
    """(ratio, error, record) of the channel ratio whose pruned network is closest to the budget, by
    bisection (stopping within ±1%); ``error(model)`` is (resource / budget - 1, what to record)."""
    low, high = 0.0, 0.95
    best: tuple[float, float, dict] = (0.0, math.inf, {})
    for _ in range(16):
        ratio = (low + high) / 2
        err, record = error(torch_pruned(pretrained, importance, ratio, batches, steps, round_to))
        if abs(err) < abs(best[1]):
            best = (ratio, err, record)
        if abs(err) <= 0.01:
            break
        low, high = (ratio, high) if err > 0 else (low, ratio)
    return best


def pruning_ratio(
    pretrained: Path, importance: str, budget: int, batches: list, steps: int, input_size: int
) -> tuple[float, int]:
    """(ratio, MACs): the channel ratio at which Torch-Pruning's network lands within ±1-2% of
    ``budget`` MACs (bisection)."""

    def error(model: nn.Module) -> tuple[float, dict]:
        macs = macs_of_module(model, input_size)
        return macs / budget - 1, {"macs": macs}

    ratio, err, record = bisect_ratio(pretrained, importance, error, batches, steps)
    if abs(err) > 0.02:
        raise SystemExit(f"error: Torch-Pruning ({importance}) did not reach the budget within 2% ({100 * err:+.1f}%)")
    return ratio, record["macs"]


def latency_pruning_ratio(
    pretrained: Path,
    importance: str,
    reference: nn.Module,
    batches: list,
    steps: int,
    input_size: int,
    lut: dict,
    round_to: int | None = None,
) -> dict:
    """The channel ratio at which Torch-Pruning's network runs as fast as ``reference`` (the
    discovered network), *measured*: each bisection step times the candidate and ``reference``
    together (:func:`measure_latency`), so both see the machine in the same state.

    The table cannot predict a pruned network: every layer keeps ``(1 - ratio) × full`` channels,
    off the search space's grid of widths that the table holds.  ``matched`` is whether the
    closest candidate lies within ±2%; measurement noise can leave it outside.
    """

    def error(model: nn.Module) -> tuple[float, dict]:
        pruned, ours = measure_latency([model, reference], input_size, lut)
        return pruned / ours - 1, {"latency_ms": pruned, "reference_ms": ours}

    ratio, err, record = bisect_ratio(pretrained, importance, error, batches, steps, round_to)
    return {"ratio": ratio, "error": err, "matched": abs(err) <= 0.02, "round_to": round_to, **record}


def _calibration_batches(run_dir: Path, count: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` fixed batches of 64 training images (never held-out ones) of the training run in
    ``run_dir``: Taylor importance."""
    from netadapt.data import build_search_loaders
    from netadapt.search.evaluate import take_images

    _, calibration = build_search_loaders(run_dir, batch_size=64, calibration_images=64 * count)
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
        net = trained_over_space(spec["weights"], spec["space"]) if "space" in spec else load_supernet(spec["weights"])[0]
        return net.extract(net.space.validate(Architecture.from_dict(spec["arch"])))
    batches = _calibration_batches(Path(spec["weights"]).parent)
    return torch_pruned(Path(spec["weights"]), spec["importance"], spec["ratio"], batches, spec["steps"], spec.get("round_to"))


def trained_over_space(weights: str, space_of: str) -> SuperNet:
    """The weights of the network file ``weights`` over the search space of the super-network file
    ``space_of``: one trained network, the recipe's search-space options (``width_divisor`` ...),
    as the super-network's training started from it."""
    from netadapt.model.checkpoint import load_supernet

    net, _ = load_supernet(space_of)
    trained, _ = load_supernet(weights)
    net.load_state_dict(trained.state_dict())
    return net


def _finetune_job(args: tuple) -> tuple[str, float | None, str | None]:
    path, spec, size, data, seed = args
    # what the result is of, in any results folder (as JSON reads it back: lists, not tuples)
    network = json.loads(json.dumps({key: value for key, value in spec.items() if key != "weights"}))
    try:
        out = Path(path)
        if out.exists():
            saved = load_json(out)
            if saved.get("network", network) != network:  # files of older versions name no network
                raise NetAdaptError(f"{out} holds the result of another network than this run's; delete it to fine-tune again")
            return path, saved["top1"], None
        torch.set_num_threads(1)
        started = time.perf_counter()
        top1 = finetune(build_network(spec), size, Path(data), seed, size["finetune_epochs"])
        save_json(out, {"top1": top1, "seconds": time.perf_counter() - started, "network": network})
        return path, top1, None
    except Exception as exc:  # reported by the parent
        return path, None, f"{type(exc).__name__}: {exc}"


def _setup(args: argparse.Namespace, supernet: bool = True) -> tuple[dict, Path, dict, Path, Path | None, Path]:
    """(size, results folder, ranking size, data folder, super-network file, trained network
    file) of ``run`` and ``v1``: the data extracted and both networks trained once (``supernet=False``:
    the trained network alone, the super-network file ``None``)."""
    size = SIZES[args.size]
    root = Path(args.out or f"runs/compare-{args.size}")
    data = ranking._extract_data(Path(args.data), root)
    torch.set_num_threads(args.threads)
    supernet_file, pretrained_file = supernet_and_pretrained(size, data, args.recipe, root, args.threads, supernet)
    return size, root, ranking.SIZES[size["ranking"]], data, supernet_file, pretrained_file


def run(args: argparse.Namespace) -> int:
    size, root, rsize, data, supernet_file, pretrained_file = _setup(args)
    from netadapt.model.checkpoint import load_supernet
    from netadapt.resources.counting import count_macs

    supernet, _ = load_supernet(supernet_file)
    if args.metric == "macs":
        goal = mac_goal(supernet, supernet_file, args.target, size, root, args.remove_blocks)
    elif args.remove_blocks != "narrowest":
        raise SystemExit("error: --remove-blocks is for MAC targets here")
    else:
        goal = latency_goal(supernet, supernet_file, args.target, size, root)
    folder = root / f"target-{goal.label}"
    specs: dict[str, dict] = {
        "discovered (super-network weights)": {"kind": "netadapt", "weights": str(supernet_file), "arch": goal.arch.to_dict()},
        **uniform_specs(
            goal,
            pretrained_file,
            supernet_file,
            other_space=load_supernet(pretrained_file)[0].space.fingerprint != supernet.space.fingerprint,
        ),
    }
    if args.discovered_only:  # an ablation: only the discovered network is fine-tuned
        specs = {name: spec for name, spec in specs.items() if name.startswith("discovered")}
    notes: list[str] = []
    if not args.no_pruning and not args.discovered_only:
        specs.update(pruning_specs(goal, supernet, pretrained_file, size, folder, notes))
    rows = describe(specs, supernet, goal, size["lut"], folder)
    finetune_all(rows, specs, size, data, folder, args)
    if goal.uniform is None and not args.discovered_only:
        notes += interpolate_uniform(rows, goal)
        order = ["discovered (super-network weights)", "uniform, interpolated (trained weights)",
                 "uniform, interpolated (super-network weights)"]  # fmt: skip
        rows = {name: rows[name] for name in order + [n for n in rows if n not in order]}
    report = {
        "target": args.target,
        "recipe": args.recipe,
        "size": args.size,
        "remove_blocks": args.remove_blocks,
        "budget_macs": count_macs(supernet, goal.arch),
        "full_macs": count_macs(supernet, supernet.space.full()),
        "epochs": size["finetune_epochs"],
        "rows": rows,
        "architecture": goal.arch.to_dict(supernet.space),
        "data": str(data),
        "subset": rsize["subset"],
        "notes": notes,
    }
    if goal.uniform is not None:
        report["uniform"] = goal.uniform.to_dict(supernet.space)
    else:
        report["uniform_neighbours"] = [a.to_dict(supernet.space) for a in goal.neighbours]
    if goal.metric == "latency":
        lut = size["lut"]
        report.update(metric="latency", table=str(goal.table), backend=lut["backend"], threads=lut["threads"],
                      budget_latency_ms=goal.budget, full_latency_ms=goal.full)  # fmt: skip
    # a discovered-only report does not replace the whole comparison of the same target
    save_json(root / "results" / f"target-{goal.label}{'-discovered' if args.discovered_only else ''}.json", report)
    print(format_table([report]))
    return 0


def pruning_specs(
    goal: Goal, supernet: SuperNet, pretrained: Path, size: dict, folder: Path, notes: list[str]
) -> dict[str, dict]:
    """Torch-Pruning's networks (magnitude and Taylor importance) at the goal's resource, each
    ratio found once and kept in ``folder``.  At a latency goal a network whose measured latency
    misses the discovered network's by more than 2% is left out, and ``notes`` says so; there every
    pruned layer keeps a multiple of 8 channels (Torch-Pruning's ``round_to``), as a practitioner
    targeting a CPU backend does: ONNX Runtime runs other channel counts up to 3× slower
    (docs/resources.md), and latency then jumps with the ratio, which the bisection cannot follow."""
    batches = _calibration_batches(pretrained.parent)
    round_to = LATENCY_ROUND_TO if goal.metric == "latency" else None
    specs = {}
    for importance in ("magnitude", "taylor"):
        found = folder / f"pruning-{importance}{f'-r{round_to}' if round_to else ''}.json"
        if not found.exists():
            if goal.metric == "macs":
                ratio, macs = pruning_ratio(
                    pretrained, importance, goal.budget, batches, size["prune_steps"], supernet.input_size
                )
                save_json(found, {"ratio": ratio, "macs": macs})
            else:
                reference = supernet.extract(goal.arch)
                save_json(found, latency_pruning_ratio(pretrained, importance, reference, batches, size["prune_steps"],
                                                       supernet.input_size, size["lut"], round_to))  # fmt: skip
        result = load_json(found)
        if not result.get("matched", True):
            notes.append(
                f"Torch-Pruning {importance} left out: its closest network measured {100 * result['error']:+.1f}% "
                "from the discovered network's latency (tolerance ±2%)"
            )
            continue
        name = f"Torch-Pruning {importance}{f', multiples of {round_to}' if round_to else ''} (trained weights)"
        specs[name] = {
            "kind": "torch-pruning", "weights": str(pretrained), "importance": importance,
            "ratio": result["ratio"], "steps": size["prune_steps"], "round_to": round_to,
        }  # fmt: skip
    return specs


def describe(specs: dict[str, dict], supernet: SuperNet, goal: Goal, lut: dict, folder: Path) -> dict[str, dict]:
    """Each network's MACs and parameters; at a latency goal also its latency predicted by the table
    (None for Torch-Pruning's networks, which it cannot predict) and measured, every network in
    the same interleaved rounds (:func:`measure_latency`, kept in ``folder/latency.json``)."""
    modules = {name: build_network(spec) for name, spec in specs.items()}
    rows = {
        name: {"macs": macs_of_module(module, supernet.input_size), "params": sum(p.numel() for p in module.parameters())}
        for name, module in modules.items()
    }
    if goal.metric == "latency":
        measured = folder / "latency.json"
        if not measured.exists() or set(load_json(measured)) != set(rows):
            save_json(
                measured, dict(zip(modules, measure_latency(list(modules.values()), supernet.input_size, lut), strict=True))
            )
        times = load_json(measured)
        for name, row in rows.items():
            netadapt = specs[name]["kind"] == "netadapt"
            row["latency_predicted_ms"] = goal.resource(Architecture.from_dict(specs[name]["arch"])) if netadapt else None
            row["latency_measured_ms"] = times[name]
    return rows


def finetune_all(
    rows: dict[str, dict], specs: dict[str, dict], size: dict, data: Path, folder: Path, args: argparse.Namespace
) -> None:
    """Fine-tune every network for ``args.seeds`` seeds in ``args.jobs`` processes, adding each
    top-1 to its row; every result is a file in ``folder/results`` that a rerun reads back."""
    jobs = []
    for name, spec in specs.items():
        slug = name.split(" (")[0].replace(" ", "-").lower() + ("-super" if "super-network" in name else "")
        for seed in range(args.seeds):
            jobs.append((name, (str(folder / "results" / f"{slug}-s{seed}.json"), spec, size, str(data), seed)))
    (folder / "results").mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    # every worker keeps freed memory as the netadapt command does (this process did so in main())
    pool_args = {"max_workers": args.jobs, "mp_context": context, "initializer": retain_freed_memory}
    with ProcessPoolExecutor(**pool_args) if args.jobs > 1 else _Serial() as pool:
        for (name, _), (path, top1, error) in zip(jobs, pool.map(_finetune_job, [j[1] for j in jobs]), strict=True):
            if error is not None:
                raise SystemExit(f"error: fine-tuning {path} failed: {error}")
            rows[name].setdefault("top1", []).append(top1)
            log.info("%s: %s -> %.4f", name, Path(path).name, top1)


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


def _difference(name: str, ours: list[float], row: dict) -> str:
    if name.startswith("discovered"):
        return "–"
    return "{:+.2f} [{:+.2f}, {:+.2f}]".format(*(100 * v for v in paired(ours, row["top1"])))


def _top1(row: dict) -> str:
    top1 = np.asarray(row["top1"]) * 100
    std = f"{top1.std(ddof=1):.2f}" if len(top1) > 1 else "–"
    return f"{top1.mean():.2f} ± {std}"


def format_table(reports: list[dict]) -> str:
    lines = []
    for report in reports:
        if report.get("metric") == "latency":
            lines += format_latency_table(report)
            continue
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
            lines.append(
                f"| {name} | {row['macs'] / 1e6:.2f} | {row['params']:,} | {_top1(row)} | {_difference(name, ours, row)} |"
            )
        lines += ["", *(f"Note: {note}." for note in report.get("notes", []))]
    return "\n".join(lines)


def format_latency_table(report: dict) -> list[str]:
    """The lines of one latency target's table: predicted and measured latency beside MACs."""
    rows = report["rows"]
    ours = rows["discovered (super-network weights)"]["top1"]
    lines = [
        f"Target {100 * report['target']:g}% of the initial network's latency predicted by the lookup table "
        f"({report['budget_latency_ms']:.3f} ms of {report['full_latency_ms']:.3f} ms; {report['backend']}, "
        f"{report['threads']} thread(s)), {report['epochs']} fine-tuning epochs, {len(ours)} seeds",
        "",
        "| network | MACs (M) | latency predicted (ms) | latency measured (ms) | params | top-1 % (mean ± std) "
        "| discovered − this, points [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        predicted = "–" if row["latency_predicted_ms"] is None else f"{row['latency_predicted_ms']:.3f}"
        lines.append(
            f"| {name} | {row['macs'] / 1e6:.2f} | {predicted} | {row['latency_measured_ms']:.3f} | {row['params']:,} "
            f"| {_top1(row)} | {_difference(name, ours, row)} |"
        )
    lines += [
        "",
        "Matched on the predicted latency (±2%): the uniform networks.  Matched on the measured latency (±2%, "
        "timed together with the discovered network): Torch-Pruning's, whose widths the table does not hold "
        "(no prediction).  Measured: every network in the same interleaved rounds, minimum, batch 1.",
        *(f"Note: {note}." for note in report.get("notes", [])),
        "",
    ]
    return lines


def format_ablation_table(report: dict, ablations: list[dict]) -> list[str]:
    """The discovered network of ``report`` against those of ablation runs (``run --discovered-only``
    with another super-network recipe) at the same target: paired by seed."""
    ours = report["rows"]["discovered (super-network weights)"]

    def line(source: dict, diff: str) -> str:
        row = source["rows"]["discovered (super-network weights)"]
        zero = sum(1 for layer in source["architecture"]["layers"] if layer["filters"] == 0)
        return (f"| `{source['recipe']}` | {row['macs'] / 1e6:.2f} | {row['params']:,} | {zero} | {_top1(row)} "
                f"| {diff} |")  # fmt: skip

    lines = [
        f"Ablations at {100 * report['target']:g}% of the MACs: the discovered network of each super-network recipe "
        f"(same trained network, search settings and fine-tuning), {len(ours['top1'])} seeds",
        "",
        f"| super-network recipe | MACs (M) | params | layers with 0 filters | top-1 % (mean ± std) "
        f"| `{report['recipe']}` − this, points [95% CI] |",
        "|---|---|---|---|---|---|",
        line(report, "–"),
    ]
    for ablation in ablations:
        found = ablation["rows"]["discovered (super-network weights)"]["top1"]
        lines.append(line(ablation, "{:+.2f} [{:+.2f}, {:+.2f}]".format(*(100 * v for v in paired(ours["top1"], found)))))
    return [*lines, ""]


def table(args: argparse.Namespace) -> int:
    """Every table of a results folder: each target's comparison, NetAdaptV1's runs, and (with
    ``--ablation``) the discovered networks of other results folders' recipes at the same targets."""
    root = Path(args.out or f"runs/compare-{args.size}")
    reports = {path: load_json(path) for path in sorted((root / "results").glob("target-*.json"))}
    if not reports:
        raise SystemExit(f"error: no results under {root / 'results'}")
    print(format_table(list(reports.values())))
    for path in sorted((root / "results").glob("v1-*.json")):
        print("\n".join(["", *format_v1_table(load_json(path))]))
    for path in sorted((root / "results").glob("scratch-*.json")):
        print("\n".join(["", *format_scratch_table(load_json(path))]))
    for path, report in reports.items():
        found = [Path(folder) / "results" / f"{path.stem}-discovered.json" for folder in args.ablation]
        if report.get("metric") != "latency" and not path.stem.endswith("-discovered") and any(f.exists() for f in found):
            print("\n".join(["", *format_ablation_table(report, [load_json(f) for f in found if f.exists()])]))
    return 0


# -- NetAdaptV1 against NetAdaptV2 (issue 15, item 5) ---------------------------------------------
V1_BATCH = 64  # fine-tuning batch of every NetAdaptV1 sample


def v1_search(pretrained: Path, target: float, steps: int, size: dict, root: Path, reduction: float | None = None) -> Path:
    """NetAdaptV1's search of the trained network to ``target`` of its MACs, each sample
    fine-tuned ``steps`` batches: SCD, filters only, the same reduction schedule and held-out
    images as NetAdaptV2's search (kept in ``search-v1-kSTEPS-TARGET``; ``reduction``: another
    first reduction, for a space where no single layer can give the size's)."""
    from netadapt.search.config import SearchConfig
    from netadapt.search.evaluate import EvalConfig
    from netadapt.search.run import SearchRunConfig, run_search

    run_dir = root / f"search-v1-k{steps}-{target:g}"
    if not (run_dir / "final_arch.json").exists():
        rsize = ranking.SIZES[size["ranking"]]
        run_search(
            SearchRunConfig(
                supernet=str(pretrained), metric="macs", run_dir=str(run_dir), batch_size=V1_BATCH, finetune_steps=steps,
                search=SearchConfig(optimizer="scd", shrink="filters", initial_reduction=reduction or size["initial_reduction"],
                                    decay=0.98, target=target),
                eval=EvalConfig(calibration_images=rsize["calibration"]),
            )
        )  # fmt: skip
    return run_dir


def step_seconds(pretrained: Path, archs: list[Architecture], batches: int = 20) -> list[float]:
    """Seconds of one NetAdaptV1 fine-tuning batch of 64 on each of ``archs`` (the initial and the
    found network: the projection's upper and lower bound), measured here back to back."""
    from netadapt.model.checkpoint import load_supernet
    from netadapt.search.finetune import FineTune
    from netadapt.search.run import SearchRunConfig, _finetune_batches

    net, extra = load_supernet(pretrained)
    config = SearchRunConfig(supernet=str(pretrained), batch_size=V1_BATCH, finetune_steps=batches)
    train = _finetune_batches(config, pretrained.parent / extra["heldout"])
    out = []
    for arch in archs:
        sub = net.extract(arch)
        FineTune(train, steps=2).finetune_(sub, torch.device("cpu"))  # warm-up
        started = time.perf_counter()
        FineTune(train, steps=batches).finetune_(sub, torch.device("cpu"))
        out.append((time.perf_counter() - started) / batches)
    return out


def v1(args: argparse.Namespace) -> int:
    from netadapt.io import read_jsonl
    from netadapt.model.checkpoint import load_supernet
    from netadapt.resources.counting import count_macs

    size, root, rsize, data, _, pretrained_file = _setup(args, supernet=False)  # V1 needs no super-network
    v2_report_file = root / "results" / f"target-{args.target:g}.json"
    if not v2_report_file.exists():
        raise SystemExit(f"error: run NetAdaptV2 at this target first (compare_cifar.py run --target {args.target:g})")
    v2_report = load_json(v2_report_file)
    v2_timing = load_json(root / f"search-{args.target:g}" / "timing.json")["steps"]
    supernet, _ = load_supernet(pretrained_file)
    folder = root / f"v1-{args.target:g}"
    rows = {}
    for steps in args.steps:
        run_dir = v1_search(pretrained_file, args.target, steps, size, root, args.initial_reduction)
        arch = Architecture.from_dict(load_json(run_dir / "final_arch.json"))
        history = read_jsonl(run_dir / "history.jsonl")  # one line per scored sample
        samples, iterations = len(history), 1 + max(record["iteration"] for record in history)
        name = f"NetAdaptV1, {steps} batches per sample"
        spec = {"kind": "netadapt", "weights": str(pretrained_file), "arch": arch.to_dict()}
        row = {"macs": count_macs(supernet, arch), "params": sum(p.numel() for p in supernet.extract(arch).parameters()),
               "steps": steps, "samples": samples, "iterations": iterations,
               "search_seconds": load_json(run_dir / "timing.json")["steps"]["sample_evaluation"]["wall_seconds"]}  # fmt: skip
        measured = folder / f"step-seconds-k{steps}.json"
        if not measured.exists():
            save_json(measured, {"step_seconds": step_seconds(pretrained_file, [supernet.space.full(), arch])})
        row.update(load_json(measured))
        finetune_all({name: row}, {name: spec}, size, data, folder, args)
        rows[name] = row
    report = {
        "target": args.target, "size": args.size, "recipe": args.recipe, "epochs": size["finetune_epochs"],
        "subset": rsize["subset"], "rows": rows, "full_macs": count_macs(supernet, supernet.space.full()),
        "v2": {"top1": v2_report["rows"]["discovered (super-network weights)"]["top1"],
               "macs": v2_report["rows"]["discovered (super-network weights)"]["macs"],
               "supernet_seconds": v2_timing["supernet_training"]["wall_seconds"],
               "search_seconds": v2_timing["sample_evaluation"]["wall_seconds"]},
        "paper_steps": 4 * math.ceil(rsize["subset"] / V1_BATCH),
    }  # fmt: skip
    save_json(root / "results" / f"v1-{args.target:g}.json", report)
    print("\n".join(format_v1_table(report)))
    return 0


def format_v1_table(report: dict) -> list[str]:
    """NetAdaptV1's rows against NetAdaptV2's: top-1, MACs, search time, time ratio, and the time
    projected with the paper's four epochs per sample."""
    v2 = report["v2"]
    v2_total = v2["supernet_seconds"] + v2["search_seconds"]
    lines = [
        f"Target {100 * report['target']:g}% of the initial network's MACs, every network fine-tuned "
        f"{report['epochs']} epochs, {len(v2['top1'])} seeds",
        "",
        "| method | MACs (M) | samples (iterations) | search min | top-1 % (mean ± std) | V2 − this, points [95% CI] "
        "| V1 / V2 search time |",
        "|---|---|---|---|---|---|---|",
        f"| NetAdaptV2 (super-network {v2['supernet_seconds'] / 60:.1f} min + samples {v2['search_seconds'] / 60:.1f} min) "
        f"| {v2['macs'] / 1e6:.2f} | – | {v2_total / 60:.1f} | {_top1(v2)} | – | – |",
    ]
    for name, row in report["rows"].items():
        diff = "{:+.2f} [{:+.2f}, {:+.2f}]".format(*(100 * v for v in paired(v2["top1"], row["top1"])))
        lines.append(
            f"| {name} | {row['macs'] / 1e6:.2f} | {row['samples']} ({row['iterations']}) | {row['search_seconds'] / 60:.1f} "
            f"| {_top1(row)} | {diff} | {row['search_seconds'] / v2_total:.2f}x |"
        )
    for name, row in report["rows"].items():
        if row["macs"] > report["target"] * report["full_macs"] * 1.02:
            lines += ["", f"Note: {name} stopped short of the target (no single layer gave an iteration's reduction)."]
        extra = report["paper_steps"] - row["steps"]
        low, high = (row["search_seconds"] + row["samples"] * extra * t for t in sorted(row["step_seconds"]))
        lines += [
            "",
            f"Projected (not run) from {name}: with the paper's {report['paper_steps']} batches of {V1_BATCH} per sample "
            f"(four epochs of {report['subset']:,} images) its {row['samples']} samples would take "
            f"{low / 3600:.1f}-{high / 3600:.1f} h (one fine-tuning batch measured at "
            f"{1000 * min(row['step_seconds']):.0f}-{1000 * max(row['step_seconds']):.0f} ms on the last and the "
            f"initial network): {low / v2_total:.0f}-{high / v2_total:.0f}x NetAdaptV2's search time.",
        ]
    return lines


# -- the from-scratch table (issue 15, item 2's second table) --------------------------------------
def scratch(args: argparse.Namespace) -> int:
    """The discovered and the uniform architecture of a finished target (``run``'s report) trained
    from random weights, the same schedule and epochs each, ``--seeds`` seeds: does the searched
    shape win on its own, without the super-network's weights?  Each network trains with
    ``bench_ranking.py``'s from-scratch stand-alone config (warm-up, cosine), evaluated on the test
    images; results under ``scratch-eE/`` and ``results/scratch-e{E}-TARGET.json``."""
    from netadapt.model.supernet import build_supernet

    size = SIZES[args.size]
    root = Path(args.out or f"runs/compare-{args.size}")
    label = f"{'latency-' if args.metric == 'latency' else ''}{args.target:g}"
    report_file = root / "results" / f"target-{label}.json"
    if not report_file.exists():
        raise SystemExit(f"error: {report_file} does not exist; run this target first (compare_cifar.py run)")
    report = load_json(report_file)
    rsize = {**ranking.SIZES[size["ranking"]], "scratch_epochs": args.epochs}
    data = ranking._extract_data(Path(args.data), root)
    classes = sum(1 for folder in (data / "train").iterdir() if folder.is_dir())  # as the training builds its head
    options = ranking.RECIPES[report["recipe"]].get("model.options", {})  # the searched space's
    space = build_supernet(rsize["model"], width_mult=rsize["width_mult"], num_classes=classes, input_size=32, **options)
    archs = {"discovered": space.space.validate(Architecture.from_dict(report["architecture"]))}
    uniform = [report["uniform"]] if "uniform" in report else report["uniform_neighbours"]
    for k, found in enumerate(uniform):
        name = "uniform" if len(uniform) == 1 else f"uniform neighbour {k + 1}"
        archs[name] = space.space.validate(Architecture.from_dict(found))
    spec = [("scratch", arch, None, seed) for arch in archs.values() for seed in range(args.seeds)]
    results = ranking.standalone(spec, rsize, data, root / f"scratch-e{args.epochs}", args.jobs, options)
    rows = {}
    for name, arch in archs.items():
        compact = space.extract(arch)
        rows[name] = {"macs": macs_of_module(compact, space.input_size), "params": sum(p.numel() for p in compact.parameters()),
                      "top1": [results[("scratch", ranking.arch_key(arch), seed)] for seed in range(args.seeds)]}  # fmt: skip
    notes = []
    if len(uniform) > 1:  # no uniform network within 2% of the MACs: each seed interpolated between the two
        if args.metric != "macs":
            raise SystemExit("error: no uniform network matches this latency target; from scratch needs a matched one")
        lo, hi = rows["uniform neighbour 1"], rows["uniform neighbour 2"]
        rows["uniform, interpolated"] = between(lo, hi, (rows["discovered"]["macs"] - lo["macs"]) / (hi["macs"] - lo["macs"]))
        notes.append("no uniformly scaled network lies within 2% of the MACs; the interpolated row is linear in MACs "
                     "between the two neighbours, each trained for every seed")  # fmt: skip
    out = {
        "target": args.target, "metric": args.metric, "size": args.size, "epochs": args.epochs, "subset": rsize["subset"],
        "from": str(report_file), "rows": rows, "full_macs": report["full_macs"], "notes": notes,
        "machine": ranking._machine(),
    }  # fmt: skip
    save_json(root / "results" / f"scratch-e{args.epochs}-{label}.json", out)
    print("\n".join(format_scratch_table(out)))
    return 0


def format_scratch_table(report: dict) -> list[str]:
    """The lines of one from-scratch table (``scratch``): discovered − each uniform row, by seed."""
    rows = report["rows"]
    ours = rows["discovered"]["top1"]
    lines = [
        f"From scratch: target {100 * report['target']:g}% of the initial network's "
        f"{'MACs' if report['metric'] == 'macs' else 'predicted latency'}, "
        f"every network trained {report['epochs']} epochs from random weights on {report['subset']:,} images, {len(ours)} seeds",
        "",
        "| network | MACs (M) | params | top-1 % (mean ± std) | discovered − this, points [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['macs'] / 1e6:.2f} | {row['params']:,} | {_top1(row)} | {_difference(name, ours, row)} |")
    return [*lines, "", *(f"Note: {note}." for note in report.get("notes", []))]


def _common(parser: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``v1`` share: which trained network, data, results and workers."""
    parser.add_argument("--recipe", choices=sorted(ranking.RECIPES), default="pre-spread-prog")
    _where(parser)
    parser.add_argument("--threads", type=int, default=2)


def _where(parser: argparse.ArgumentParser) -> None:
    """The options every training command has: size, data, results folder, seeds and workers."""
    parser.add_argument("--size", choices=sorted(SIZES), default="cpu")
    parser.add_argument("--data", default="data/cifar10-jpg")
    parser.add_argument("--out", default=None, help="results folder (default runs/compare-SIZE)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="search one target and fine-tune every network at its MACs or latency")
    r.add_argument("--target", type=float, default=0.5, help="fraction of the initial network's MACs or latency")
    r.add_argument(
        "--metric", choices=("macs", "latency"), default="macs",
        help="what the target constrains: MACs (default) or the latency a lookup table predicts (built once here)",
    )  # fmt: skip
    _common(r)
    r.add_argument("--no-pruning", action="store_true", help="skip Torch-Pruning")
    r.add_argument(
        "--discovered-only", action="store_true",
        help="fine-tune the discovered network alone (ablations: e.g. --recipe pre-spread-prog-g8-nocbc)",
    )  # fmt: skip
    r.add_argument(
        "--remove-blocks", choices=("narrowest", "any"), default="narrowest",
        help="the search's remove_blocks option (any: results under target-T-remove-any)",
    )  # fmt: skip
    v = sub.add_parser("v1", help="NetAdaptV1 on the same trained network to a MAC target, against NetAdaptV2's run")
    v.add_argument("--target", type=float, default=0.5, help="fraction of the initial network's MACs")
    v.add_argument("--steps", type=int, nargs="+", default=[10], help="fine-tuning batches per sample (one search each)")
    v.add_argument(
        "--initial-reduction", type=float, default=None,
        help="first reduction (default: the size's, as NetAdaptV2's search); SCD shrinks one layer per sample",
    )  # fmt: skip
    _common(v)
    s = sub.add_parser("scratch", help="a finished target's discovered and uniform architectures trained from random weights")
    s.add_argument("--target", type=float, default=0.5, help="the target of a finished run (its report is read)")
    s.add_argument("--metric", choices=("macs", "latency"), default="macs")
    s.add_argument("--epochs", type=int, default=10, help="training epochs of every network (from random weights)")
    _where(s)
    t = sub.add_parser("table")
    t.add_argument("--size", choices=sorted(SIZES), default="cpu")
    t.add_argument("--out", default=None)
    t.add_argument(
        "--ablation", nargs="*", default=[],
        help="results folders of ablations (run --discovered-only --recipe R --out DIR) to set beside each MAC target",
    )  # fmt: skip
    args = parser.parse_args(argv)
    retain_freed_memory()  # as the netadapt command does (netadapt.allocator)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    return {"run": run, "v1": v1, "table": table, "scratch": scratch}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
