"""Evaluation speed: validation passes and the search's sample evaluations, as they run now
against the way they ran before (same run, interleaved).

* ``validation``: :func:`netadapt.evaluate` of a network over a loader of ``--images`` images --
  what every epoch's validation, the final training's and the report's evaluations run.  *Now*:
  the network's :func:`~netadapt.evaluate.inference_copy` (BatchNorm folded into the
  convolutions, channels-last weights); *before*: the network as trained (``fast=False``: the
  super-network's contiguous weights, or a compact network's channels-last ones with BatchNorm
  unfolded).  Two networks: the initial network as the super-network's validation runs it, and
  a network at about half the MACs as a compact network's validation does (trained channels-last
  on a CPU).
* ``sample``: the search's whole-sample evaluation (extraction, BatchNorm recalibrated on
  ``--calibration`` images, BatchNorm folded, top-1 on ``--heldout`` images) with the network in
  the channels-last memory format (``search.eval.channels_last: true``, the default) against the
  contiguous one.  A model named by a source (``torchvision:resnet18``) is traced at 32x32 and
  only its samples are timed, against the way they ran before: contiguous, BatchNorm unfolded.

Figures are images/s (validation) and seconds per sample, the best of ``--rounds`` interleaved
rounds, and the ratio now / before (speed-up).  Random tensors stand in for images (the time
does not depend on the pixels).

    python benchmarks/bench_eval.py --threads 1
    python benchmarks/bench_eval.py --threads 1 --models mobilenet_v3_large --images 256 --batch 32
    python benchmarks/bench_eval.py --threads 1 --models torchvision:resnet18 torchvision:mobilenet_v2
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import netadapt
from netadapt.evaluate import evaluate
from netadapt.resources.timing import cpu_name
from netadapt.search.baseline import uniform_matching
from netadapt.search.evaluate import EvalConfig, shared_weight_evaluator

CIFAR = ("mobilenet_v1_cifar", "mobilenet_v2_cifar", "mobilenet_v3_small_cifar", "mobilenet_v3_large_cifar")


def _data(images: int, batch: int, size: int, classes: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    sizes = [batch] * (images // batch) + ([images % batch] if images % batch else [])
    return [(torch.randn(n, 3, size, size, generator=g), torch.randint(classes, (n,), generator=g)) for n in sizes]


def bench_validation(name: str, args: argparse.Namespace) -> list[dict]:
    cifar = name in CIFAR
    size, classes = (32, 10) if cifar else (224, 1000)
    torch.manual_seed(0)
    net = netadapt.build_supernet(name, input_size=size, num_classes=classes)
    half = uniform_matching(net.space, net.macs, 0.5 * net.macs()).arch  # the uniform baseline at half the MACs
    compact = net.extract(half).to(memory_format=torch.channels_last)  # as a compact network trains on a CPU
    loader = _data(args.images, args.batch or (64 if cifar else 32), size, classes, 1)
    networks = {"initial (super-network)": net, "half MACs (compact)": compact}
    best: dict = {(k, fast): float("inf") for k in networks for fast in (True, False)}
    for _ in range(args.rounds):
        for key, model in networks.items():
            for fast in (True, False):
                began = time.perf_counter()
                result = evaluate(model, loader) if fast else _evaluate_as_is(model, loader)
                best[key, fast] = min(best[key, fast], time.perf_counter() - began)
                assert result["images"] == args.images
    rows = []
    for key in networks:
        now, before = args.images / best[key, True], args.images / best[key, False]
        rows.append({"figure": "validation", "model": name, "network": key, "input": size, "batch": loader[0][0].shape[0],
                     "images_per_s": round(now, 1), "before_images_per_s": round(before, 1), "speedup": round(now / before, 3)})  # fmt: skip
    return rows


def _evaluate_as_is(model: torch.nn.Module, loader: list) -> dict:
    from netadapt.evaluate import ClassificationState, evaluate_metrics

    return evaluate_metrics(model, loader, ClassificationState(), fast=False)


def bench_sample(name: str, args: argparse.Namespace) -> dict:
    """Whole samples of a CIFAR zoo model, or of a traced model (``name`` a source such as
    ``torchvision:resnet18``, traced at 32x32: BatchNorm folded by torch.fx's fusion, before this
    session not folded at all)."""
    torch.manual_seed(0)
    if ":" in name:
        from netadapt.trace import supernet_from_source

        net = supernet_from_source(name, num_classes=10, input_size=32).eval()
        old_way = EvalConfig(calibration_images=args.calibration, channels_last=False, fold_bn=False)
    else:
        net = netadapt.build_supernet(name, input_size=32, num_classes=10).eval()
        old_way = EvalConfig(calibration_images=args.calibration, channels_last=False)
    heldout = _data(args.heldout, args.sample_batch, 32, 10, 2)
    calibration = _data(args.calibration, args.sample_batch, 32, 10, 3)
    g = torch.Generator().manual_seed(0)
    full = netadapt.count_macs(net)
    archs: list = []  # distinct random samples at 35-65% of the MACs (the cache never answers)
    while len(archs) < args.samples:
        arch = net.space.sample(g)
        if 0.35 * full <= netadapt.count_macs(net, arch) <= 0.65 * full and arch not in archs:
            archs.append(arch)
    configs = {"now": EvalConfig(calibration_images=args.calibration), "before": old_way}
    evaluators = {kind: shared_weight_evaluator(net, heldout, calibration, config) for kind, config in configs.items()}
    seconds: dict = {kind: [] for kind in evaluators}
    for arch in archs:
        for kind, evaluator in evaluators.items():
            began = time.perf_counter()
            evaluator([arch])
            seconds[kind].append(time.perf_counter() - began)
    now, before = min(seconds["now"][1:]), min(seconds["before"][1:])  # the first sample of each warms up
    return {"figure": "sample", "model": name, "heldout": args.heldout, "calibration": args.calibration,
            "batch": args.sample_batch, "seconds_per_sample": round(now, 5), "before_seconds_per_sample": round(before, 5),
            "speedup": round(before / now, 3)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mobilenet_v1_cifar", "mobilenet_v3_small_cifar", "mobilenet_v2_cifar"])
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--images", type=int, default=2000, help="validation images per pass")
    p.add_argument("--batch", type=int, default=None, help="validation batch (default 64 at 32x32, 32 at 224)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best is kept")
    p.add_argument("--samples", type=int, default=5, help="search samples of each kind (the first warms up)")
    p.add_argument("--heldout", type=int, default=2000)
    p.add_argument("--calibration", type=int, default=500)
    p.add_argument("--sample-batch", type=int, default=64, help="the search's batch (its CPU default)")
    p.add_argument("--skip-samples", action="store_true", help="only the validation figures")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = {"device": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps({"machine": machine}), flush=True)
    rows = []
    for name in args.models:
        for row in bench_validation(name, args) if ":" not in name else ():  # traced: samples only
            rows.append(row)
            print(json.dumps(row), flush=True)
        if not args.skip_samples and (name in CIFAR or ":" in name) and args.samples > 1:
            rows.append(bench_sample(name, args))
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
