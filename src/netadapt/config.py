"""Typed configuration: dataclasses, then a YAML file, then ``key=value`` overrides.

Unknown keys, values of the wrong type, fixed-size tuples of another length and numbers that
are not finite (``.nan``, ``.inf``) are errors that name the key.  Nested dataclasses
are nested mappings in YAML and dotted keys on the command line (``--set train.epochs=3``).
A class with a static ``expand_mapping(mapping) -> mapping`` rewrites its mapping before it is
checked (:class:`netadapt.train.SupernetTrainConfig` merges the recipe its ``recipe`` key names).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from netadapt.errors import NetAdaptError
from netadapt.io import read_text

__all__ = [
    "check_fields",
    "config_differences",
    "config_from_dict",
    "config_to_dict",
    "flatten_mapping",
    "load_config",
    "merge_mappings",
    "parse_overrides",
    "read_yaml_mapping",
    "same_relative_path",
    "text_value",
    "yaml_text",
    "yaml_value",
]

T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 does: ``1e-3`` (no dot) is a float, not
    the string YAML 1.1 makes of it -- the usual way to write a learning rate.  A key given twice
    in one mapping is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[str] = set()
        for key_node, _ in node.value:  # the keys as written (a merge key's mapping may be overridden)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key_node.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting a string that :class:`_Loader` would read as a number (``"1e5"``)."""


for _yaml_class in (_Loader, _Dumper):
    _yaml_class.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )


def yaml_value(text: str) -> Any:
    """The YAML document ``text`` (configs, overrides, run folders' saved configs)."""
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def text_value(text: str) -> Any:
    """A command-line value (``--set k=TEXT``, ``--option k=TEXT``) read as YAML (``1e-3`` a number,
    ``[1, 2]`` a list), or the text itself when it is not valid YAML."""
    try:
        return yaml_value(text)
    except yaml.YAMLError:
        return text


def yaml_text(value: Any, **options: Any) -> str:
    """``value`` as YAML that :func:`yaml_value` reads back the same (``yaml.safe_dump``'s options)."""
    return yaml.dump(value, Dumper=_Dumper, **options)


def _check(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise a one-line error naming ``key``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(value, arg, key)
            except NetAdaptError as exc:
                errors.append(str(exc))
        raise NetAdaptError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise NetAdaptError(f"{key}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise NetAdaptError(f"{key}: expected a mapping, got {type(value).__name__}")
        return config_from_dict(tp, value, prefix=f"{key}.")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise NetAdaptError(f"{key}: expected a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # tuple[float, float, float]: that many
            if len(value) != len(args):
                raise NetAdaptError(f"{key}: expected {len(args)} values, got {len(value)}: {list(value)!r}")
            return tuple(_check(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [_check(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise NetAdaptError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise NetAdaptError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise NetAdaptError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NetAdaptError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise NetAdaptError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise NetAdaptError(f"{key}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise NetAdaptError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def check_fields(obj: Any, prefix: str = "") -> None:
    """Check every field of dataclass instance ``obj`` against its annotation, as a config file's
    values are (options given as keyword arguments or a mapping skip the file's checks); a
    one-line error names ``prefix`` + the field."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _check(getattr(obj, f.name), hints[f.name], prefix + f.name)


def config_from_dict(cls: type[T], data: dict, *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise NetAdaptError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    # A config class may rewrite its mapping first (a training config's ``recipe: NAME``).
    expand = getattr(cls, "expand_mapping", None)
    if callable(expand):
        data = expand(data)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise NetAdaptError(f"unknown config key {prefix}{unknown[0]}; known keys: {', '.join(prefix + k for k in fields)}")
    kwargs = {name: _check(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        obj = cls(**kwargs)
    except TypeError as exc:
        raise NetAdaptError(f"{prefix or 'config'}: {exc}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate()
    return obj


def config_to_dict(config: Any) -> dict:
    """A plain mapping (YAML/JSON-ready) of a config dataclass."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def flatten_mapping(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": {}}`` → ``{"a.b": 1, "c": {}}`` (empty mappings stay leaves)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten_mapping(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(old: dict, new: dict, defaults: dict) -> list[str]:
    """Dotted keys whose values differ between two resolved configs (mappings of
    :func:`config_to_dict`).  A key that ``old`` lacks and ``new`` holds at its value in
    ``defaults`` is no difference: a setting added by a later version, left at its default,
    does not change what a run started by an earlier version computes."""
    old, new, defaults = flatten_mapping(old), flatten_mapping(new), flatten_mapping(defaults)
    changed = []
    for key in sorted(set(old) | set(new)):
        if key not in old and key in defaults and new.get(key) == defaults[key]:
            continue
        if old.get(key) != new.get(key):
            changed.append(key)
    return changed


def same_relative_path(old: Any, new: Any, old_root: Any, new_root: Any) -> bool:
    """True when the path strings ``old`` and ``new`` name the same place relative to their run
    folders ``old_root`` and ``new_root``: a run folder moved or copied together with the files
    it refers to (``../supernet/supernet.pt`` from a pipeline's ``final/``) is the same run."""
    if not all(isinstance(v, str) and v for v in (old, new, old_root, new_root)):
        return False
    return os.path.relpath(old, old_root) == os.path.relpath(new, new_root)


def parse_overrides(pairs: list[str] | None) -> dict:
    """``["a.b=3", "c=x"]`` → ``{"a": {"b": 3}, "c": "x"}``; values are parsed as YAML scalars."""
    result: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise NetAdaptError(f"override {pair!r} must look like key=value")
        key, text = pair.split("=", 1)
        value = text_value(text) if text else ""
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise NetAdaptError(f"override {pair!r} conflicts with another override")
        node[parts[-1]] = value
    return result


def merge_mappings(base: dict, extra: dict) -> dict:
    """``base`` updated by ``extra``, nested mappings merged key by key."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge_mappings(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml_mapping(path: str | Path) -> dict:
    """The mapping in the YAML file at ``path`` (empty file: ``{}``); one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise NetAdaptError(f"config file {path} does not exist")
    text = read_text(path, "config file")
    try:
        loaded = yaml_value(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0]
        raise NetAdaptError(f"config file {path} is not valid YAML: {first}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise NetAdaptError(f"config file {path} must hold a mapping at the top level")
    return loaded


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None, *, flags: dict | None = None
) -> T:
    """Defaults of ``cls``, updated by the YAML file at ``path``, then by ``overrides``
    (``key=value``), then by ``flags`` (a mapping: the command line's flags,
    :func:`netadapt.config_flags.flag_overrides`); checked once, after all of them."""
    data = read_yaml_mapping(path) if path is not None else {}
    data = merge_mappings(merge_mappings(data, parse_overrides(overrides)), flags or {})
    return config_from_dict(cls, data)
