"""Command-line flags derived from config fields (``netadapt.config_flags``): every flag of every
command's table names a real field, and the argparse argument derived from it reads what the field
holds -- a renamed or retyped field fails here, not on a user's command line."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pkgutil
import types
import typing
from typing import Any

import pytest

import netadapt
from netadapt.config import config_from_dict, load_config, merge_mappings
from netadapt.config_flags import Flag, add_flags, flag_field, flag_overrides
from netadapt.errors import NetAdaptError
from netadapt.pipeline import cli as pipeline_cli
from netadapt.pipeline.run import RunConfig
from netadapt.search import cli as search_cli
from netadapt.search.run import SearchRunConfig
from netadapt.train import cli as train_cli
from netadapt.train.config import SupernetTrainConfig

# Every flag table, with the config class it sets and a mapping that makes the class valid
# (SearchRunConfig needs a super-network file).
TABLES = {
    "search.cli.FLAGS": (search_cli.FLAGS, SearchRunConfig, {"supernet": "a.pt"}),
    "pipeline.cli.DATA_FLAGS": (pipeline_cli.DATA_FLAGS, RunConfig, {}),
    "pipeline.cli.RUN_FLAGS": (pipeline_cli.RUN_FLAGS, RunConfig, {}),
    "pipeline.cli.DEMO_FLAGS": (pipeline_cli.DEMO_FLAGS, RunConfig, {}),
    "train.cli.FLAGS": (train_cli.FLAGS, SupernetTrainConfig, {}),
}
ROWS = [(name, flag) for name, (flags, _, _) in TABLES.items() for flag in flags]


def _cli_tables() -> set[str]:
    """Names of the module-level tuples of :class:`Flag` in every ``cli`` module of netadapt."""
    found = set()
    for info in pkgutil.walk_packages(netadapt.__path__, "netadapt."):
        if info.name.rsplit(".", 1)[-1] != "cli":
            continue
        module = importlib.import_module(info.name)
        for attr, value in vars(module).items():
            if isinstance(value, tuple) and value and all(isinstance(f, Flag) for f in value):
                found.add(f"{info.name.removeprefix('netadapt.')}.{attr}")
    return found


def test_every_flag_table_is_checked_here():
    assert _cli_tables() == set(TABLES)


def _parser(cls: type, flags: tuple[Flag, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser, cls, flags)
    return parser


def _plain(annotation: Any) -> Any:
    """``X`` of ``X | None``; any other annotation as it is."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _samples(flag: Flag, annotation: Any, default: Any) -> list[tuple[list[str], Any]]:
    """(argv after the flag, the value the field should then hold) for values of ``annotation``."""
    if flag.switch:
        return [([], flag.const)]
    annotation = _plain(annotation)
    out = [([word], None) for word in flag.none]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return out + [([str(choice)], choice) for choice in typing.get_args(annotation)]
    if origin in (list, tuple):
        return out + [(["0.25", "0.5"], (0.25, 0.5) if origin is tuple else [0.25, 0.5])]
    value = default if default not in (None, "") else {int: 3, float: 0.25, str: "x"}[annotation]
    return out + [([str(value)], value)]


@pytest.mark.parametrize(("table", "flag"), ROWS, ids=[f"{t}:{f.name}" for t, f in ROWS])
def test_a_flag_sets_its_field_with_the_fields_type(table, flag):
    flags, cls, base = TABLES[table]
    owner, field, annotation = flag_field(cls, flag)  # ValueError when the field was renamed
    assert dataclasses.is_dataclass(owner) and field.name == flag.path.rsplit(".", 1)[-1]
    parser = _parser(cls, (flag,))
    action = next(a for a in parser._actions if flag.name in a.option_strings)
    if typing.get_origin(_plain(annotation)) is typing.Literal and not flag.switch:
        assert tuple(action.choices) == typing.get_args(_plain(annotation))
    default = field.default if field.default is not dataclasses.MISSING else None
    for argv, expected in _samples(flag, annotation, default):
        args = parser.parse_args([flag.name, *argv])
        overrides = flag_overrides(args, flags)
        config = config_from_dict(cls, merge_mappings(base, overrides))
        value = config
        for part in flag.path.split("."):
            value = getattr(value, part)
        assert value == expected and type(value) is type(expected), (flag.name, argv)


def test_a_flag_not_given_sets_nothing():
    parser = _parser(SearchRunConfig, search_cli.FLAGS)
    args = parser.parse_args([])
    assert flag_overrides(args, search_cli.FLAGS) == {}
    args = parser.parse_args(["--samples", "per-layer", "--no-recalibrate", "--budgets", "0.3", "0.2"])
    assert flag_overrides(args, search_cli.FLAGS) == {
        "search": {"samples": None, "budgets": [0.3, 0.2]},
        "eval": {"recalibrate_bn": False},
    }


def test_a_flag_naming_no_field_is_refused():
    with pytest.raises(ValueError, match=r"--targte: SearchRunConfig has no config key 'search.targte'"):
        add_flags(argparse.ArgumentParser(), SearchRunConfig, [Flag("--targte", "search.targte")])
    with pytest.raises(ValueError, match=r"no config key 'serch'"):
        add_flags(argparse.ArgumentParser(), SearchRunConfig, [Flag("--target", "serch.target")])
    with pytest.raises(TypeError, match="give const="):  # a bool field is a switch
        add_flags(argparse.ArgumentParser(), SearchRunConfig, [Flag("--recalibrate", "eval.recalibrate_bn")])


def test_help_is_the_fields_comment_with_its_default():
    text = _parser(SearchRunConfig, search_cli.FLAGS).format_help()
    assert "per-iteration decay of the reduction (§4.1.1) (default: 0.98)" in " ".join(text.split())
    assert "(default: 0.03)" in text  # the "3%" of a comment does not break argparse's % formatting


def test_flags_win_over_set_which_wins_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: from_file\nseed: 1\n")
    parser = argparse.ArgumentParser()
    add_flags(parser, SupernetTrainConfig, train_cli.FLAGS)
    args = parser.parse_args(["--run-dir", "2024"])  # a string, as typed: not read as YAML
    config = load_config(SupernetTrainConfig, path, ["run_dir=from_set", "seed=2"], flags=flag_overrides(args, train_cli.FLAGS))
    assert (config.run_dir, config.seed) == ("2024", 2)
    config = load_config(SupernetTrainConfig, path, ["run_dir=from_set"], flags={})
    assert config.run_dir == "from_set"
    with pytest.raises(NetAdaptError, match=r"^search\.target: expected a number"):
        load_config(SearchRunConfig, None, ["supernet=a.pt"], flags={"search": {"target": "x"}})
