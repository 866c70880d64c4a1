"""Is an extracted network as fast as the same network written by hand?

The compact network that ``netadapt`` extracts (and exports) holds the sub-network's layers plus
what channel-level bypass needs (slices, concatenations).  A network whose layers keep all of
their outputs needs none of that, so it should run exactly as fast as the same layers written as
plain ``nn.Sequential`` modules.  This benchmark times both on one backend, interleaved in short
windows (the minimum of several rounds, so that the machine's changing speed reaches both
alike), for a few architectures of a model, and prints the ratio extracted / plain per
architecture as JSON lines.  A ratio above 1 is overhead the export carries.

    python benchmarks/bench_export_overhead.py --model mobilenet_v1_cifar --width-mult 0.5
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from compare_cifar import to_plain  # the hand-written form of a compact network (same folder)

from netadapt import build_supernet
from netadapt.resources.timing import Measurer, cpu_name, make_runner


def measure(model: str, width_mult: float, input_size: int, backend: str, rounds: int, window: float) -> list[dict]:
    """Extracted and plain latency (ms, batch 1) of the full and the uniform half-width network."""
    torch.manual_seed(0)
    net = build_supernet(model, width_mult=width_mult, input_size=input_size, num_classes=10).eval()
    archs = {"full": net.space.full(), "uniform-0.5": net.space.uniform(0.5)}
    x = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    modules = {}
    for name, arch in archs.items():
        compact = net.extract(arch).eval()
        plain = to_plain(compact).eval()
        torch.testing.assert_close(plain(x), compact(x))  # the same network, written two ways
        modules[(name, "extracted")], modules[(name, "plain")] = compact, plain
    timer = Measurer(backend=backend, threads=1, warmup=5, min_time=window)
    runners = {key: make_runner(m, (x,), backend=backend, threads=1) for key, m in modules.items()}
    best = dict.fromkeys(runners, math.inf)
    for _ in range(rounds):
        for key, runner in runners.items():
            best[key] = min(best[key], timer.time(runner).min)
    return [
        {
            "model": model,
            "width_mult": width_mult,
            "arch": name,
            "backend": backend,
            "machine": cpu_name(),
            "extracted_ms": round(best[(name, "extracted")], 4),
            "plain_ms": round(best[(name, "plain")], 4),
            "ratio": round(best[(name, "extracted")] / best[(name, "plain")], 3),
        }
        for name in archs
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mobilenet_v1_cifar")
    p.add_argument("--width-mult", type=float, default=0.5)
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--backend", default="onnxruntime", help="onnxruntime | torch | cuda")
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--window", type=float, default=0.1, help="seconds per timing window")
    args = p.parse_args()
    torch.set_num_threads(1)
    for row in measure(args.model, args.width_mult, args.input_size, args.backend, args.rounds, args.window):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
