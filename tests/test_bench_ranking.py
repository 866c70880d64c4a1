"""benchmarks/bench_ranking.py (issue 14) at its smoke size on a generated CIFAR-like folder,
and its statistics on known rankings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.shapes import make_cifar_like

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_ranking", ROOT / "benchmarks" / "bench_ranking.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_script()


def test_rank_statistics_on_known_orders() -> None:
    a = np.arange(10.0)
    assert bench.kendall_tau(a, a) == pytest.approx(1.0)
    assert bench.kendall_tau(a, -a) == pytest.approx(-1.0)
    assert bench.spearman_rho(a, a**3) == pytest.approx(1.0)
    swapped = a.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # one discordant pair of 45
    assert bench.kendall_tau(a, swapped) == pytest.approx(1 - 2 / 45)
    assert bench.top_overlap(a, swapped) == 5 and bench.top_overlap(a, -a) == 0
    low, high = bench.bootstrap(bench.kendall_tau, a, swapped, rounds=200)
    assert low <= 1 - 2 / 45 <= high <= 1.0
    summary = bench.summarize(list(a), [list(a), list(swapped)])
    assert summary["tau"] > 0.9 and summary["seed_tau"] == pytest.approx(1 - 2 / 45)


def test_architecture_sets_cover_the_mac_range_and_remove_blocks() -> None:
    from netadapt import build_supernet, count_macs

    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, num_classes=10)
    full = count_macs(net, net.space.full())
    sets = bench.draw_sets(net.space, lambda a: count_macs(net, a), 10)
    wide = sorted(count_macs(net, a) / full for a in sets["wide"])
    assert len(set(sets["wide"])) == 10 and wide[0] < 0.4 and wide[-1] > 0.85
    assert all(0.45 <= count_macs(net, a) / full <= 0.55 for a in sets["narrow"])
    assert sum(bool(net.space.removed_blocks(a)) for a in sets["wide"] + sets["narrow"]) >= 5
    assert sets == bench.draw_sets(net.space, lambda a: count_macs(net, a), 10)  # seeded


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "cifar10-jpg"
    return make_cifar_like(root, train=50, test=10, seed=0)


def test_smoke_run_resumes_and_tables(cifar_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ranking"
    args = ["run", "--recipe", "block-sd", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--jobs", "1",
            "--threads", "1"]  # fmt: skip
    assert bench.main(args) == 0
    report = json.loads((out / "results" / "block-sd.json").read_text())
    for name in ("wide", "narrow"):
        entry = report["sets"][name]
        assert len(entry["shared"]) == 4 and all(0 <= s <= 1 for s in entry["shared"])
        assert len(entry["finetune_accuracy"]) == 2 and len(entry["scratch_accuracy"]) == 1
        assert not abs(entry["finetune"]["tau"]) > 1 and "seed_tau" in entry["finetune"]  # NaN when all tie (smoke)
    results = sorted((out / "standalone").rglob("result.json"))
    assert len(results) == 8 * 3  # 8 architectures × (2 fine-tune seeds + 1 scratch)
    stamp = {p: p.stat().st_mtime_ns for p in results}
    assert bench.main(args) == 0  # a rerun trains nothing again
    assert {p: p.stat().st_mtime_ns for p in results} == stamp
    assert bench.main(["table", "--size", "smoke", "--out", str(out)]) == 0
    assert "| block-sd | wide | 4 | finetune |" in capsys.readouterr().out

    # the held-out cross-entropy beside top-1, scored as the search scores: top-1 as the report's
    assert bench.main(["score-loss", "--recipe", "block-sd", "--size", "smoke", "--out", str(out)]) == 0
    assert "τ −cross-entropy vs truth" in capsys.readouterr().out
    losses = json.loads((out / "supernets" / "block-sd" / "shared_losses.json").read_text())
    archs = json.loads(next((out / "spaces").glob("*/archs.json")).read_text())["wide"]
    keys = [bench.arch_key(bench.Architecture.from_dict(d["arch"])) for d in archs]
    assert [losses[k]["top1"] for k in keys] == pytest.approx(report["sets"]["wide"]["shared"])
    assert all(losses[k]["loss"] > 0 for k in keys)

    # another recipe ranked against the stored truth: nothing trained stand-alone, same accuracies
    again = tmp_path / "again"
    earlier = out / "results" / "block-sd.json"
    truth_args = ["run", "--recipe", "block", "--size", "smoke", "--data", str(cifar_like), "--out", str(again), "--jobs", "1",
                  "--threads", "1", "--no-scratch", "--sets", "wide", "--truth-from", str(earlier)]  # fmt: skip
    assert bench.main(truth_args) == 0
    assert not (again / "standalone").exists()
    second = json.loads((again / "results" / "block.json").read_text())
    assert second["truth_of"] == "block-sd" and set(second["sets"]) == {"wide"}  # --sets wide: that set only
    assert second["sets"]["wide"]["finetune_accuracy"] == report["sets"]["wide"]["finetune_accuracy"]
    with pytest.raises(SystemExit, match="no such report"):
        bench.main(truth_args[:-1] + [str(tmp_path / "missing.json")])


def test_recipes_resolve_to_valid_training_configs(tmp_path: Path) -> None:
    from netadapt.config import config_from_dict
    from netadapt.train.config import SupernetTrainConfig

    size = bench.SIZES["cpu"]
    for recipe in bench.RECIPES:
        mapping = bench.supernet_config(size, tmp_path / "data", recipe, tmp_path / "supernets" / recipe)
        config_from_dict(SupernetTrainConfig, mapping).validate()  # unknown keys or bad values raise
    pre = bench.supernet_config(size, tmp_path, "pre-block-sd-prog", tmp_path / "supernets" / "pre-block-sd-prog")
    assert pre["init_from"] == str(tmp_path / "supernets" / "_pretrained" / "supernet.pt")
    assert pre["ordered_dropout"]["width_epochs"] == 0.5 * size["epochs"]
    plain = bench.supernet_config(size, tmp_path, "plain", tmp_path / "supernets" / "plain")
    assert plain["epochs"] == size["pretrain_epochs"] + size["epochs"] and not plain["ordered_dropout"]["enabled"]
    assert bench.pretrain_config(size, tmp_path, tmp_path / "p")["epochs"] == size["pretrain_epochs"]
    # pretrain: N moves the split of the same total budget and pre-trains in its own folder
    split = bench.supernet_config(size, tmp_path, "pre9-spread-prog-g8", tmp_path / "supernets" / "pre9-spread-prog-g8")
    total = size["pretrain_epochs"] + size["epochs"]
    assert split["epochs"] == total - 9 and split["ordered_dropout"]["width_epochs"] == 0.5 * (total - 9)
    assert split["init_from"] == str(tmp_path / "supernets" / "_pretrained-e9" / "supernet.pt")
    assert bench.epoch_split(size, "pre-spread-prog") == (size["pretrain_epochs"], size["epochs"])
    assert bench.epoch_split(size, "block") == (0, size["epochs"])


def test_removed_versus_width_is_the_residual_from_the_width_only_line() -> None:
    fractions = [0.3, 0.5, 0.7, 0.9, 0.5, 0.7]
    removed = [0, 0, 0, 0, 2, 3]
    acc = [0.3 + 0.5 * f for f in fractions]
    acc[4] -= 0.02  # two points below the line
    acc[5] += 0.01
    out = bench.removed_versus_width([acc], removed, fractions)
    assert out["removed_2plus"] == 2 and out["width_only"] == 4
    assert out["mean_residual_points"] == pytest.approx(-0.5) and out["worst_residual_points"] == pytest.approx(-2.0)
    assert bench.removed_versus_width([acc], [0] * 6, fractions) is None
