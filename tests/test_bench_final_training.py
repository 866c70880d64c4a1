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
