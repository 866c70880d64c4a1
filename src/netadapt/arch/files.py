"""Architecture files a user gives: read, checked against the search space, one-line errors.

An architecture JSON file (``Architecture.to_json(space)``) may name each layer; when it does,
the names must be the space's, in order, so that a file edited by hand or written for another
model cannot silently put its widths on the wrong layers.
"""

from __future__ import annotations

import json
import os
from itertools import zip_longest

from netadapt.arch.space import Architecture, SearchSpace
from netadapt.errors import NetAdaptError
from netadapt.io import read_text

__all__ = ["check_layer_names", "load_architecture"]


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
    """The architecture in the JSON file ``path``, validated against ``space``; every problem
    (missing, not UTF-8, not JSON, a width of ``16.5``, a layer name that is not the space's, a
    width the space does not allow) is a one-line :class:`NetAdaptError` naming the file."""
    text = read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NetAdaptError(f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        arch = Architecture.from_dict(data)
        if arch.space == space.fingerprint:  # (another space's file is refused as such by validate)
            check_layer_names(data, space)
        return space.validate(arch)
    except NetAdaptError as exc:
        raise NetAdaptError(f"{what} {path}: {exc}") from None
