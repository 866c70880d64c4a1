"""``netadapt lut build`` and ``netadapt lut check`` through their own parser."""

from __future__ import annotations

import argparse
import json

import pytest

from netadapt.errors import NetAdaptError
from netadapt.model.checkpoint import save_supernet
from netadapt.model.supernet import build_supernet
from netadapt.resources import cli
from netadapt.resources.cli import register
from netadapt.resources.lut import load_table
from netadapt.resources.lut_build import CheckResult, CheckRow


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="netadapt")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_build_then_check(tmp_path, capsys):
    # a super-network file fixes a small search space (3 widths, no bypass): a few dozen ops
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10, num_widths=3, bypass="none")
    ckpt = save_supernet(tmp_path / "supernet.pt", net)
    out = tmp_path / "lut.json"
    common = ["--backend", "torch", "--threads", "1", "--warmup", "1", "--min-time", "0.002", "--no-progress"]
    assert run(["lut", "build", str(ckpt), "--out", str(out), "--calibrate", "2", "--network-time", "0.02", *common]) == 0
    table = load_table(out)
    assert table.complete and table.model == "mobilenet_v1_cifar" and table.space == net.space.fingerprint
    assert table.backend == "torch" and table.calibration["networks"]
    assert "predicted latency of the full network" in capsys.readouterr().out

    report = tmp_path / "check.json"
    code = run(
        ["lut", "check", str(out), "--samples", "3", "--min-time", "0.005", "--rounds", "2", "--passes", "1",
         "--out", str(report), "--no-progress"]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "sub-networks within ±10%" in text and "mean absolute error" in text
    data = json.loads(report.read_text())
    assert data["samples"] == 3 and len(data["rows"]) == 3 and 0.0 <= data["within"] <= 1.0
    assert run(["lut", "check", str(out), "--samples", "1", "--min-time", "0.002", "--require", "1.01", "--no-progress"]) == 1
    capsys.readouterr()
    refit = ["lut", "check", str(out), "--samples", "2", "--min-time", "0.005", "--rounds", "1", "--passes", "1", "--refit"]
    assert run([*refit, "--no-progress"]) == 0
    assert "the table was refit to them" in capsys.readouterr().out
    assert load_table(out).calibration["measured_with_check"] == 2


def test_build_takes_the_zoo_models_search_space_options(tmp_path):
    """`lut build MODEL --option width_divisor=8` builds the table of that space (docs/resources.md)."""
    out = tmp_path / "lut.json"
    common = ["--backend", "torch", "--threads", "1", "--warmup", "1", "--min-time", "0.002", "--no-progress"]
    args = ["lut", "build", "mobilenet_v1_cifar", "--width-mult", "0.25", "--input-size", "16", "--option", "num_widths=2"]
    assert run([*args, "--option", "bypass=none", "--out", str(out), "--calibrate", "2", "--network-time", "0.02", *common]) == 0
    want = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_widths=2, bypass="none")
    assert load_table(out).space == want.space.fingerprint
    with pytest.raises(NetAdaptError, match="--option apply to zoo models"):
        run(["lut", "build", str(save_supernet(tmp_path / "s.pt", want)), "--option", "num_widths=3", "--out", str(out)])


def test_bad_arguments(tmp_path):
    with pytest.raises(NetAdaptError, match="unknown model"):
        run(["lut", "build", "resnet9000", "--out", str(tmp_path / "x.json")])
    with pytest.raises(NetAdaptError, match="--grid"):
        run(["lut", "build", "mobilenet_v1_cifar", "--grid", "0", "--out", str(tmp_path / "x.json")])
    with pytest.raises(NetAdaptError, match="does not exist"):
        run(["lut", "check", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        run(["lut", "build", "mobilenet_v1_cifar", "--out", "x.json", "--backend", "tpu"])


def test_check_passes_its_measuring_options_on(tmp_path, monkeypatch):
    """``--passes`` and ``--rounds`` reach the check (``--passes`` was once parsed and dropped)."""
    net = build_supernet("mobilenet_v1_cifar", width_mult=0.25, input_size=16, num_classes=10, num_widths=3, bypass="none")
    out = tmp_path / "lut.json"
    common = ["--backend", "torch", "--warmup", "1", "--min-time", "0.002", "--no-progress"]
    assert run(["lut", "build", str(save_supernet(tmp_path / "s.pt", net)), "--out", str(out), "--calibrate", "0", *common]) == 0
    seen = {}

    def fake_check(table, supernet, **options):
        seen.update(options, min_time=options["measure"].min_time)
        return CheckResult((CheckRow(supernet.space.full(), 1.0, 1.0),))

    monkeypatch.setattr(cli, "check_table", fake_check)
    assert (
        run(["lut", "check", str(out), "--passes", "3", "--rounds", "5", "--chunk", "7", "--min-time", "0.4", "--no-progress"])
        == 0
    )
    assert (seen["passes"], seen["rounds"], seen["chunk"], seen["min_time"]) == (3, 5, 7, 0.4)
