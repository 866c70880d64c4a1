"""benchmarks/gpu_check.py --dry-run: every section of the device session runs on the CPU at toy
sizes and prints its figure, so the script is known to work before a device is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
FIGURES = {
    "train_step.eager",
    "sample_eval.compact_vs_masked",
    "lut_check.within_tolerance",
    "torchrun.supernet_training",
    "cifar_epoch.gpu_preset",
    "train_step.compiled",
}


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
    )


def _lines(stdout: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {r["figure"]: r for r in rows}


def test_dry_run_prints_every_figure(tmp_path: Path) -> None:
    result = _run("--dry-run", "--work", str(tmp_path), timeout=400)
    rows = _lines(result.stdout)
    assert set(rows) == FIGURES, result.stderr[-3000:]
    for name, row in rows.items():
        assert "error" not in row, (name, row.get("error"))
        assert isinstance(row["value"], int | float), row
        if row["unit"].startswith("%"):  # a share measured on a busy CPU at toy size: any value is one
            assert 0 <= row["value"] <= 100, row
        else:
            assert row["value"] > 0, row
        assert row["unit"] and row["dry_run"] is True and row["device"].startswith("cpu")
        if row["baseline"] is not None:
            assert row["ratio"] == pytest.approx(row["value"] / row["baseline"], rel=1e-2)
    if "torchrun.supernet_training" in rows:
        assert rows["torchrun.supernet_training"]["settings"]["backend"] == "gloo"  # one process joined a group
    assert result.returncode == 0, result.stderr[-3000:]


def test_sections_beyond_the_budget_report_an_error() -> None:
    result = _run("--dry-run", "--budget", "1", timeout=120)
    rows = _lines(result.stdout)
    assert set(rows) == FIGURES and result.returncode == 1
    assert all("budget" in row["error"] for row in rows.values())
