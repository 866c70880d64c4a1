"""docs/configuration.md is generated from the config classes and is current; commented configs
read back as the configs they were written from."""

from pathlib import Path

import yaml

from netadapt.config import config_from_dict
from netadapt.config_doc import commented_yaml, config_reference, field_comments
from netadapt.pipeline.run import FinalConfig, RunConfig
from netadapt.train.config import DataConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_configuration_reference_is_current():
    assert DOC.read_text() == config_reference(), "regenerate it: python -m netadapt.config_doc > docs/configuration.md"


def test_every_final_key_is_documented():
    """The final.* keys (issue 19, item 1: found only by reading pipeline/run.py) have descriptions."""
    comments = field_comments(FinalConfig)
    for key in ("epochs", "init", "trajectory_epochs", "trajectory_steps", "distill", "lr_scale", "baseline", "initial"):
        assert comments.get(key), key
        assert f"`final.{key}`" in DOC.read_text()
    assert "training images" in field_comments(DataConfig)["subset"]  # data.subset caps training images only


def test_commented_yaml_reads_back_as_the_same_config():
    config = RunConfig()
    text = commented_yaml(config, "a header\nof two lines")
    assert text.startswith("# a header\n# of two lines\n")
    assert "  # " in text  # comments beside keys
    assert config_from_dict(RunConfig, yaml.safe_load(text)) == config
