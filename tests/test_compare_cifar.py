"""benchmarks/compare_cifar.py (issue 15) at its smoke size on a generated CIFAR-like folder:
every network lands at the discovered network's MACs, results resume, the table pairs seeds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.shapes import make_cifar_like

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare = _load("compare_cifar")


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "cifar10-jpg"
    return make_cifar_like(root, train=50, test=10, seed=1)


def test_paired_interval() -> None:
    mean, low, high = compare.paired([0.70, 0.72, 0.71], [0.69, 0.70, 0.70])
    assert mean == pytest.approx(0.04 / 3)
    assert low < mean < high
    assert compare.paired([0.5], [0.4])[1] != compare.paired([0.5], [0.4])[1]  # NaN interval with one seed


def test_plain_form_equals_the_compact_network() -> None:
    from netadapt import build_supernet
    from netadapt.model.checks import randomize_norm_

    for name in ("mobilenet_v1_cifar", "mobilenet_v3_small_cifar"):
        net = build_supernet(name, width_mult=0.5, num_classes=10)
        randomize_norm_(net, torch.Generator().manual_seed(0))
        compact = net.extract(net.space.full()).eval()
        plain = compare.to_plain(compact).eval()
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            assert torch.allclose(plain(x), compact(x), atol=1e-5)


def test_smoke_run(cifar_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "compare"
    args = ["run", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--target", "0.5", "--seeds", "2",
            "--jobs", "1", "--threads", "1"]  # fmt: skip
    assert compare.main(args) == 0
    report = json.loads((out / "results" / "target-0.5.json").read_text())
    rows = report["rows"]
    assert len(rows) == 5 and all(len(r["top1"]) == 2 for r in rows.values())
    budget = report["budget_macs"]
    for name, row in rows.items():
        assert abs(row["macs"] / budget - 1) <= 0.02, name  # every alternative at the same MACs
    results = sorted((out / "target-0.5" / "results").glob("*.json"))
    stamp = {p: p.stat().st_mtime_ns for p in results}
    assert compare.main(args) == 0  # a rerun fine-tunes nothing again
    assert {p: p.stat().st_mtime_ns for p in results} == stamp
    saved = json.loads(results[0].read_text())
    assert saved["network"]["kind"] in ("netadapt", "torch-pruning") and "weights" not in saved["network"]
    results[0].write_text(json.dumps({**saved, "network": {**saved["network"], "kind": "another"}}))
    with pytest.raises(SystemExit, match="holds the result of another network"):  # never a stale result
        compare.main(args)
    results[0].write_text(json.dumps(saved))
    stamp = {p: p.stat().st_mtime_ns for p in results}
    assert compare.main([*args, "--discovered-only"]) == 0  # an ablation's form: its own report, nothing retrained
    assert list(json.loads((out / "results" / "target-0.5-discovered.json").read_text())["rows"]) == [
        "discovered (super-network weights)"
    ]
    assert len(json.loads((out / "results" / "target-0.5.json").read_text())["rows"]) == 5
    assert {p: p.stat().st_mtime_ns for p in results} == stamp
    assert compare.main(["table", "--size", "smoke", "--out", str(out)]) == 0
    assert "| Torch-Pruning taylor (trained weights) |" in capsys.readouterr().out

    # search_diagnostics' block-removal probe of the finished search scores as the search scored
    diagnostics = _load("search_diagnostics")
    supernet = next((out / "supernets").glob("*/supernet.pt"))
    rows = diagnostics.probe(out / "search-0.5", supernet, "smoke", [1], tmp_path / "probe.jsonl")
    assert rows and all(1 <= r["rank_by_score"] <= r["samples"] + 1 and r["removed_cut"] > 0 for r in rows)
    assert all(r["chosen_rescored"] == pytest.approx(r["chosen_score"]) for r in rows)
    assert len((tmp_path / "probe.jsonl").read_text().splitlines()) == len(rows)

    # the paired noise of the same search: rescored image by image, as the search scored
    rows = diagnostics.noise(out / "search-0.5", supernet, "smoke", None, tmp_path / "noise.jsonl")
    assert rows and all(r["images"] == 30 and r["gap_second"] >= 0 and r["paired_se_second"] >= 0 for r in rows)

    # NetAdaptV1 on the same trained network, against this NetAdaptV2 run: SCD over filters only,
    # its network at the target, fine-tuned for the same seeds, the time ratio and the projection
    capsys.readouterr()
    v1_args = ["v1", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--target", "0.5", "--steps", "1",
               "--seeds", "2", "--jobs", "1", "--threads", "1", "--initial-reduction", "0.05"]  # fmt: skip
    assert compare.main(v1_args) == 0
    report = json.loads((out / "results" / "v1-0.5.json").read_text())
    (row,) = report["rows"].values()
    assert len(row["top1"]) == 2 and row["samples"] >= row["iterations"] >= 1 and row["search_seconds"] > 0
    assert row["macs"] <= 0.5 * json.loads((out / "results" / "target-0.5.json").read_text())["full_macs"] * 1.0001
    history = [json.loads(line) for line in (out / "search-v1-k1-0.5" / "history.jsonl").read_text().splitlines()]
    (initial,) = [h["arch"]["layers"] for h in history if h["iteration"] == 0]
    first = [h["arch"]["layers"] for h in history if h["iteration"] == 1]
    assert len(first) > 1  # SCD: one sample per layer, filters only
    assert all([lay["kernel"] for lay in layers] == [lay["kernel"] for lay in initial] for layers in first)
    text = capsys.readouterr().out
    assert "NetAdaptV1, 1 batches per sample" in text and "Projected (not run)" in text

    # the target's two architectures from random weights (the from-scratch table): the same MACs as
    # in the target's report, every seed trained once, a rerun reads the results back
    scratch = ["scratch", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--target", "0.5",
               "--seeds", "2", "--jobs", "1", "--epochs", "1"]  # fmt: skip
    assert compare.main(scratch) == 0
    report = json.loads((out / "results" / "scratch-e1-0.5.json").read_text())
    target = json.loads((out / "results" / "target-0.5.json").read_text())["rows"]
    assert list(report["rows"]) == ["discovered", "uniform"]
    assert report["rows"]["discovered"]["macs"] == target["discovered (super-network weights)"]["macs"]
    assert report["rows"]["uniform"]["macs"] == target["uniform (trained weights)"]["macs"]
    assert all(len(row["top1"]) == 2 for row in report["rows"].values())
    trained = sorted((out / "scratch-e1").rglob("result.json"))
    assert len(trained) == 4
    stamp = {p: p.stat().st_mtime_ns for p in trained}
    assert compare.main(scratch) == 0
    assert {p: p.stat().st_mtime_ns for p in trained} == stamp
    with pytest.raises(SystemExit, match="run this target first"):
        compare.main([*scratch, "--target", "0.3"])

    # the table of the folder: every target, NetAdaptV1's report, an ablation folder's discovered network
    assert compare.main(["table", "--size", "smoke", "--out", str(out), "--ablation", str(out)]) == 0
    text = capsys.readouterr().out
    assert "NetAdaptV1, 1 batches per sample" in text and "Ablations at 50% of the MACs" in text
    assert "From scratch: target 50% of the initial network's MACs, every network trained 1 epochs" in text
    assert "+0.00 [+0.00, +0.00] |" in text  # its own discovered-only report: the same networks


def test_paired_standard_error_of_two_accuracies() -> None:
    noise = _load("search_diagnostics")
    a = torch.tensor([True] * 60 + [False] * 40)
    assert noise.paired_se(a, a) == 0  # the same predictions: no noise in their difference
    b = a.clone()
    b[:10] = False  # ten images only the first gets right
    assert noise.paired_se(a, b) == pytest.approx((10 - 100 / 100) ** 0.5 / 100)
    c = ~a  # always disagreeing (anti-correlated): more than two independent scores' noise
    assert noise.paired_se(a, c) == pytest.approx((100 - 20**2 / 100) ** 0.5 / 100)
    assert noise.paired_se(a, c) > (2 * 0.6 * 0.4 / 100) ** 0.5


def _modelled_latency(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]):
    """A deterministic stand-in for a timer: 2 µs per call plus 1 ms per million multiply-adds
    (counted by torch.utils.flop_counter), so the test does not depend on the machine's load."""
    from torch.utils.flop_counter import FlopCounterMode

    from netadapt.resources.timing import Timing

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    ms = 0.002 + counter.get_total_flops() / 2 / 1e6
    return Timing.from_samples([ms, ms, ms])


def _modelled_table(supernet, lut: dict, root: Path) -> Path:
    """compare_cifar.latency_table with the modelled timer (same file name, same builder)."""
    from netadapt.resources.lut_build import build_table

    path = root / f"lut-{lut['backend']}-{lut['threads']}t.json"
    build_table(supernet, path, measure=_modelled_latency, passes=lut["passes"], calibrate=lut["calibrate"],
                network_rounds=lut["rounds"], progress=False)  # fmt: skip
    return path


def test_smoke_latency_run(
    cifar_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The table's timings are modelled (_modelled_latency): measured on a loaded 2-core machine, the
    # smoke network's latency was bound by per-operation overhead and noisy enough that no uniform
    # width landed within 2% of the discovered network's in one run of four.  The networks'
    # latencies in the report (and Torch-Pruning's matching) are still measured.
    monkeypatch.setattr(compare, "latency_table", _modelled_table)
    out = tmp_path / "compare"
    args = ["run", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--target", "0.95", "--seeds", "1",
            "--jobs", "1", "--threads", "1", "--metric", "latency"]  # fmt: skip
    assert compare.main(args) == 0
    table = json.loads((out / "lut-torch-1t.json").read_text())
    assert table["format"] == "netadapt.latency_table" and table["complete"]
    assert (out / "search-latency-0.95" / "final_arch.json").exists()
    assert not (out / "target-0.5").exists() and not (out / "results" / "target-0.5.json").exists()  # MAC results untouched
    report = json.loads((out / "results" / "target-latency-0.95.json").read_text())
    assert report["metric"] == "latency" and report["budget_latency_ms"] <= 0.95 * report["full_latency_ms"] * 1.001
    rows = report["rows"]
    for name in ("uniform (trained weights)", "uniform (super-network weights)"):
        assert abs(rows[name]["latency_predicted_ms"] / report["budget_latency_ms"] - 1) <= 0.02, name
    assert rows["discovered (super-network weights)"]["latency_predicted_ms"] == pytest.approx(report["budget_latency_ms"])
    for importance in ("magnitude", "taylor"):  # matched on measured latency, or left out with a note saying so
        found = json.loads((out / "target-latency-0.95" / f"pruning-{importance}-r8.json").read_text())
        name = f"Torch-Pruning {importance}, multiples of 8 (trained weights)"
        assert (name in rows) == found["matched"] == (abs(found["error"]) <= 0.02)
        assert found["matched"] or any(importance in note for note in report["notes"])
    # at a latency goal the pruned layers keep multiples of 8 channels (fast on CPU backends)
    pruned = compare.torch_pruned(out / "supernets" / "_pretrained" / "supernet.pt", "magnitude", 0.4, [],
                                  compare.SIZES["smoke"]["prune_steps"], compare.LATENCY_ROUND_TO)  # fmt: skip
    convs = [m.out_channels for m in pruned.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c % 8 == 0 for c in convs) and sum(convs) < sum(
        m.out_channels for m in compare.torch_pruned(out / "supernets" / "_pretrained" / "supernet.pt", "magnitude", 0.0,
                                                     [], 1).modules() if isinstance(m, torch.nn.Conv2d)
    )  # fmt: skip
    assert all(row["latency_measured_ms"] > 0 and len(row["top1"]) == 1 for row in rows.values())
    assert set(json.loads((out / "target-latency-0.95" / "latency.json").read_text())) == set(rows)
    stamp = {p: p.stat().st_mtime_ns for p in [out / "lut-torch-1t.json", *(out / "target-latency-0.95").rglob("*.json")]}
    assert compare.main(args) == 0  # a rerun measures and fine-tunes nothing again
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert compare.main(["table", "--size", "smoke", "--out", str(out)]) == 0
    assert "| latency predicted (ms) | latency measured (ms) |" in capsys.readouterr().out


def test_uniform_neighbours_are_trained_and_interpolated_where_none_matches(
    cifar_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no uniform network lands within 2% (forced here), the two neighbours are fine-tuned
    for every seed and the uniform rows interpolate them at the budget, saying so."""
    import netadapt.search.baseline as baseline
    from netadapt.errors import NetAdaptError

    def no_match(*args, **kwargs):
        raise NetAdaptError("no uniformly scaled network lies within 2% of the budget (forced by the test)")

    monkeypatch.setattr(baseline, "uniform_matching", no_match)
    out = tmp_path / "compare"
    args = ["run", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--target", "0.5", "--seeds", "2",
            "--jobs", "1", "--threads", "1", "--no-pruning"]  # fmt: skip
    assert compare.main(args) == 0
    report = json.loads((out / "results" / "target-0.5.json").read_text())
    rows = report["rows"]
    assert list(rows)[:3] == ["discovered (super-network weights)", "uniform, interpolated (trained weights)",
                              "uniform, interpolated (super-network weights)"]  # fmt: skip
    assert "uniform" not in report and len(report["uniform_neighbours"]) == 2
    budget = report["budget_macs"]
    for weights in ("trained", "super-network"):
        lo, hi = rows[f"uniform below ({weights} weights)"], rows[f"uniform above ({weights} weights)"]
        mid = rows[f"uniform, interpolated ({weights} weights)"]
        assert lo["macs"] <= budget < hi["macs"] and mid["macs"] == pytest.approx(budget)
        w = mid["interpolated"]["weight_of_above"]
        assert 0 <= w < 1
        assert mid["top1"] == pytest.approx([a + w * (b - a) for a, b in zip(lo["top1"], hi["top1"], strict=True)])
    assert any("interpolated" in note for note in report["notes"])
    assert compare.main(["table", "--size", "smoke", "--out", str(out)]) == 0
    assert "Note: no uniformly scaled network lies within 2% of the budget" in capsys.readouterr().out

    # from scratch: both neighbours trained for every seed, interpolated at the discovered MACs
    assert compare.main(["scratch", "--size", "smoke", "--data", str(cifar_like), "--out", str(out), "--seeds", "2",
                         "--jobs", "1", "--epochs", "1"]) == 0  # fmt: skip
    rows = json.loads((out / "results" / "scratch-e1-0.5.json").read_text())["rows"]
    assert list(rows) == ["discovered", "uniform neighbour 1", "uniform neighbour 2", "uniform, interpolated"]
    assert rows["uniform, interpolated"]["macs"] == pytest.approx(rows["discovered"]["macs"])
    assert rows["uniform neighbour 1"]["macs"] <= rows["discovered"]["macs"] < rows["uniform neighbour 2"]["macs"]


def test_trained_weights_over_a_recipes_space(tmp_path: Path) -> None:
    """A recipe with other search-space options (``width_divisor: 8``) starts its super-network from
    the trained network; the uniform network "from the trained weights" is taken from that file's
    weights over the recipe's space, not refused as an architecture of another space."""
    from netadapt import build_supernet
    from netadapt.model.checkpoint import save_supernet
    from netadapt.model.checks import randomize_norm_

    trained = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10)
    randomize_norm_(trained, torch.Generator().manual_seed(0))
    space = build_supernet("mobilenet_v3_small_cifar", width_mult=0.5, num_classes=10, width_divisor=8)
    assert space.space.fingerprint != trained.space.fingerprint
    save_supernet(tmp_path / "trained.pt", trained)
    save_supernet(tmp_path / "supernet.pt", space)
    arch = space.space.uniform(0.5)
    spec = {"kind": "netadapt", "weights": str(tmp_path / "trained.pt"), "arch": arch.to_dict()}
    with pytest.raises(Exception, match="another search space"):
        compare.build_network(spec)
    net = compare.build_network({**spec, "space": str(tmp_path / "supernet.pt")}).eval()
    over = compare.trained_over_space(str(tmp_path / "trained.pt"), str(tmp_path / "supernet.pt"))
    assert over.space.fingerprint == space.space.fingerprint
    assert all(torch.equal(a, b) for a, b in zip(over.state_dict().values(), trained.state_dict().values(), strict=True))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # the extracted network computes what the trained weights do at that architecture
        assert torch.allclose(net(x), over.eval()(x, arch), atol=1e-5)
