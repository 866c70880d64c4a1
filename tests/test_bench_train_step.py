"""benchmarks/bench_train_step.py runs at toy sizes in one process and with each kind of step in
its own process, and reports the same figures either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_train_step.py"


@pytest.mark.parametrize(("processes", "group_size"), [(False, None), (True, None), (False, 2)])
def test_bench_train_step_reports_both_kinds(processes: bool, group_size: int | None) -> None:
    args = ["--model", "mobilenet_v1_cifar", "--width-mult", "0.25", "--batch", "4", "--steps", "2", "--warmup", "1"]
    args += ["--threads", "1"] + (["--processes"] if processes else [])
    args += ["--group-size", str(group_size)] if group_size else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["processes"] is processes and row["threads"] == 1 and row["group_size"] == group_size
    assert row["plain_ms"] > 0 and row["ordered_dropout_ms"] > 0
    assert row["ratio"] == pytest.approx(row["ordered_dropout_ms"] / row["plain_ms"], rel=0.01)
    assert row["plain_faults_per_step"] >= 0 and row["ordered_dropout_faults_per_step"] >= 0
