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
    from netadapt.resources.timing import cpu_name

    assert row["device"] == cpu_name() and row["device"]  # the CPU's model name: which machine the figure came from
    assert row["macs_fraction"] == pytest.approx(0.5, abs=0.05)
    assert row["removed_blocks"] == 2
    for kind in ("initial", "compact", "masked"):
        assert row[f"{kind}_ms"] > 0 and row[f"{kind}_faults_per_step"] >= 0
    assert row["compact_vs_initial"] == pytest.approx(row["compact_ms"] / row["initial_ms"], rel=0.01)
    assert row["masked_vs_initial"] == pytest.approx(row["masked_ms"] / row["initial_ms"], rel=0.01)

    # --divisor 8: the discovered-like network found in the space of multiples of 8, same MACs
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--divisor", "8"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["width_divisor"] == 8 and row["removed_blocks"] == 2
    assert row["macs_fraction"] == pytest.approx(0.5, abs=0.05)
    assert all(f % 8 == 0 for f in row["architecture"]), row["architecture"]


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
    assert row["width_divisor"] is None

    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--divisor", "8"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["width_divisor"] == 8 and row["removed_blocks"] == 1
    assert all(f % 8 == 0 or f == full for f, full in zip(row["architecture"], net.space.full().filters, strict=True))


def test_nearest_widths_moves_a_network_onto_multiples_of_the_divisor() -> None:
    """``--divisor``: every layer keeps the nearest width of the rebuilt space, removed blocks
    stay removed and no kept layer reaches 0."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_final_training import nearest_widths
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from netadapt import build_supernet

    net = build_supernet("mobilenet_v3_small_cifar", width_mult=0.75, input_size=16, num_classes=10, removal="block")
    onto = build_supernet(
        "mobilenet_v3_small_cifar", width_mult=0.75, input_size=16, num_classes=10, removal="block", width_divisor=8
    )
    block = net.space.removal_groups()[1]

    # odd widths off every multiple of 8, and one block removed
    def odd_width(layer) -> int:  # the widest width below full that is not a multiple of 8, else full
        odd = [w for w in layer.widths if 0 < w < layer.max_filters and w % 8]
        return odd[-1] if odd else layer.max_filters

    odd = [0 if i in block else odd_width(layer) for i, layer in enumerate(net.space.layers)]
    arch = net.space.validate(net.space.full().replace(filters=odd))
    moved = nearest_widths(arch, net.space, onto.space)
    assert moved.filters != arch.filters  # the odd widths did move
    assert moved.kernels == arch.kernels
    for layer, before, after in zip(onto.space.layers, arch.filters, moved.filters, strict=True):
        assert after in layer.widths
        assert (after == 0) == (before == 0)
        assert all(abs(after - before) <= abs(w - before) for w in layer.widths if w > 0 or before == 0)
        if layer.kind != "se":
            assert after % 8 == 0 or after == layer.max_filters
    assert onto.space.removed_blocks(moved) == net.space.removed_blocks(arch)
    assert onto.macs(moved) == pytest.approx(net.macs(arch), rel=0.15)


def test_bench_final_training_names_a_bad_architecture_file(tmp_path: Path) -> None:
    bad = tmp_path / "arch.json"
    bad.write_text("{not json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--arch", str(bad)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and str(bad) in result.stderr, result.stderr


def test_bench_final_training_names_a_bad_divisor() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--divisor", "0"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )
    assert result.returncode != 0 and result.stderr == "error: --divisor must be at least 1, got 0\n", result.stderr
