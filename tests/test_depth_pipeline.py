"""Depth search and the whole depth flow (paper §4.2, appendix A.2) on tiny synthetic scenes:
samples are selected by a depth metric in its own direction, the discovered network is trained
along the search trajectory, exported, and reported with depth metrics marked "synthetic"."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from netadapt.arch.space import Architecture
from netadapt.cli import main
from netadapt.config import load_config
from netadapt.data import build_search_loaders
from netadapt.data.synthetic import render_scene
from netadapt.errors import NetAdaptError
from netadapt.export import load_compact
from netadapt.io import load_json, read_jsonl
from netadapt.model.checkpoint import load_supernet
from netadapt.pipeline.run import RunConfig, run_pipeline
from netadapt.search import SearchConfig, SearchRunConfig, run_search
from netadapt.search.evaluate import EvalConfig, recalibrate_bn_, take_images
from netadapt.train import SupernetTrainConfig, train_supernet

torch.set_num_threads(1)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "depth_synthetic.yaml"
CALIBRATION = 32


@pytest.fixture(scope="module")
def supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("depth_supernet")
    config = load_config(
        SupernetTrainConfig,
        None,
        [f"run_dir={run_dir}", "epochs=2", "model.name=fastdepth", "data.dataset=synthetic_depth", "data.image_size=32",
         "data.synthetic_train=80", "data.synthetic_val=8", "data.heldout=12", "data.batch_size=16", "optim.name=sgd",
         "optim.lr=0.05", "optim.lr_batch=16", "ema_decay=null", "progress=false", "tensorboard=false"],
    )  # fmt: skip
    return train_supernet(config)


def _search(supernet: Path, run_dir: Path, score: str) -> None:
    run_search(
        SearchRunConfig(
            supernet=str(supernet),
            score=score,
            run_dir=str(run_dir),
            batch_size=5,  # several held-out batches: the per-image mean spans them
            search=SearchConfig(samples=4, layers=8, initial_reduction=0.2, target=0.6),
            eval=EvalConfig(calibration_images=CALIBRATION),
        )
    )


def _rmse_by_hand(net: torch.nn.Module, arch: Architecture, heldout, calibration) -> float:
    """FastDepth's RMSE of ``arch``, computed here from scratch: BN recalibrated on the search's
    calibration images, then each held-out image's RMSE over its valid pixels, averaged.  In the
    channels-last memory format, as the search runs it (``search.eval.channels_last``): this
    barely trained network has channels of variance ~1e-10, where the other format's rounding
    moves later BatchNorm statistics enough to change the RMSE by up to 1e-3 (relative)."""
    compact = net.extract(arch).to(memory_format=torch.channels_last)
    recalibrate_bn_(compact, (x for x, _ in calibration))
    per_image = []
    with torch.no_grad():
        for x, y in heldout:
            pred = compact(x)
            for p, g in zip(pred, y, strict=True):
                valid = g > 0
                per_image.append(math.sqrt(float(((p - g)[valid] ** 2).mean())))
    return sum(per_image) / len(per_image)


def test_search_selects_the_sample_with_the_lowest_rmse(supernet: Path, tmp_path: Path):
    run_dir = tmp_path / "search"
    _search(supernet, run_dir, "rmse")
    settings = load_json(run_dir / "search_config.json")
    assert settings["config"]["higher_is_better"] is False
    assert settings["metadata"]["score"] == "rmse" and settings["metadata"]["task"] == "depth"
    history = read_jsonl(run_dir / "history.jsonl")
    assert {r["score_name"] for r in history} == {"rmse"}
    assert all(p["score_name"] == "rmse" for p in load_json(run_dir / "trajectory.json"))

    # the recorded scores are the held-out RMSE, recomputed independently for every sample of iteration 1
    net, _ = load_supernet(supernet)
    heldout, calibration = build_search_loaders(supernet.parent, batch_size=5, calibration_images=CALIBRATION, seed=0)
    heldout, calibration = take_images(heldout, 10**6), take_images(calibration, CALIBRATION)
    first = [r for r in history if r["iteration"] == 1 and not r["discarded"]]
    assert len(first) >= 2
    by_hand = [_rmse_by_hand(net, Architecture.from_dict(r["arch"]), heldout, calibration) for r in first]
    for record, value in zip(first, by_hand, strict=True):
        assert record["score"] == pytest.approx(value, rel=1e-4)
    assert len({round(v, 6) for v in by_hand}) > 1  # a real choice
    (chosen,) = [r for r in first if r["selected"]]
    assert chosen["score"] == min(r["score"] for r in first)
    assert by_hand[first.index(chosen)] == min(by_hand)  # the best by RMSE, lower is better
    for iteration in {r["iteration"] for r in history if r["iteration"] > 1}:
        rows = [r for r in history if r["iteration"] == iteration and not r["discarded"]]
        assert next(r for r in rows if r["selected"])["score"] == min(r["score"] for r in rows)


def test_search_by_delta1_selects_the_highest(supernet: Path, tmp_path: Path):
    run_dir = tmp_path / "search"
    _search(supernet, run_dir, "delta1")
    assert load_json(run_dir / "search_config.json")["config"]["higher_is_better"] is True
    history = read_jsonl(run_dir / "history.jsonl")
    for iteration in {r["iteration"] for r in history if r["iteration"] > 0}:
        rows = [r for r in history if r["iteration"] == iteration and not r["discarded"]]
        assert all(0.0 <= r["score"] <= 1.0 and r["score_name"] == "delta1" for r in rows)
        assert next(r for r in rows if r["selected"])["score"] == max(r["score"] for r in rows)


TINY = [
    "supernet.epochs=1",
    "supernet.data.synthetic_train=80",
    "supernet.data.synthetic_val=8",
    "supernet.data.heldout=16",
    "search.search.samples=3",
    "search.search.initial_reduction=0.2",
    "search.search.target=0.6",
    "search.eval.calibration_images=32",
    "final.epochs=1",
    "final.trajectory_epochs=1",
    "final.trajectory_steps=3",
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    run_dir = tmp_path_factory.mktemp("depth_run")
    report = run_pipeline(load_config(RunConfig, CONFIG, [*TINY, f"run_dir={run_dir}"]))
    return run_dir, report


def test_depth_run_trains_along_the_trajectory_and_summarizes_depth_metrics(finished_run):
    run_dir, _ = finished_run
    summary = load_json(run_dir / "summary.json")
    assert (summary["task"], summary["dataset"], summary["score"]) == ("depth", "synthetic_depth", "rmse")
    for key in ("initial", "discovered", "baseline"):
        entry = summary[key]
        assert "accuracy" not in entry
        assert all(math.isfinite(entry[m]) for m in ("rmse", "rel", "delta1", "delta2", "delta3", "mae"))
        assert 0.0 <= entry["delta1"] <= entry["delta2"] <= entry["delta3"] <= 1.0
        assert entry["latency_ms"] > 0
    trajectory = load_json(run_dir / "search" / "trajectory.json")
    assert summary["discovered"]["macs"] <= 0.6 * trajectory[0]["resource"]
    # appendix A.2: every intermediate step of the trajectory trained, each from the previous one's weights
    steps = trajectory[1:-1]
    assert steps, "the tiny search should take at least two iterations"
    previous = run_dir / "supernet" / "supernet.pt"
    for i, point in enumerate(steps):
        folder = run_dir / "final" / f"trajectory_{i:02d}"
        assert load_json(folder / "architecture.json")["layers"] == point["arch"]["layers"]
        assert load_config(SupernetTrainConfig, folder / "config.yaml").init_from == str(previous)
        previous = folder / "supernet.pt"
    assert load_config(SupernetTrainConfig, run_dir / "final" / "config.yaml").init_from == str(previous)
    final_metrics = read_jsonl(run_dir / "final" / "metrics.jsonl")[-1]
    assert summary["discovered"]["rmse"] == final_metrics["val_rmse"]


def test_depth_export_loads_and_agrees(finished_run):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    run_dir, _ = finished_run
    model = load_compact(run_dir / "export" / "model.pt")
    # scenes like the ones it was trained on (new ones), preprocessed as the file says
    pixels = torch.stack([render_scene(32, torch.Generator().manual_seed(1000 + i))[0] for i in range(2)])
    x = model.metadata.preprocess(pixels)
    with torch.no_grad():
        expected = model(x)
    assert expected.shape == (2, 1, 32, 32)
    trained, _ = load_supernet(run_dir / "final" / "supernet.pt")
    arch = Architecture.from_dict(load_json(run_dir / "search" / "final_arch.json"))
    # to 1e-5 of the output's scale: the briefly trained network's depths reach ~1e5 on some runs
    # (its BatchNorm statistics, recomputed on 64 scenes, have channels of variance ~1e-10), where
    # float32 rounding between runtimes differs by ~1e-6 of that scale (measured: 0.08 at 9.5e4),
    # also on outputs near 0 (cancellation), so no bound per element holds.  The super-network at
    # the architecture against its extraction too: their convolutions sum over different channel
    # counts (measured on an Intel Xeon VM: 3.5e-4 at an output of 24, scale 271, 1.3e-6 of it)
    scale = float(expected.abs().max())
    with torch.no_grad():
        assert torch.allclose(trained.eval()(x, arch), expected, rtol=0, atol=1e-5 * scale)
    session = ort.InferenceSession(str(run_dir / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    assert torch.allclose(torch.from_numpy(onnx_out), expected, rtol=0, atol=1e-5 * scale)
    assert torch.allclose(torch.jit.load(str(run_dir / "export" / "model.ts"))(x), expected, atol=1e-5, rtol=1e-5)


def test_depth_report_and_command_line_show_synthetic_depth_metrics(finished_run, capsys):
    run_dir, report = finished_run
    summary = load_json(run_dir / "summary.json")
    text = report.read_text()
    for column in ("RMSE (m, synthetic)", "REL (synthetic)", "δ1 (%, synthetic)", "δ3 (%, synthetic)"):
        assert column in text
    assert "top-1" not in text
    assert f"{summary['discovered']['rmse']:.3f}" in text and f"{100 * summary['discovered']['delta1']:.2f}" in text
    assert "held-out RMSE (m, synthetic)" in text and "lower is better" in text
    # rerunning the finished run only prints its summary
    assert main(["run", "--config", str(CONFIG), "--run-dir", str(run_dir), *(f"--set={s}" for s in TINY)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC depth scenes" in out and "RMSE m synth" in out and "δ1 % synth" in out
    assert f"{summary['discovered']['rmse']:.3f}" in out


def test_nyu_config_holds_the_papers_setup_and_names_missing_data(tmp_path: Path):
    config = load_config(RunConfig, CONFIG.with_name("nyu_fastdepth.yaml"), [f"run_dir={tmp_path / 'run'}"])
    data = config.supernet.data
    assert (config.supernet.model.name, data.dataset, data.resolved_size(), data.heldout) == ("fastdepth", "nyu", 224, 2000)
    assert (data.batch_size, config.supernet.epochs, config.supernet.optim.lr) == (16, 50, 0.025)  # §4.2.1
    assert (config.search.search.samples, config.search.search.initial_reduction) == (150, 0.015)
    assert config.search.metric.startswith("latency:") and config.search.score == "rmse"
    assert (config.final.init, config.final.trajectory_epochs) == ("trajectory", 2)  # appendix A.2
    with pytest.raises(NetAdaptError, match=r"NYU Depth V2 folder .*nyudepthv2 does not exist"):
        run_pipeline(config)
