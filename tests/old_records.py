"""Search run folders as versions before the score rename wrote them: each record's score under
``accuracy`` and its name, when the search was told one, under ``score``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netadapt.io import load_json, read_jsonl, save_json

_OLD_KEYS = {"score": "accuracy", "score_name": "score"}


def as_before_the_rename(value: Any) -> Any:
    """A record (or a list of them, or a state holding them) with the keys of earlier versions."""
    if isinstance(value, list):
        return [as_before_the_rename(v) for v in value]
    if isinstance(value, dict):
        return {_OLD_KEYS.get(k, k): as_before_the_rename(v) for k, v in value.items()}
    return value


def rewrite_as_before_the_rename(folder: Path) -> None:
    """Rewrite the records of search run folder ``folder`` with the keys of earlier versions."""
    for name in ("evaluated.jsonl", "history.jsonl"):
        path = folder / name
        if path.exists():
            path.write_text("".join(json.dumps(as_before_the_rename(r)) + "\n" for r in read_jsonl(path)))
    for name in ("search_state.json", "trajectory.json", "family.json"):
        path = folder / name
        if path.exists():
            save_json(path, as_before_the_rename(load_json(path)))
