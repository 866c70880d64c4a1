"""Every shipped config trains: each file under ``configs/`` (and the demo's) runs its own
super-network training -- its model, search-space options, recipe, sampler and optimizer -- for a
few dozen steps on tiny data, and its training loss falls (the ImageNet configs, whose paper
recipe is tuned for ImageNet's hundreds of thousands of steps, run as slow tests that check the
training stays finite).

Only what a 2-core test cannot afford changes: the data (576 images of four grey shapes at
16x16, ``tests/shapes.py``, for image classification; 160 synthetic scenes at 32x32, the smallest
FastDepth takes, for depth), the batch (32), the number of epochs, and the schedule's epoch lengths, which are scaled to the short run (an ImageNet config
warms up for 5 of its epochs; here an "epoch" is a handful of steps).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from netadapt.config import config_to_dict, load_config, read_yaml_mapping
from netadapt.errors import NetAdaptError
from netadapt.pipeline.cli import DEMO_CONFIG
from netadapt.pipeline.run import RunConfig
from netadapt.train import SupernetTrainConfig, train_supernet
from netadapt.train.recipes import RECIPES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml")) + [DEMO_CONFIG]
EPOCHS = 10


def _supernet_mapping(path: Path) -> dict:
    """The file's super-network training config, resolved (recipe applied), as a mapping."""
    raw = read_yaml_mapping(path)
    config = load_config(RunConfig, path).supernet if "supernet" in raw else load_config(SupernetTrainConfig, path)
    return config_to_dict(config)


def _shrunk(mapping: dict, tmp_path: Path, shapes: Path) -> dict:
    """The same training at test size (see the module docstring)."""
    data = mapping["data"]
    if data["dataset"] in ("nyu", "synthetic_depth"):
        tiny = {"dataset": "synthetic_depth", "root": None, "image_size": 32, "synthetic_train": 160,
                "synthetic_val": 16, "heldout": 16}  # fmt: skip
    else:
        tiny = {"dataset": "folder", "root": str(shapes), "preset": "none", "image_size": 16, "mean": None, "std": None,
                "subset": None, "heldout": 64, "val_subset": None, "train_dir": "train", "val_dir": None}  # fmt: skip
    mapping["data"] = {**data, **tiny, "batch_size": 32, "eval_batch_size": 32, "workers": 0}
    mapping["model"]["input_size"] = None  # follows the data
    scale = EPOCHS / mapping["epochs"]
    schedule = mapping["schedule"]
    for key in ("warmup_epochs", "decay_epochs"):
        if schedule.get(key):
            schedule[key] = schedule[key] * scale
    od = mapping["ordered_dropout"]
    for key in ("full_epochs", "width_epochs"):
        if od.get(key):
            od[key] = od[key] * scale
    mapping.update(epochs=EPOCHS, run_dir=str(tmp_path), progress=False, tensorboard=False, eval_every=10**6,
                   val_calibration_images=32, init_from=None, init_encoder=None, teacher=None, device="cpu",
                   precision="fp32")  # fmt: skip
    return mapping


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    from tests.shapes import make_shapes_folder

    return make_shapes_folder(tmp_path_factory.mktemp("shapes"), train_per_class=144, test_per_class=8)


def _marked(path: Path):
    """The ImageNet configs hold the paper's recipe (RMSProp at 0.064 per 1,024 images, 5 warm-up
    epochs, 100 epochs of ImageNet): tuned for hundreds of thousands of steps, it does not learn in
    a hundred (docs/training.md), and their large networks cost minutes here -- slow tests that
    check the training runs and stays finite."""
    return pytest.param(path, marks=pytest.mark.slow, id=path.name) if "imagenet" in path.name else path


@pytest.mark.parametrize("path", [_marked(p) for p in SHIPPED], ids=lambda p: p.name)
def test_every_shipped_config_trains(path, tmp_path, shapes):
    from netadapt.config import config_from_dict

    torch.set_num_threads(1)
    mapping = _shrunk(_supernet_mapping(path), tmp_path / "run", shapes)
    train_supernet(config_from_dict(SupernetTrainConfig, mapping))
    losses = [json.loads(line)["train_loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == EPOCHS
    assert all(map(lambda x: x == x and x < 1e3, losses)), losses  # finite
    if "imagenet" not in path.name:
        assert min(losses[-2:]) < 0.95 * losses[0], f"{path.name}: training loss did not fall: {losses}"


@pytest.mark.parametrize("recipe", sorted(set(RECIPES) - {"small", "paper"}))
def test_every_other_recipe_trains(recipe, tmp_path, shapes):
    """Each recipe no shipped config names (``small`` and ``paper`` are tried above through the
    configs), on the digits config's network: its training loss falls."""
    from netadapt.config import config_from_dict

    torch.set_num_threads(1)
    config = load_config(SupernetTrainConfig, ROOT / "configs" / "supernet_digits.yaml", [f"recipe={recipe}"])
    train_supernet(config_from_dict(SupernetTrainConfig, _shrunk(config_to_dict(config), tmp_path / "run", shapes)))
    losses = [json.loads(line)["train_loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == EPOCHS and min(losses[-2:]) < 0.95 * losses[0], f"{recipe}: training loss did not fall: {losses}"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("supernet.optim.momentum=-5", r"optim.momentum must be in \[0, 1\)"),
        ("supernet.optim.weight_decay=-1", "optim.weight_decay not negative"),
        ("supernet.model.width_mult=0", "model.width_mult must be positive"),
        ("supernet.model.num_classes=0", "model.num_classes must be positive"),
        ("supernet.data.std=[0, 0, 0]", "data.std must be positive in every channel"),
        ("supernet.epochs=-1", "epochs must be at least 1, got -1"),
        ("final.lr_scale=0", "final.lr_scale must be positive"),
        ("latency_backend=bogus", "latency_backend: unknown backend 'bogus'"),
    ],
)
def test_settings_used_late_in_a_run_are_checked_when_the_config_loads(override, message):
    """A run must not train a super-network for hours, then stop at a setting of a later stage."""
    with pytest.raises(NetAdaptError, match=message) as caught:
        load_config(RunConfig, None, ["supernet.recipe=small", override])
    assert "\n" not in str(caught.value)


def test_train_supernet_refuses_a_mapping_for_its_config():
    with pytest.raises(NetAdaptError, match="train_supernet takes a SupernetTrainConfig"):
        train_supernet({"epochs": 1})


def test_the_hint_for_a_weak_initial_network_suggests_only_settings_that_are_off():
    from netadapt.tasks import task_named
    from netadapt.train.config import OrderedDropoutConfig
    from netadapt.train.loop import _explain_validation

    lines: list[str] = []

    def info(message, *args):
        lines.append(message % args)

    record = {"val_top1": 0.5, "val_top1_half": 0.6}
    task = task_named("classification")
    _explain_validation(record, task, info, OrderedDropoutConfig(sandwich=True))
    assert "try ordered_dropout.largest_pass / ordered_dropout.distill, or recipe small-largest" in lines[-1]
    _explain_validation(record, task, info, OrderedDropoutConfig(sandwich=True, largest_pass=True, distill=0.5))
    assert lines[-1].endswith("(try recipe small-largest)") and "sandwich" not in lines[-1]
