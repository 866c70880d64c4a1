"""MAC-count throughput: analytic ``count_macs`` (and the lookup-table prediction) per second.

The search evaluates the resource of every candidate it considers, so the analytic cost models
must be cheap.  Goal of issue 4: ``count_macs`` on ``mobilenet_v3_large`` at ≥ 10,000
architectures per second.  Random architectures are drawn first (seeded) so that only the
counting is timed; the lookup-table line uses a table built with a fake timer (the prediction
cost does not depend on the timings).

    python benchmarks/bench_mac_count.py
    python benchmarks/bench_mac_count.py --models mobilenet_v3_large netadaptv2_latency --archs 20000
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import tempfile
import time
from pathlib import Path

import torch

import netadapt
from netadapt.resources.lut import LatencyTableMetric
from netadapt.resources.lut_build import build_table
from netadapt.resources.metrics import MacsMetric
from netadapt.resources.timing import Timing, cpu_name

GOAL = 10_000


def per_second(fn, archs) -> float:
    """Architectures per second of CPU time (process time: on a shared machine, wall-clock
    time also counts the time other processes hold the core)."""
    for arch in archs[:100]:  # warm the per-layer memo of the tracing, as a long search would
        fn(arch)
    began = time.process_time()
    for arch in archs:
        fn(arch)
    return len(archs) / (time.process_time() - began)


def bench(name: str, count: int, seed: int, with_table: bool) -> dict:
    net = netadapt.build_supernet(name)
    rng = random.Random(seed)
    archs = [net.space.sample(rng) for _ in range(count)]
    row = {
        "model": name,
        "archs": count,
        "count_macs_per_s": per_second(lambda a: netadapt.count_macs(net, a), archs),
        "macs_metric_per_s": per_second(MacsMetric(net), archs),
    }
    if with_table:
        with tempfile.TemporaryDirectory() as tmp:
            table = build_table(net, Path(tmp) / "lut.json", measure=lambda m, x: Timing.exact(1.0), calibrate=0, progress=False)
            table.param_cost = 0.1  # as a fitted table (fit "weights"): the prediction counts parameters too
            row["lut_predict_per_s"] = per_second(LatencyTableMetric(table, net), archs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["mobilenet_v3_large"])
    parser.add_argument("--archs", type=int, default=10_000, help="random architectures per model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-table", action="store_true", help="skip the lookup-table prediction line")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [bench(m, args.archs, args.seed, not args.no_table) for m in args.models]
    print(f"machine: {cpu_name()}, python {platform.python_version()}, torch {torch.__version__}")
    for r in rows:
        line = f"{r['model']}: count_macs {r['count_macs_per_s']:,.0f} archs/s, MacsMetric {r['macs_metric_per_s']:,.0f} archs/s"
        if "lut_predict_per_s" in r:
            line += f", lookup table {r['lut_predict_per_s']:,.0f} archs/s"
        verdict = "meets" if r["count_macs_per_s"] >= GOAL else "misses"
        print(f"{line}  ({verdict} the goal of {GOAL:,}/s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
