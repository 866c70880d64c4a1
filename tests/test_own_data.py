"""`netadapt run --data FOLDER` on a data set the developers do not have (tests/shapes.py: 28×28
grayscale shapes): no config, everything measured, an exported model that explains itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from netadapt.cli import main
from netadapt.config import config_from_dict, load_config
from netadapt.data import read_image
from netadapt.data.profile import choose_input, profile_folder
from netadapt.errors import NetAdaptError
from netadapt.export import load_compact, read_metadata
from netadapt.io import load_json
from netadapt.pipeline.presets import BUDGETS, PUBLIC_BUDGETS, run_config_for_data
from netadapt.pipeline.run import RunConfig

from .shapes import CLASSES, make_shapes_folder


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes_folder(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def shapes_run(shapes, tmp_path_factory):
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("run") / "shapes"
    assert main(["run", "--data", str(shapes), "--budget", "smoke", "--run-dir", str(run_dir)]) == 0
    return run_dir


def test_profile_measures_size_colour_classes_and_statistics(shapes):
    profile = profile_folder(shapes)
    assert profile.classes == CLASSES and profile.train_images == 240 and profile.val_images == 80
    assert profile.val_dir == "test" and profile.grayscale
    assert (profile.image_size, profile.preset) == (28, "cifar")
    pixels = np.stack([np.asarray(Image.open(p), dtype=np.float64) / 255 for p in sorted((shapes / "train").rglob("*.png"))])
    # every training image was sampled (240 < 500): the statistics are the folder's own
    assert profile.mean == pytest.approx((pixels.mean(),) * 3, abs=1e-4)
    assert profile.std == pytest.approx((pixels.std(),) * 3, abs=1e-4)


@pytest.mark.parametrize(
    "side, expected",
    [(28, (28, "cifar")), (64, (64, "cifar")), (96, (96, "imagenet")), (100, (96, "imagenet")), (500, (224, "imagenet"))],
)
def test_input_size_rule(side, expected):
    assert choose_input(side) == expected


def test_profile_explains_a_wrong_layout(tmp_path):
    (tmp_path / "cats").mkdir()
    with pytest.raises(NetAdaptError, match=r"has no train/ folder: expected .*/train/<class>/<images>"):
        profile_folder(tmp_path)


def test_every_budget_makes_a_valid_config(shapes):
    profile = profile_folder(shapes)
    with pytest.raises(NetAdaptError, match="240 training images; the paper budget needs more than 280"):
        run_config_for_data(profile, "paper")  # 216 images after the held-out ones: less than a batch of 256
    small = config_from_dict(RunConfig, run_config_for_data(profile, "quick"))
    assert small.supernet.epochs == BUDGETS["quick"].max_epochs  # 6 epochs at 10k images: 278 here, capped
    big = type(profile)(**{**profile.to_dict(), "train_images": 10_000})
    for budget in PUBLIC_BUDGETS:
        config = config_from_dict(RunConfig, run_config_for_data(big, budget, target=0.4, metric="params"))
        b = BUDGETS[budget]
        assert config.supernet.epochs == min(b.max_epochs, max(b.min_epochs, round(b.supernet_epochs * 10_000 / 9_000)))
        assert config.supernet.data.image_size == 28 and config.supernet.data.mean == profile.mean
        assert config.supernet.model.name == "mobilenet_v1_cifar" and config.supernet.model.options == {"removal": "block"}
        assert config.search.search.target == 0.4 and config.search.metric == "params"
        assert config.final.baseline == b.train_baseline and config.final.initial == b.train_initial
    # ten times the images: about a tenth of the epochs (the time stays about the same)
    huge = type(profile)(**{**profile.to_dict(), "train_images": 100_000})
    assert config_from_dict(RunConfig, run_config_for_data(huge, "standard")).supernet.epochs == 5  # its lower bound


def test_run_on_a_folder_exports_a_self_describing_model(shapes, shapes_run, capsys):
    run_dir = shapes_run
    # the resolved config and the measurements are in the run folder, and the config loads as it is
    config = load_config(RunConfig, run_dir / "config.yaml")
    assert config.supernet.data.root == str(shapes) and config.supernet.data.image_size == 28
    assert load_json(run_dir / "data_profile.json")["grayscale"] is True

    model = load_compact(run_dir / "export" / "model.pt")  # alone: no super-network, no config
    meta = model.metadata
    assert model.classes == CLASSES == meta.classes
    assert meta.mean == config.supernet.data.mean and meta.std == config.supernet.data.std
    assert (meta.input_size, meta.in_channels, meta.preset, meta.grayscale) == (28, 3, "cifar", True)
    assert meta.macs == load_json(run_dir / "summary.json")["discovered"]["macs"]
    # preprocessing and labels from the file alone reproduce the network's answer
    image = read_image(next((shapes / "test" / "disc").iterdir()))  # (3, 28, 28) uint8: gray as 3 equal channels
    x = meta.preprocess(image)
    assert x.shape == (1, 3, 28, 28)
    with torch.no_grad():
        logits = model(x)
    assert meta.label(logits)[0] in CLASSES
    for name in ("model.onnx", "model.ts", "model.pt2", "model.pt"):
        assert read_metadata(run_dir / "export" / name) == meta, name
    assert json.loads((run_dir / "export" / "metadata.json").read_text())["classes"] == list(CLASSES)
    program = torch.export.load(str(run_dir / "export" / "model.pt2")).module()
    with torch.no_grad():
        assert torch.allclose(program(x), logits, atol=1e-5)

    # the report states every split's image count
    report = (run_dir / "report" / "report.md").read_text()
    assert "| training | 216 |" in report and "| held-out | 24 |" in report and "| validation | 80 |" in report


def test_rerun_resumes_and_print_config_round_trips(shapes, shapes_run, capsys):
    run_dir = shapes_run
    capsys.readouterr()
    args = ["run", "--data", str(shapes), "--budget", "smoke", "--run-dir", str(run_dir)]
    assert main([*args, "--print-config"]) == 0
    text = capsys.readouterr().out
    assert "# " in text and "group_size: 8" in text  # commented, recipe written out
    printed = config_from_dict(RunConfig, yaml.safe_load(text))
    assert printed == load_config(RunConfig, run_dir / "config.yaml")
    assert main(args) == 0  # every stage is complete: only export and report run again
    assert "discovered (NetAdaptV2)" in capsys.readouterr().out


def test_init_writes_a_config_to_edit(shapes, tmp_path, capsys):
    out = tmp_path / "mine.yaml"
    assert main(["init", "--data", str(shapes), "--budget", "smoke", "--out", str(out), "--run-dir", "runs/mine"]) == 0
    config = load_config(RunConfig, out)
    assert config.run_dir == "runs/mine" and config.supernet.data.preset == "cifar"
    assert main(["init", "--data", str(shapes), "--out", str(out)]) == 2
    assert "exists; use --force" in capsys.readouterr().err
    assert main(["run", "--config", str(out), "--data", str(shapes)]) == 2
    assert "not both" in capsys.readouterr().err
    # a config that could not run is not written
    for extra, message in [
        (["--model", "nosuch"], "unknown model 'nosuch'"),
        (["--metric", "flops"], "unknown metric 'flops'"),
        (["--model", "fastdepth"], "fastdepth is a depth network"),
        (["--metric", "latency:missing.json"], "latency table missing.json does not exist"),
    ]:
        assert main(["init", "--data", str(shapes), *extra, "--out", str(tmp_path / "no.yaml")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "no.yaml").exists()
    assert main(["init", "--data", str(shapes), "--out", str(tmp_path)]) == 2
    assert "is a folder; --out names the config file" in capsys.readouterr().err


def test_data_options_do_not_apply_to_a_config_file(tmp_path, capsys):
    assert main(["run", "--config", "configs/cifar10.yaml", "--target", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "--target apply to --data FOLDER" in err and "--set search.search.target=0.3" in err
    assert main(["run"]) == 2
    assert "give --data FOLDER" in capsys.readouterr().err
