"""benchmarks/bench_final_training.py runs at toy size: a discovered-like network at about half
the MACs with blocks removed, and the three kinds of final-training steps timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_final_training.py"


def test_bench_final_training_reports_every_kind() -> None:
    args = ["--width-mult", "0.25", "--batch", "4", "--steps", "2", "--warmup", "1", "--threads", "1", "--removed", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["threads"] == 1 and row["processes"] is False
    assert row["macs_fraction"] == pytest.approx(0.5, abs=0.05)
    assert row["removed_blocks"] == 2
    for kind in ("initial", "compact", "masked"):
        assert row[f"{kind}_ms"] > 0 and row[f"{kind}_faults_per_step"] >= 0
    assert row["compact_vs_initial"] == pytest.approx(row["compact_ms"] / row["initial_ms"], rel=0.01)
    assert row["masked_vs_initial"] == pytest.approx(row["masked_ms"] / row["initial_ms"], rel=0.01)


def test_bench_final_training_times_an_architecture_file(tmp_path: Path) -> None:
    """``--arch FILE``: a discovered network's file timed on the space its file records."""
    from netadapt import build_supernet

    net = build_supernet("mobilenet_v3_small_cifar", width_mult=0.25, input_size=16, num_classes=10, removal="block")
    arch = net.space.full()
    block = net.space.removal_groups()[0]
    arch = net.space.validate(arch.replace(filters=[0 if i in block else max(1, f // 2) for i, f in enumerate(arch.filters)]))
    path = tmp_path / "final_arch.json"
    path.write_text(arch.to_json(net.space, build=net.build_config()))
    args = ["--arch", str(path), "--batch", "4", "--steps", "2", "--warmup", "1", "--threads", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["model"] == "mobilenet_v3_small_cifar" and row["input_size"] == 16 and row["architecture_file"] == str(path)
    assert row["architecture"] == list(arch.filters) and row["removed_blocks"] == 1
    assert row["macs_fraction"] == pytest.approx(net.macs(arch) / net.macs(), abs=1e-3)


def test_bench_final_training_names_a_bad_architecture_file(tmp_path: Path) -> None:
    bad = tmp_path / "arch.json"
    bad.write_text("{not json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--arch", str(bad)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and str(bad) in result.stderr, result.stderr
