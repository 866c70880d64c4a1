"""An extracted network carries no operation a hand-written one would not: a network whose
layers keep all their filters exports to ONNX without Slice or Concat nodes (a no-op Slice before
every depthwise convolution cost ONNX Runtime 28-45% of MobileNetV1's latency), and
benchmarks/bench_export_overhead.py runs and reports the ratio against the plain network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from netadapt import build_supernet
from netadapt.export.formats import onnx_bytes

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["mobilenet_v1_cifar", "mobilenet_v3_small_cifar", "mobilenet_v2_cifar"])
def test_a_network_keeping_every_filter_exports_no_slice_or_concat(name):
    net = build_supernet(name, width_mult=0.25, input_size=32, num_classes=10)
    # (a narrower projection of a residual block passes channels through: real bypass, not a no-op)
    archs = [net.space.full()] + ([net.space.uniform(0.5)] if name == "mobilenet_v1_cifar" else [])
    for arch in archs:
        graph = onnx.load_from_string(onnx_bytes(net.extract(arch), (torch.zeros(1, 3, 32, 32),))).graph
        ops = {node.op_type for node in graph.node}
        assert not ops & {"Slice", "Concat"}, (name, sorted(ops))


def test_bench_export_overhead_reports_the_ratio():
    script = ROOT / "benchmarks" / "bench_export_overhead.py"
    args = ["--width-mult", "0.25", "--backend", "torch", "--rounds", "1", "--window", "0.005"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["arch"] for r in rows] == ["full", "uniform-0.5"]
    for row in rows:
        assert row["extracted_ms"] > 0 and row["plain_ms"] > 0
        assert row["ratio"] == pytest.approx(row["extracted_ms"] / row["plain_ms"], rel=0.02)
