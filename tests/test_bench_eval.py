"""benchmarks/bench_eval.py and bench_final_epochs.py run at toy size: evaluation now against
before, and whole final-training runs of a discovered-like network against the initial one."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.shapes import make_cifar_like

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}


def _run(script: str, args: list[str]) -> list[dict]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_bench_eval_compares_now_and_before() -> None:
    args = ["--threads", "1", "--models", "mobilenet_v3_small_cifar", "--images", "40", "--batch", "16", "--rounds", "1"]
    rows = _run("bench_eval.py", [*args, "--samples", "2", "--heldout", "32", "--calibration", "16", "--sample-batch", "16"])
    from netadapt.resources.timing import cpu_name

    assert rows[0]["machine"]["device"] == cpu_name()
    validation = [r for r in rows[1:] if r["figure"] == "validation"]
    assert [r["network"] for r in validation] == ["initial (super-network)", "half MACs (compact)"]
    for row in validation:
        assert row["speedup"] == pytest.approx(row["images_per_s"] / row["before_images_per_s"], rel=0.01)
    (sample,) = [r for r in rows[1:] if r["figure"] == "sample"]
    assert sample["speedup"] == pytest.approx(sample["before_seconds_per_sample"] / sample["seconds_per_sample"], rel=0.01)


def test_bench_final_epochs_times_whole_runs(tmp_path: Path) -> None:
    data = make_cifar_like(tmp_path / "data", train=40, test=10)
    args = ["--data", str(data), "--width-mult", "0.25", "--subset", "64", "--heldout", "16", "--batch", "16", "--workers", "0"]
    (row,) = _run("bench_final_epochs.py", [*args, "--rounds", "2", "--out", str(tmp_path / "runs")])
    assert row["macs_fraction"] == pytest.approx(0.5, abs=0.05) and row["removed_blocks"] == 2
    for kind in ("initial", "discovered"):
        assert len(row["recorded_seconds"][kind]) == 2 and min(row["recorded_seconds"][kind]) > 0
        assert all(
            0 < loop < whole
            for loop, whole in zip(row["training_loop_seconds"][kind], row["recorded_seconds"][kind], strict=True)
        )
        for r in range(2):  # each training its own finished run folder
            assert (tmp_path / "runs" / f"{kind}-{r}" / "supernet.pt").is_file()
    median = {k: statistics.median(v) for k, v in row["recorded_seconds"].items()}
    assert row["discovered_vs_initial"] == pytest.approx(median["discovered"] / median["initial"], rel=0.01)

    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_final_epochs.py"), "--data", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "--data" in result.stderr and "no such folder" in result.stderr


def test_bench_eval_times_a_traced_models_samples() -> None:
    pytest.importorskip("torchvision")
    args = ["--threads", "1", "--models", "torchvision:resnet18", "--samples", "2", "--heldout", "16", "--calibration", "8"]
    rows = _run("bench_eval.py", [*args, "--sample-batch", "8"])
    (sample,) = rows[1:]  # samples only: no validation figures for a traced model
    assert sample["figure"] == "sample" and sample["model"] == "torchvision:resnet18"
    assert sample["speedup"] == pytest.approx(sample["before_seconds_per_sample"] / sample["seconds_per_sample"], rel=0.01)
