"""``netadapt train-supernet`` through its own argument parser."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from netadapt.errors import NetAdaptError
from netadapt.model.checkpoint import load_supernet
from netadapt.train.cli import register

torch.set_num_threads(1)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="netadapt")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_train_supernet_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "epochs: 1\nmodel: {width_mult: 0.25, options: {num_widths: 3}}\n"
        "data: {batch_size: 64, heldout: 50, subset: 128}\nprogress: false\ntensorboard: false\n"
    )
    args = _parse(["train-supernet", "--config", str(config), "--set", "seed=3", "--run-dir", str(tmp_path / "run")])
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "run" / "supernet.pt")
    net, extra = load_supernet(out)
    assert extra["train"]["seed"] == 3 and extra["train"]["run_dir"] == str(tmp_path / "run")
    assert all(len(layer.widths) <= 3 for layer in net.space.layers)


def test_bad_config_is_a_one_line_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("optim: {name: adam}\n")
    args = _parse(["train-supernet", "--config", str(config)])
    with pytest.raises(NetAdaptError, match=r"optim\.name: 'adam' is not one of") as info:
        args.func(args)
    assert "\n" not in str(info.value)
    args = _parse(["train-supernet", "--config", str(tmp_path / "missing.yaml")])
    with pytest.raises(NetAdaptError, match="does not exist"):
        args.func(args)
