"""Command-line flags derived from config fields: each flag is declared once, by the field it sets.

A command lists its convenience flags as a table of :class:`Flag` rows, each naming only the flag
and the dotted config key it sets::

    FLAGS = (Flag("--target", "search.target"), Flag("--absolute", "search.target_mode", const="absolute"))

:func:`add_flags` derives the ``argparse`` arguments from the config class: the type from the
field's annotation (``X | None`` → ``X``, ``Literal`` → choices, ``list``/``tuple[T, ...]`` → one or
more values), the help from the field's comment (:func:`netadapt.config_doc.field_comments`) unless
the row gives a short one, and the dataclass default shown in it.  :func:`flag_overrides` turns the
flags that were given into a mapping of config keys, applied after the YAML file and ``--set``
(:func:`netadapt.config.load_config`'s ``flags``), so that a flag wins and values are checked once,
by the config reader.  A flag that is not given sets nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from netadapt.config_doc import field_comments

__all__ = ["Flag", "add_flags", "flag_field", "flag_overrides", "flag_values"]

_VALUE = object()  # Flag.const when the flag takes a value (None is a const a switch may set)


@dataclass(frozen=True)
class Flag:
    """One command-line flag that sets one config field; the rest is read from the field."""

    name: str  # the flag, "--target"
    path: str  # the dotted config key it sets, "search.target"
    help: str | None = None  # None: the field's comment
    const: Any = _VALUE  # a switch: the flag takes no value and sets this one ("--absolute")
    none: tuple[str, ...] = ()  # words read as None for an `X | None` field ("--samples per-layer")
    metavar: str | None = None
    show_default: bool = True  # False where the command's default is not the field's (a preset's)

    @property
    def switch(self) -> bool:
        """True when the flag takes no value and sets :attr:`const`."""
        return self.const is not _VALUE

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments (argparse's: ``--run-dir`` → ``run_dir``)."""
        return self.name.lstrip("-").replace("-", "_")


def flag_field(cls: type, flag: Flag) -> tuple[type, dataclasses.Field, Any]:
    """(the dataclass holding the field, the field, its resolved annotation) that ``flag`` sets
    in config class ``cls``; ``ValueError`` naming the flag when ``cls`` has no such field."""
    owner, parts = cls, flag.path.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(owner)} if dataclasses.is_dataclass(owner) else {}
        if part not in fields:
            raise ValueError(f"{flag.name}: {cls.__name__} has no config key {'.'.join(parts[: i + 1])!r}")
        annotation = typing.get_type_hints(owner)[part]
        if i < len(parts) - 1:
            owner = annotation
    return owner, fields[part], annotation


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _value_type(flag: Flag, annotation: Any) -> dict[str, Any]:
    """``type``, ``choices`` and ``nargs`` of a flag that takes a value of this annotation."""
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
    if flag.none and not optional:
        raise TypeError(f"{flag.name}: none={flag.none} needs an `X | None` field, not {annotation!r}")
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    kwargs: dict[str, Any] = {}
    if origin is typing.Literal:
        kwargs["choices"] = args
        annotation = type(args[0])
    elif origin in (list, tuple) and args and (origin is list or args[-1] is Ellipsis):
        kwargs["nargs"] = "+"
        annotation = args[0]
    if annotation not in (int, float, str):  # bool: a switch (const); anything else: not a flag
        raise TypeError(f"{flag.name}: no command-line form for {flag.path} of type {annotation!r}; give const=")
    kwargs["type"] = _or_none(annotation, flag.none) if flag.none else annotation
    return kwargs


def _or_none(convert: type, words: tuple[str, ...]) -> Callable[[str], Any]:
    """A ``type=`` that reads any of ``words`` as None and anything else with ``convert``."""

    def parse(text: str) -> Any:
        if text in words:
            return None
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {convert.__name__} or {words[0]!r}, got {text!r}") from None

    return parse


def _help(flag: Flag, cls: type) -> str:
    owner, field, _ = flag_field(cls, flag)
    text = flag.help if flag.help is not None else field_comments(owner).get(field.name, "")
    default = _default(field)
    if flag.show_default and not flag.switch and default not in (None, "", (), []):
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else default
        text = f"{text.rstrip('.')} (default: {shown})"
    return text.replace("%", "%%")  # argparse formats help with %: "3% of ..." must stay text


def add_flags(parser: argparse.ArgumentParser, cls: type, flags: Iterable[Flag]) -> None:
    """Add ``flags`` to ``parser``, each typed and documented by the field of ``cls`` it sets.

    A flag that is not given leaves no attribute on the parsed arguments (``None`` may be a
    value: ``--samples per-layer``); :func:`flag_overrides` reads the ones that were."""
    for flag in flags:
        _, _, annotation = flag_field(cls, flag)
        kwargs: dict[str, Any] = {"dest": flag.dest, "default": argparse.SUPPRESS, "help": _help(flag, cls)}
        if flag.switch:
            kwargs.update(action="store_const", const=flag.const)
        else:
            kwargs.update(_value_type(flag, annotation), metavar=flag.metavar)
        parser.add_argument(flag.name, **kwargs)


def flag_values(args: argparse.Namespace, flags: Iterable[Flag]) -> dict[str, Any]:
    """Dotted config key → value of each flag of ``flags`` given on the command line."""
    given = vars(args)
    return {flag.path: given[flag.dest] for flag in flags if flag.dest in given}


def flag_overrides(args: argparse.Namespace, flags: Iterable[Flag]) -> dict:
    """The flags of ``flags`` given on the command line as a nested mapping of config keys
    (``{"search": {"target": 0.3}}``), to apply after the YAML file and ``--set``."""
    out: dict = {}
    for path, value in flag_values(args, flags).items():
        *parents, key = path.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    return out
