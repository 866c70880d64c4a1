"""Spreading sample evaluation over torch.distributed ranks (e.g. one GPU each under torchrun).

Every rank runs the same search; the samples of an iteration are rank 0's, each rank evaluates
an interleaved share and the results are gathered with ``all_gather_object``.  Without an
initialized process group (or with one rank) these functions do nothing special.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch.distributed as dist

__all__ = ["broadcast_from_rank0", "map_shared", "rank", "world_size"]

T = TypeVar("T")
R = TypeVar("R")


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of ranks (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def broadcast_from_rank0(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def map_shared(fn: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``fn(items)`` with the items dealt round-robin over the ranks and the results gathered
    back into the items' order on every rank.  Every rank must call it with the same items."""
    if not _active():
        return list(fn(list(items)))
    me, ranks = dist.get_rank(), dist.get_world_size()
    mine = list(fn(list(items[me::ranks])))
    gathered: list[list[R] | None] = [None] * ranks
    dist.all_gather_object(gathered, mine)
    out: list[R | None] = [None] * len(items)
    for r, results in enumerate(gathered):
        out[r::ranks] = results
    return out  # type: ignore[return-value]
