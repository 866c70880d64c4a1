"""benchmarks/repro_cifar.py at its smoke size on a generated CIFAR-like folder: every
experiment runs through ``netadapt run`` and the tables hold the runs' numbers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.shapes import make_cifar_like

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("repro_cifar", ROOT / "benchmarks" / "repro_cifar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "cifar10-jpg"
    return make_cifar_like(root, train=40, test=10, seed=0)


def test_experiments_and_tables(cifar_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = _load_script()
    out = tmp_path / "repro"
    for experiment in ("v2", "v1", "v2pre", "uniform", "scd", "retrain"):
        assert script.main([experiment, "--size", "smoke", "--data", str(cifar_like), "--out", str(out)]) == 0
    rows = {r["run"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert set(rows) == {"v2", "v1", "v2pre", "uniform_above", "scd", "retrain1", "retrain2"}
    v2, v1, scd = rows["v2"], rows["v1"], rows["scd"]
    assert v2["ordered_dropout"] and not v1["ordered_dropout"]
    assert v1["optimizer"] == scd["optimizer"] == "scd" and v2["optimizer"] == "mcd"
    assert v1["supernet_seconds"] == 0 and v1["pretrain_seconds"] > 0  # pre-training is not search time
    assert v2["supernet_seconds"] > 0 and v2["final_seconds"] > 0 and v2["search_seconds"] > 0
    assert scd["reused_supernet_of"] == "v2" and (out / "scd" / "supernet" / "supernet.pt").is_file()
    assert v2["macs"] < v2["initial_macs"] and abs(v2["baseline_macs"] / v2["macs"] - 1) <= 0.1  # MAC-matched
    assert 0 <= v2["top1"] <= 1 and v2["samples_evaluated"] >= 1
    capsys.readouterr()
    assert script.main(["table", "--size", "smoke", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert f"| NetAdaptV2 (OD + CBC + MCD) | {100 * v2['top1']:.2f} |" in table
    assert f"{v1['total_seconds'] / v2['total_seconds']:.2f}x" in table
    assert "| SCD instead of MCD |" in table and "Machine:" in table
    assert rows["uniform_above"]["macs"] > v2["macs"]
    assert "Discovered - uniform at equal MACs" in table and "| uniform width multiplier, MAC-matched |" in table
    assert rows["retrain1"]["macs"] == rows["retrain2"]["macs"] == v2["macs"]
    assert "| final training (one discovered network) |" in table
    # the seed reaches the training: the same network, other weights
    retrained = torch.load(out / "retrain1" / "supernet.pt", map_location="cpu", weights_only=False)["state_dict"]
    final = torch.load(out / "v2" / "final" / "supernet.pt", map_location="cpu", weights_only=False)["state_dict"]
    assert retrained.keys() == final.keys() and any(not torch.equal(retrained[k], final[k]) for k in final)
    assert rows["v2pre"]["starts_from"].endswith("v1/supernet/supernet.pt") and "from the pre-trained network" in table


def test_flows_reseed_every_step(tmp_path: Path) -> None:
    script = _load_script()
    configs = script.experiment_configs("flows", script.SIZES["smoke"], tmp_path, tmp_path / "out")
    assert [(name, reuse) for name, _, reuse in configs] == [("flow1", None), ("flow2", None)]
    for seed, (_, mapping, _) in zip((1, 2), configs, strict=True):
        assert mapping["supernet"]["seed"] == mapping["search"]["seed"] == seed  # final training follows the super-network's


def test_only_names_runs_of_the_experiment(cifar_like: Path, tmp_path: Path) -> None:
    script = _load_script()
    with pytest.raises(SystemExit, match=r"--only: flow9 is not a run of flows \(flow1, flow2\)"):
        script.main(["flows", "--size", "smoke", "--data", str(cifar_like), "--out", str(tmp_path), "--only", "flow9"])
    assert not (tmp_path / "flow1").exists()


def test_unknown_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    script = _load_script()
    with pytest.raises(SystemExit, match="not found"):
        script.main(["v2", "--size", "smoke", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)])
