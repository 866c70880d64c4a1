"""Sample-evaluation throughput: the extracted compact network vs the masked super-network.

For each model a sample at about 50% of the initial MACs is picked (``space.uniform(r)`` with
``r`` found by bisection) and run (a) as its extracted compact network and (b) by masking the
full super-network, ``supernet(x, arch)``; both in eval mode under ``torch.inference_mode``.
The goal of issue 5 is a speed-up of at least 2x.  For the CIFAR networks it also measures
whole-sample evaluations per minute: extraction, BatchNorm recalibration on 2,000 images and
top-1 on a 2,000-image held-out set (random tensors: the cost does not depend on the pixels).

    python benchmarks/bench_sample_eval.py                        # CPU, every model
    python benchmarks/bench_sample_eval.py --device cuda --batch-size 256 --autocast
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import netadapt
from netadapt.resources.timing import cpu_name
from netadapt.search.evaluate import EvalConfig, fold_bn_, shared_weight_evaluator
from netadapt.search.shrink import Proposal, Shrinker

CIFAR = ("mobilenet_v1_cifar", "mobilenet_v2_cifar", "mobilenet_v3_large_cifar", "mobilenet_v3_small_cifar")


def half_macs_arch(net: netadapt.SuperNet, fraction: float = 0.5) -> tuple[netadapt.Architecture, float]:
    """An architecture at about ``fraction`` of the MACs: the smallest ``space.uniform(r)`` above
    it (bisection on r), then filters removed one width step at a time, layer after layer, until
    the MACs reach ``fraction`` (uniform scaling alone jumps over 50% with 9 width choices)."""
    space, full = net.space, netadapt.count_macs(net)
    lo, hi = 0.05, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        if netadapt.count_macs(net, space.uniform(mid)) > fraction * full:
            hi = mid
        else:
            lo = mid
    arch = space.uniform(hi)
    shrinker = Shrinker(space, filters_only=True)
    units = tuple(u for u in shrinker.shrinkable(arch) if arch.filters[shrinker.units[u][0]] > 0)
    proposal = Proposal(units, ("filters",) * len(units))
    arch, _ = shrinker.shrink_until(arch, proposal, fraction * full, lambda a: netadapt.count_macs(net, a))
    return arch, netadapt.count_macs(net, arch) / full


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(forward, x: torch.Tensor, batches: int, warmup: int, autocast: bool) -> float:
    amp = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast)
    with torch.inference_mode(), amp:
        for _ in range(warmup):
            forward(x)
        sync(x.device)
        began = time.perf_counter()
        for _ in range(batches):
            forward(x)
        sync(x.device)
    return batches * x.shape[0] / (time.perf_counter() - began)


def bench_throughput(name: str, args: argparse.Namespace, device: torch.device) -> dict:
    cifar = name in CIFAR
    size = 32 if cifar else 224
    torch.manual_seed(0)
    net = netadapt.build_supernet(name, input_size=size, num_classes=10 if cifar else 1000).to(device).eval()
    arch, fraction = half_macs_arch(net)
    compact = net.extract(arch).eval()
    batch = args.batch_size or (256 if cifar else 32)
    batches = args.batches or (8 if cifar else 3)
    x = torch.randn(batch, 3, size, size, device=device)
    if args.channels_last and device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
        compact = compact.to(memory_format=torch.channels_last)
        net = net.to(memory_format=torch.channels_last)
    folded = fold_bn_(net.extract(arch).eval())
    if args.channels_last and device.type == "cuda":
        folded = folded.to(memory_format=torch.channels_last)
    variants = {"compact": compact, "folded": folded, "masked": lambda t: net(t, arch), "full": net}
    best = dict.fromkeys(variants, 0.0)
    # Best of interleaved rounds: on a shared machine the slowest rounds measure the neighbours.
    for _ in range(args.rounds):
        for key, forward in variants.items():
            best[key] = max(best[key], images_per_second(forward, x, batches, 1, args.autocast))
    ips_compact, ips_folded, ips_masked, ips_full = (best[k] for k in variants)
    return {
        "model": name,
        "input": size,
        "batch": batch,
        "macs_fraction": round(fraction, 3),
        "compact_img_s": round(ips_compact, 1),
        "compact_bn_folded_img_s": round(ips_folded, 1),
        "masked_img_s": round(ips_masked, 1),
        "full_network_img_s": round(ips_full, 1),
        "speedup": round(ips_compact / ips_masked, 2),
        "speedup_bn_folded": round(ips_folded / ips_masked, 2),
    }


def bench_samples_per_minute(
    name: str, args: argparse.Namespace, device: torch.device, recalibrate: bool, batch: int = 250
) -> dict:
    """Whole-sample evaluations per minute with held-out and calibration images in batches of
    ``batch`` (the search's ``batch_size``; the last batch holds the remainder)."""
    torch.manual_seed(0)
    net = netadapt.build_supernet(name, input_size=32, num_classes=10).eval()
    g = torch.Generator().manual_seed(0)

    def data(images: int) -> list:
        sizes = [batch] * (images // batch) + ([images % batch] if images % batch else [])
        return [(torch.randn(n, 3, 32, 32, generator=g), torch.randint(10, (n,), generator=g)) for n in sizes]

    heldout, calibration = data(args.heldout), data(args.calibration)
    config = EvalConfig(recalibrate_bn=recalibrate, calibration_images=args.calibration, device=str(device))
    evaluator = shared_weight_evaluator(net, heldout, calibration, config)
    target = netadapt.count_macs(net) * 0.5
    archs = []  # distinct random samples near 50% of the MACs (so the cache never answers)
    while len(archs) < args.samples:
        arch = net.space.sample(g)
        if 0.35 * 2 * target <= netadapt.count_macs(net, arch) <= 0.65 * 2 * target and arch not in archs:
            archs.append(arch)
    evaluator(archs[:1])  # warm-up
    began = time.perf_counter()
    evaluator(archs[1:])
    seconds = (time.perf_counter() - began) / (len(archs) - 1)
    return {
        "model": name,
        "heldout_images": args.heldout,
        "calibration_images": args.calibration if recalibrate else 0,
        "eval_batch": batch,
        "seconds_per_sample": round(seconds, 3),
        "samples_per_minute": round(60 / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["mobilenet_v3_large", *CIFAR])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 256 (CIFAR), 32 (224x224)")
    parser.add_argument("--batches", type=int, default=None, help="timed batches per round (default 8 CIFAR, 3 at 224)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the best is kept")
    parser.add_argument("--autocast", action="store_true", help="bfloat16 autocast (CUDA; on a CPU only to test the path)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format (CUDA)")
    parser.add_argument("--samples", type=int, default=4, help="samples timed for samples/minute (first is warm-up)")
    parser.add_argument("--heldout", type=int, default=2000)
    parser.add_argument("--calibration", type=int, default=2000)
    parser.add_argument(
        "--eval-batch",
        type=int,
        nargs="+",
        default=[250],
        help="batch of the held-out and calibration images for samples/minute (several: each in turn)",
    )
    parser.add_argument("--skip-samples", action="store_true", help="only the throughput comparison")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(f"machine: {machine}")
    rows = []
    print(
        f"{'model':<26} {'in':>4} {'batch':>5} {'MACs':>5} {'compact':>9} {'+BN fold':>9} {'masked':>9} {'full net':>9} "
        f"{'speed-up':>8} {'(folded)':>8}   (images/s)"
    )
    for name in args.models:
        row = bench_throughput(name, args, device)
        rows.append(row)
        print(
            f"{name:<26} {row['input']:>4} {row['batch']:>5} {row['macs_fraction']:>5.2f} {row['compact_img_s']:>9.1f} "
            f"{row['compact_bn_folded_img_s']:>9.1f} {row['masked_img_s']:>9.1f} {row['full_network_img_s']:>9.1f} "
            f"{row['speedup']:>7.2f}x {row['speedup_bn_folded']:>7.2f}x"
        )
    per_minute = []
    if not args.skip_samples:
        print(f"\n{'model':<26} {'BN recal.':>9} {'batch':>5} {'s/sample':>9} {'samples/min':>11}")
        for name in [m for m in args.models if m in CIFAR]:
            for recalibrate in (True, False):
                for batch in args.eval_batch:
                    row = bench_samples_per_minute(name, args, device, recalibrate, batch)
                    per_minute.append(row)
                    print(
                        f"{name:<26} {row['calibration_images']:>9} {batch:>5} {row['seconds_per_sample']:>9.3f} "
                        f"{row['samples_per_minute']:>11.1f}"
                    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "throughput": rows, "samples_per_minute": per_minute}, f, indent=1)


if __name__ == "__main__":
    main()
