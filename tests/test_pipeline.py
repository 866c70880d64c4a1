"""A tiny end-to-end run: super-network → search → final training → export → report."""

import shutil
from pathlib import Path

import pytest
import torch

from netadapt.cli import main
from netadapt.config import load_config
from netadapt.errors import NetAdaptError
from netadapt.export import load_compact, read_metadata
from netadapt.io import load_json
from netadapt.pipeline.cli import DEMO_CONFIG
from netadapt.pipeline.run import RunConfig, run_pipeline
from netadapt.report import write_report
from tests.old_records import rewrite_as_before_the_rename

TINY = [
    "supernet.epochs=2",
    "supernet.progress=false",
    "supernet.data.heldout=100",
    "search.search.samples=3",
    "search.search.layers=10",
    "search.search.initial_reduction=0.15",
    "search.search.target=0.7",
    "search.eval.calibration_images=64",
    "final.epochs=1",
    "final.baseline=true",
    "final.initial=false",
    "latency_backend=torch",
]


def tiny_config(run_dir: Path, *extra: str) -> RunConfig:
    return load_config(RunConfig, DEMO_CONFIG, [*TINY, f"run_dir={run_dir}", *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run")
    report = run_pipeline(tiny_config(run_dir))
    return run_dir, report


def test_end_to_end_run_writes_every_stage(finished_run):
    run_dir, report = finished_run
    for path in ("supernet/supernet.pt", "search/final_arch.json", "final/supernet.pt", "baseline/supernet.pt",
                 "export/model.pt", "export/model.onnx", "export/model.ts", "export/model.pt2", "summary.json",
                 "timing.json"):  # fmt: skip
        assert (run_dir / path).is_file(), path
    summary = load_json(run_dir / "summary.json")
    full_macs = load_json(run_dir / "search" / "trajectory.json")[0]["resource"]
    assert summary["discovered"]["macs"] <= 0.7 * full_macs
    # the uniform baseline is MAC-matched: the closest uniform network within ±2% (issue 15)
    assert abs(summary["baseline"]["macs"] - summary["discovered"]["macs"]) <= 0.02 * summary["discovered"]["macs"]
    assert 0.0 <= summary["discovered"]["accuracy"] <= 1.0
    assert summary["discovered"]["latency_ms"] > 0
    assert set(load_json(run_dir / "timing.json")["steps"]) >= {"supernet_training", "sample_evaluation", "final_training"}
    text = report.read_text()
    # the report holds the run's numbers
    assert f"{100 * summary['discovered']['accuracy']:.2f}" in text
    assert f"{summary['discovered']['macs'] / 1e6:.2f}M" in text
    for png in ("trajectory.png", "family.png", "widths.png"):
        assert (report.parent / png).stat().st_size > 1000


def test_the_baseline_matches_the_resource_the_search_recorded(finished_run):
    """Not a second measurement of the discovered network (a measured latency would carry its noise)."""
    from netadapt.arch.space import Architecture
    from netadapt.layout import RunLayout
    from netadapt.pipeline.run import _recorded_resource

    run_dir, _ = finished_run
    layout = RunLayout(run_dir)
    discovered = Architecture.from_dict(load_json(layout.search_dir / "final_arch.json"))
    assert _recorded_resource(layout, discovered) == load_json(run_dir / "summary.json")["discovered"]["macs"]
    initial = Architecture.from_dict(load_json(layout.search_dir / "trajectory.json")[0]["arch"])
    other = initial.replace(filters=[max(1, f - 1) for f in initial.filters])
    assert _recorded_resource(layout, other) is None  # not searched: measured instead


def test_exported_models_load_and_agree(finished_run):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    run_dir, _ = finished_run
    model = load_compact(run_dir / "export" / "model.pt")
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    session = ort.InferenceSession(str(run_dir / "export" / "model.onnx"), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"input": x.numpy()})
    assert torch.allclose(torch.from_numpy(onnx_out), expected, atol=1e-4)
    scripted = torch.jit.load(str(run_dir / "export" / "model.ts"))
    assert torch.allclose(scripted(x), expected, atol=1e-5)
    program = torch.export.load(str(run_dir / "export" / "model.pt2")).module()
    assert torch.allclose(program(x), expected, atol=1e-5)
    # every file carries the preprocessing and labels (the digits: 16x16, mean 0.5, classes "0".."9")
    meta = model.metadata
    assert meta.classes == tuple(str(i) for i in range(10)) and meta.input_size == 16 and meta.mean == (0.5, 0.5, 0.5)
    for name in ("model.onnx", "model.ts", "model.pt2"):
        assert read_metadata(run_dir / "export" / name) == meta


def test_rerun_resumes_and_skips_finished_stages(finished_run):
    run_dir, _ = finished_run
    supernet = run_dir / "supernet" / "supernet.pt"
    before = supernet.stat().st_mtime_ns
    # an interrupted final stage: its result and everything after it are gone
    (run_dir / "final" / "supernet.pt").unlink()
    (run_dir / "summary.json").unlink()
    report = run_pipeline(tiny_config(run_dir))
    assert report.is_file() and (run_dir / "summary.json").is_file()
    assert supernet.stat().st_mtime_ns == before  # the super-network was not trained again
    # a rerun that finds every stage complete keeps the recorded training time (not ~0 s)
    final_seconds = load_json(run_dir / "timing.json")["steps"]["final_training"]["wall_seconds"]
    assert final_seconds > 0.05
    run_pipeline(tiny_config(run_dir))
    assert load_json(run_dir / "timing.json")["steps"]["final_training"]["wall_seconds"] == final_seconds


def test_a_copied_run_folder_resumes_where_it_is(finished_run, tmp_path):
    """Run folders are relocatable: every stage compares paths relative to its folder."""
    run_dir, _ = finished_run
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, copy)
    trained = {name: (copy / name / "supernet.pt").stat().st_mtime_ns for name in ("supernet", "final", "baseline")}
    report = run_pipeline(tiny_config(copy))
    assert report == copy / "report" / "report.md" and report.is_file()
    assert {name: (copy / name / "supernet.pt").stat().st_mtime_ns for name in trained} == trained  # nothing retrained
    assert not list(copy.rglob(".lock"))


def test_a_run_folder_written_before_the_score_rename_reports_and_resumes(finished_run, tmp_path):
    """A search of an earlier version (each record's score under "accuracy") reports the same
    numbers, and its run resumes."""
    run_dir, report = finished_run
    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy)
    rewrite_as_before_the_rename(copy / "search")
    assert "accuracy" in load_json(copy / "search" / "trajectory.json")[0]

    def search_section(path: Path) -> str:
        text = path.read_text()
        return text[text.index("## Search") : text.index("\n## ", text.index("## Search"))]

    assert "held-out top-1 (%)" in search_section(report)
    assert search_section(write_report(copy)) == search_section(report)
    again = run_pipeline(tiny_config(copy))
    assert search_section(again) == search_section(report)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("summary.json", "[]", "summary.json holds list, not a mapping"),
        ("search/trajectory.json", '{"a": 1}', "trajectory.json holds dict, not a list"),
        ("search/trajectory.json", "[]", "trajectory.json is not a list of search records"),
        ("search/family.json", "[1]", "family.json is not a list of search records"),
    ],
)
def test_a_damaged_record_is_a_one_line_error_of_the_report(finished_run, tmp_path, name, content, message):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run[0], run_dir)
    (run_dir / name).write_text(content)
    with pytest.raises(NetAdaptError, match=message) as info:
        write_report(run_dir)
    assert "\n" not in str(info.value)


def test_run_folder_of_another_config_is_refused(finished_run):
    run_dir, _ = finished_run
    with pytest.raises(NetAdaptError, match="made with another config"):
        run_pipeline(tiny_config(run_dir, "final.epochs=3"))


def test_a_metric_that_cannot_work_stops_the_run_before_training_and_is_mended_in_place(tmp_path, monkeypatch):
    """The search's metric is checked against the built network before stage 1 trains; the run
    folder then takes the mended metric (no stage read it), while a started stage's keys stay fixed."""
    import netadapt.pipeline.run as pipeline

    run_dir = tmp_path / "run"
    with pytest.raises(NetAdaptError, match="unknown metric 'flops'"):
        run_pipeline(tiny_config(run_dir, "search.metric=flops"))
    with pytest.raises(NetAdaptError, match="classification samples are scored by top1, not 'rmse'"):
        run_pipeline(tiny_config(run_dir, "search.score=rmse"))
    assert not list(run_dir.rglob("*.pt"))  # nothing trained

    class FirstStep(Exception):
        pass

    def stop(step: int) -> None:
        raise FirstStep

    real = pipeline.train_supernet
    monkeypatch.setattr(pipeline, "train_supernet", lambda config, **kw: real(config, on_step=stop, **kw))
    with pytest.raises(FirstStep):  # the mended metric passes: stage 1 trains
        run_pipeline(tiny_config(run_dir, "search.metric=params"))
    with pytest.raises(NetAdaptError, match=r"differs in: supernet.seed\)"):
        run_pipeline(tiny_config(run_dir, "search.metric=params", "supernet.seed=5"))


def test_run_cli_bad_config_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("supernet:\n  epochs: three\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: supernet.epochs: expected an integer") and err.count("\n") == 1
    bad.write_text("surpernet: {}\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "unknown config key surpernet" in capsys.readouterr().err


def test_trajectory_transfer_and_distillation(tmp_path):
    """Appendix A.2: the discovered network starts from the last step of a walk along the search
    trajectory; the final training distils from the super-network."""
    import yaml

    torch.set_num_threads(1)
    config = tiny_config(
        tmp_path, "final.init=trajectory", "final.trajectory_steps=2", "final.trajectory_epochs=1",
        "final.distill=true", "final.baseline=false", "search.search.initial_reduction=0.1", "export=[pytorch]",
    )  # fmt: skip
    run_pipeline(config)
    steps = sorted((tmp_path / "final").glob("trajectory_*/supernet.pt"))
    assert len(steps) == 2
    final = yaml.safe_load((tmp_path / "final" / "config.yaml").read_text())
    assert final["init_from"] == str(steps[-1]) and final["teacher"].endswith("supernet/supernet.pt")
    first = yaml.safe_load((steps[0].parent / "config.yaml").read_text())
    assert first["init_from"].endswith("supernet/supernet.pt") and first["epochs"] == 1
