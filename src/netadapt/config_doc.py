"""The configuration reference and commented config files, written from the config classes.

Each setting's description is the comment beside (or the comment block above) its field in the
dataclass source, so that the reference cannot drift from the code::

    python -m netadapt.config_doc > docs/configuration.md      # tests check the file is current

:func:`commented_yaml` writes a config value as YAML with those comments (``netadapt init``).
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from functools import cache
from typing import Any

from netadapt.config import yaml_text

__all__ = ["commented_yaml", "config_reference", "field_comments"]

_SKIP_TOKENS = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT}


@cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name → the comment block above the field and the comment beside it, joined."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a frozen install): no descriptions
        return {}
    comments: dict[int, str] = {}
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string[1:].strip()
        elif tok.type not in _SKIP_TOKENS:
            code.update(range(tok.start[0], tok.end[0] + 1))
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, str] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        match = re.match(r"    (\w+)\s*:", line)
        if not match or match.group(1) not in names:
            continue
        block = []
        above = number - 1
        while above in comments and above not in code:
            block.insert(0, comments[above])
            above -= 1
        if number in comments:
            block.append(comments[number])
        if block:
            out[match.group(1)] = " ".join(block)
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) if not isinstance(a, str) else a for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return {int: "int", float: "float", str: "str", bool: "bool"}.get(tp, getattr(tp, "__name__", str(tp)))


def _flow(value: Any) -> str:
    """A value as one line of YAML."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml_text(value, default_flow_style=True, width=10_000, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _nested(cls: type, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted prefix, class) of ``cls`` and every dataclass nested in it, depth first."""
    out = [(prefix, cls)]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += _nested(tp, f"{prefix}{f.name}.")
    return out


def _section(prefix: str, cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    doc = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    lines = [f"### `{prefix.rstrip('.') or 'top level'}` — {cls.__name__}", "", doc, ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            continue
        meaning = comments.get(f.name, "").replace("|", "\\|")
        default = _flow(_default(f)).replace("|", "\\|")
        lines.append(f"| `{prefix}{f.name}` | {_type_name(tp)} | `{default}` | {meaning} |")
    return [*lines, ""]


def config_reference() -> str:
    """``docs/configuration.md``: every setting of a run config, the recipes and the budgets."""
    from netadapt.pipeline.run import RunConfig

    lines = _recipes_section() + _budgets_section()
    lines += ["", "## Run config (`netadapt run --config FILE`)", ""]
    for prefix, cls in _nested(RunConfig):
        lines += _section(prefix, cls)
    lines += _stage_configs_section()
    return "\n".join(lines).rstrip() + "\n"


def _recipes_section() -> list[str]:
    """The page's introduction and the super-network recipes."""
    from netadapt.train.recipes import RECIPES

    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m netadapt.config_doc > docs/configuration.md` from the config classes;",
        "     tests/test_config_doc.py checks that it is current. Edit the classes' comments, not this file. -->",
        "",
        "A config is a YAML file of nested mappings, read into typed dataclasses: unknown keys, values of",
        "the wrong type and numbers that are not finite are errors that name the key. On the command line",
        "`--set a.b=value` overrides a key (the value is read as YAML). `netadapt run` writes the resolved",
        "config, every value included, to `RUN_DIR/config.yaml`; a rerun must use the same values (except",
        "run-time settings such as `supernet.data.workers`, `supernet.progress`, `export`, and the keys",
        "of a stage that has not started: `search.*` until `RUN_DIR/search/` exists, `final.*` until",
        "`RUN_DIR/final/` does). Settings a later stage needs -- the search's metric (a latency table",
        "must fit the network), the final training's -- are checked before the super-network trains.",
        "",
        "Where to start:",
        "",
        "- `netadapt run --data FOLDER [--budget quick|standard|paper]` builds a config from an image folder",
        "  (below) and runs it; `--print-config` prints that config with comments instead of running.",
        "- `netadapt init --data FOLDER --out my_run.yaml` writes the same config to a file to edit; then",
        "  `netadapt run --config my_run.yaml`.",
        "- `configs/*.yaml`: the built-in demo's flow on CIFAR-10, the paper's ImageNet and depth setups.",
        "",
        "## Super-network recipes (`supernet.recipe`)",
        "",
        "A training config (or the `supernet` part of a run config) may name a recipe: its settings go",
        "under the config's own, so a key the config sets wins. Defined in `src/netadapt/train/recipes.py`,",
        "the one place to change them.",
        "",
        "| recipe | settings |",
        "|---|---|",
    ]
    for name, recipe in RECIPES.items():
        settings = ", ".join(f"`{k}: {_flow(v)}`" for k, v in _flatten(recipe).items())
        lines.append(f"| `{name}` | {settings} |")
    return lines


def _budgets_section() -> list[str]:
    """``netadapt run --data FOLDER``'s budgets."""
    from netadapt.pipeline.presets import BUDGETS, PUBLIC_BUDGETS, RECIPE

    lines = [
        "",
        f"`{RECIPE}` trains over the paper's whole space (every width, whole removable blocks) at the scale",
        "of a 2-core machine (the demo, the CIFAR-10 configs, `netadapt run --data`): the initial network",
        "alone for the first quarter of the epochs, progressive shrinking of the widths in the second",
        "(`phase_shares`: shares of the config's epochs), groups of 8 images sharing one sub-network and",
        "their own BatchNorm statistics; docs/ranking.md measures how it ranks sub-networks. `paper` is",
        "§4.1.1's ImageNet recipe, which does not train at small scale (docs/training.md).",
        "",
        "## `netadapt run --data FOLDER`: budgets",
        "",
        "The folder holds `train/<class>/<images>` and `val/<class>/<images>` (or `test/`). netadapt measures",
        "a seeded sample of 500 training images: the input size (the median shorter side; up to 64 px the",
        "images are used at that size with a network for small inputs, above 64 px at the largest multiple",
        "of 32 up to 224 with an ImageNet network), the mean and standard deviation per channel (grayscale",
        "images become three equal channels), the class names (the folder names). A budget then sets how",
        "long each stage runs. Epochs are stated for 10,000 training images and scaled by 10,000 / (the",
        "folder's training images), within the budget's bounds; the super-network recipe is",
        f"`{RECIPE}`. `--target` (default 0.5 of the initial network), `--metric` (default `macs`) and",
        "`--model` (default `mobilenet_v1_cifar`, or `mobilenet_v1` above 64 px) change the search.",
        "The width multiplier applies to the default model; a model named with `--model` keeps its own",
        "width (set `supernet.model.width_mult` to scale it).",
        "",
        "| budget | for | width ×  | epochs at 10k images (bounds) | final epochs at 10k | held out | J × L | first reduction | also trained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in PUBLIC_BUDGETS:
        b = BUDGETS[name]
        also = ", ".join(n for n, on in (("initial network", b.train_initial), ("uniform baseline", b.train_baseline)) if on)
        lines.append(
            f"| `{name}` | {b.summary} | {b.width_mult:g} | {b.supernet_epochs:g} ({b.min_epochs}–{b.max_epochs}) | "
            f"{b.final_epochs:g} | ≤ {b.heldout_max:,} (10%) | {b.samples} × {b.layers} | {100 * b.initial_reduction:g}% | "
            f"{also or '-'} |"
        )
    return lines


def _stage_configs_section() -> list[str]:
    """The keys of the stage configs a run config does not hold (``SearchRunConfig``'s own)."""
    from netadapt.search.run import SearchRunConfig

    lines = [
        "## Stage configs",
        "",
        "`netadapt train-supernet --config FILE` reads the `supernet` part alone (a `SupernetTrainConfig`,",
        "the keys above without `supernet.`; `recipe: NAME` allowed). `netadapt search --config FILE` reads a",
        "`SearchRunConfig`: the `search` keys above plus these:",
        "",
    ]
    own = [f.name for f in dataclasses.fields(SearchRunConfig) if f.name not in ("search", "eval")]
    hints = typing.get_type_hints(SearchRunConfig)
    comments = field_comments(SearchRunConfig)
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(SearchRunConfig):
        if f.name in own:
            meaning = comments.get(f.name, "").replace("|", "\\|")
            lines.append(f"| `{f.name}` | {_type_name(hints[f.name])} | `{_flow(_default(f))}` | {meaning} |")
    return lines


def _flatten(mapping: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def commented_yaml(config: Any, header: str = "") -> str:
    """The dataclass value ``config`` as YAML, each key with its field's comment; ``header``
    (lines) goes first as comments.  Reading it back gives ``config`` again."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(config, 0, lines)
    return "\n".join(lines) + "\n"


def _emit(obj: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    comments = field_comments(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        comment = comments.get(f.name, "")
        if dataclasses.is_dataclass(value):
            lines += [f"{pad}# {text}" for text in textwrap.wrap(comment, 96 - indent)] if comment else []
            lines.append(f"{pad}{f.name}:")
            _emit(value, indent + 2, lines)
            continue
        entry = f"{pad}{f.name}: {_flow(value)}"
        if comment and len(entry) + len(comment) + 4 <= 110:
            lines.append(f"{entry}  # {comment}")
        else:
            lines += [f"{pad}# {text}" for text in textwrap.wrap(comment, 96 - indent)] if comment else []
            lines.append(entry)


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(config_reference())
