"""Every shipped config loads, the small-data ones follow the one recipe, and the recipe trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from netadapt.config import config_to_dict, flatten_mapping, load_config, read_yaml_mapping
from netadapt.errors import NetAdaptError
from netadapt.pipeline.cli import DEMO_CONFIG
from netadapt.pipeline.run import RunConfig
from netadapt.train import SupernetTrainConfig, train_supernet
from netadapt.train.recipes import PHASE_SHARES, RECIPES

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").glob("*.yaml")) + [DEMO_CONFIG]


def _load(path: Path) -> tuple[dict, SupernetTrainConfig]:
    """(the file's mapping, its super-network training config)."""
    raw = read_yaml_mapping(path)
    if "supernet" in raw:  # a run config
        return raw.get("supernet", {}), load_config(RunConfig, path).supernet
    return raw, load_config(SupernetTrainConfig, path)


@pytest.mark.parametrize("value", ["[0.5, 0.5]", "[0.5, 0.5, 0.5, 0.5]"])
def test_a_fixed_size_tuple_of_another_length_is_a_one_line_error(value: str) -> None:
    with pytest.raises(NetAdaptError) as caught:
        load_config(SupernetTrainConfig, None, [f"data.mean={value}"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("data.mean: expected 3 values, got")


def test_tuples_of_the_right_length_and_open_tuples_load() -> None:
    config = load_config(RunConfig, None, ["supernet.data.std=[0.25, 0.5, 1]", "search.search.budgets=[0.5, 0.4, 0.3, 0.2]"])
    assert config.supernet.data.std == (0.25, 0.5, 1.0)
    assert config.search.search.budgets == (0.5, 0.4, 0.3, 0.2)


def test_numbers_in_exponent_notation_load_as_numbers(tmp_path) -> None:
    """``1e-3`` (no dot) is a string to YAML 1.1, the usual way to write a learning rate."""
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-3\n  weight_decay: 5E-5\n")
    config = load_config(SupernetTrainConfig, path, ["optim.momentum=9e-1"])
    assert (config.optim.lr, config.optim.weight_decay, config.optim.momentum) == (1e-3, 5e-5, 0.9)
    with pytest.raises(NetAdaptError, match=r"^optim.lr: expected a number, got '1e'$"):
        load_config(SupernetTrainConfig, None, ["optim.lr=1e"])


def test_a_key_given_twice_is_an_error_and_merge_keys_still_override(tmp_path):
    """PyYAML keeps the last of two equal keys silently: `lr` twice in one mapping is a typo."""
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.2\n")
    with pytest.raises(NetAdaptError, match=r"is not valid YAML: duplicate key 'lr' \(line 4\)"):
        load_config(SupernetTrainConfig, path)
    path.write_text("base: &b {lr: 0.1, momentum: 0.5}\noptim:\n  <<: *b\n  lr: 0.2\n")
    assert read_yaml_mapping(path)["optim"] == {"lr": 0.2, "momentum": 0.5}


def test_saved_configs_read_back_the_same_strings_and_numbers():
    """A string that reads as a number in exponent notation is quoted when a run folder saves it."""
    from netadapt.config import yaml_text, yaml_value

    value = {"run_dir": "1e5", "data_note": "2E-3", "lr": 1e-05, "decay": 0.963, "name": "abc", "list": [1.5e-7, "3e1"]}
    assert yaml_value(yaml_text(value, sort_keys=False)) == value
    config = load_config(RunConfig, None, ["run_dir='1e5'"])
    assert config.run_dir == "1e5"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads_with_the_config_classes(path):
    raw, config = _load(path)
    config.validate()
    # unknown keys are errors (the loader's check the files just passed)
    with pytest.raises(NetAdaptError, match="unknown config key"):
        load_config(RunConfig if "supernet" in read_yaml_mapping(path) else SupernetTrainConfig, path, ["nonsense=1"])
    name = raw.get("recipe")
    if name is None:
        return
    # a config naming a recipe takes every one of its values (it overrides none), so that changing
    # the recipe in netadapt/train/recipes.py changes the config
    resolved = flatten_mapping(config_to_dict(config))
    recipe = {k: v for k, v in RECIPES[name].items() if k != PHASE_SHARES}
    for key, value in flatten_mapping(recipe).items():
        assert resolved[key] == value, f"{path.name} overrides {key} of recipe {name}"
    section = config.supernet if isinstance(config, RunConfig) else config
    for key, share in RECIPES[name].get(PHASE_SHARES, {}).items():  # phase lengths follow the epochs
        assert getattr(section.ordered_dropout, key) == pytest.approx(share * section.epochs), key


@pytest.mark.parametrize("name", ["imagenet_latency.yaml", "imagenet_macs.yaml", "supernet_imagenet.yaml"])
def test_imagenet_configs_hold_the_papers_recipe(name):
    _, config = _load(ROOT / "configs" / name)
    resolved = flatten_mapping(config_to_dict(config))
    for key, value in flatten_mapping(RECIPES["paper"]).items():
        assert resolved[key] == value, key


def test_small_data_configs_use_the_recipe():
    for path in SHIPPED:
        raw, config = _load(path)
        if config.data.dataset in ("digits", "folder") and "imagenet" not in path.name:
            assert raw.get("recipe") == "small", path.name


def test_a_recipe_goes_under_the_configs_own_values():
    config = load_config(SupernetTrainConfig, None, ["recipe=small", "optim.lr=0.1"])
    assert config.optim.lr == 0.1 and config.optim.name == "sgd" and config.model.options == {"removal": "block"}
    # phase shares follow the config's own epochs, and a config's own phase lengths win
    config = load_config(SupernetTrainConfig, None, ["recipe=small", "epochs=12"])
    assert (config.ordered_dropout.full_epochs, config.ordered_dropout.width_epochs) == (3.0, 3.0)
    config = load_config(SupernetTrainConfig, None, ["recipe=small", "epochs=12", "ordered_dropout.width_epochs=0"])
    assert (config.ordered_dropout.full_epochs, config.ordered_dropout.width_epochs) == (3.0, 0.0)
    with pytest.raises(NetAdaptError, match="unknown recipe 'fast'; choose one of: small, small-largest, paper"):
        load_config(SupernetTrainConfig, None, ["recipe=fast"])


def _trained_setups() -> list[tuple[str, str, float | None]]:
    """(recipe, model, width) of every shipped config that names a recipe, each once."""
    setups = set()
    for path in SHIPPED:
        raw, config = _load(path)
        if raw.get("recipe"):
            setups.add((raw["recipe"], config.model.name, config.model.width_mult))
    return sorted(setups, key=str)


@pytest.mark.slow
@pytest.mark.parametrize("recipe, model, width", _trained_setups())
def test_each_shipped_recipe_trains(recipe, model, width, tmp_path):
    """The super-network of each shipped (recipe, model) learns the built-in digits: its training
    loss falls by a fifth in 15 epochs (about 500 steps; a few minutes on one core)."""
    import json

    import torch

    torch.set_num_threads(1)
    overrides = [f"recipe={recipe}", f"model.name={model}", f"model.width_mult={width}", f"run_dir={tmp_path}"]
    overrides += ["epochs=15", "data.dataset=digits", "data.batch_size=32", "data.val_subset=100", "progress=false"]
    overrides += ["tensorboard=false", "eval_every=100", "val_calibration_images=64"]
    train_supernet(load_config(SupernetTrainConfig, None, overrides))
    losses = [json.loads(line)["train_loss"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < 0.8 * losses[0], losses
