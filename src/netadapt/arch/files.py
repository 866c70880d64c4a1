"""Architecture files a user gives: read, checked against the search space, one-line errors.

An architecture JSON file (``Architecture.to_json(space)``) may name each layer; when it does,
the names must be the space's, in order, so that a file edited by hand or written for another
model cannot silently put its widths on the wrong layers.  A file written with ``build``
(``Architecture.to_json(space, build=...)``, as every file of ``netadapt run`` and ``netadapt
search`` is) also says how to rebuild its network, so it needs nothing else
(:func:`read_architecture_file`).

The paper's discovered networks ship as such files, by short name: ``table8`` (Table 8, the
latency-guided ImageNet network), ``table9`` (Table 9, MAC-guided) and ``table10`` (Table 10,
FastDepth); :func:`architecture_path` resolves a name or a path.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from itertools import zip_longest
from pathlib import Path
from typing import Any

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.io import read_text

__all__ = [
    "NAMED_ARCHITECTURES",
    "architecture_path",
    "check_layer_names",
    "load_architecture",
    "read_architecture_file",
]

#: Short names of the architecture files shipped in netadapt/model/architectures/.
NAMED_ARCHITECTURES = {
    "table8": "netadaptv2_table8",
    "table9": "netadaptv2_table9",
    "table10": "fastdepth_table10",
}


def architecture_path(name_or_path: str | os.PathLike) -> Path:
    """The file of a shipped architecture's short name (``table8``, unless a file of that name
    exists here), else the path itself."""
    text = os.fspath(name_or_path)
    if text in NAMED_ARCHITECTURES and not os.path.exists(text):
        return Path(str(resources.files("netadapt.model") / "architectures" / f"{NAMED_ARCHITECTURES[text]}.json"))
    return Path(text)


def read_architecture_file(path: str | os.PathLike, *, what: str = "architecture file") -> tuple[Architecture, dict[str, Any]]:
    """(architecture, the file's whole mapping) of the JSON file ``path`` (or shipped name), not
    yet checked against a space; ``mapping.get("build")`` says how to rebuild its network."""
    path = architecture_path(path)
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NetAdaptError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        arch = Architecture.from_dict(data)
    except NetAdaptError as exc:
        raise NetAdaptError(f"{what} {path}: {exc}") from None
    if not isinstance(data.get("build", {}), dict | None):
        raise NetAdaptError(f"{what} {path}: its build (how the network is built) is not a mapping")
    return arch, data


def check_layer_names(data: object, space: SearchSpace) -> None:
    """Raise when the layer rows of an architecture mapping carry names that are not the
    space's, in order (rows without any name are not checked)."""
    rows = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return  # Architecture.from_dict says what is wrong
    names = [row.get("name") if isinstance(row, dict) else None for row in rows]
    if all(name is None for name in names):
        return
    expected = [layer.name for layer in space.layers]
    for i, (name, want) in enumerate(zip_longest(names, expected)):
        if name == want:
            continue
        if want is None:
            raise NetAdaptError(f"layer {i} ({name!r}) is beyond the {len(expected)} layers of the {space.model} space")
        if name is None:
            raise NetAdaptError(f"layer {i} has no name; the {space.model} space has {want!r} there")
        raise NetAdaptError(f"layer {i} is named {name!r}; the {space.model} space has {want!r} there")


def load_architecture(path: str | os.PathLike, space: SearchSpace, *, what: str = "architecture file") -> Architecture:
    """The architecture in the JSON file ``path`` (or shipped name), validated against ``space``;
    every problem (missing, not UTF-8, not JSON, a width of ``16.5``, a layer name that is not the
    space's, a width the space does not allow) is a one-line :class:`NetAdaptError` naming the file."""
    arch, data = read_architecture_file(path, what=what)
    path = architecture_path(path)
    try:
        if arch.space == space.fingerprint:  # (another space's file is refused as such by validate)
            check_layer_names(data, space)
        return space.validate(arch)
    except NetAdaptError as exc:
        raise NetAdaptError(f"{what} {path}: {exc}") from None
