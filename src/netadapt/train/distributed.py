"""Processes and devices: single process, or ``torchrun`` with DistributedDataParallel.

Under ``torchrun`` the environment holds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
:func:`distributed` then joins the process group (NCCL on GPUs, gloo on CPUs) and picks
``cuda:LOCAL_RANK``.  It does so for a single ``torchrun`` process too, so that one GPU runs the
multi-GPU code path (DistributedDataParallel, collectives) exactly as several would.  Without
``torchrun``, the run is one process and nothing is initialized.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from netadapt.errors import NetAdaptError

__all__ = ["DistContext", "distributed", "resolve_device"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    joined: bool = False  # a process group is in use (under torchrun, even with one process)

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, checkpoints and writes results."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Collectives and DistributedDataParallel are in use."""
        return self.joined or self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (float64, exact for counts)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t)
        return t.tolist()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; otherwise ``name``."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NetAdaptError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise NetAdaptError(f"device {name!r} was asked for but CUDA is not available")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


@contextmanager
def distributed(device: str = "auto") -> Iterator[DistContext]:
    """The process's :class:`DistContext`; joins (and finally leaves) the ``torchrun`` process group.

    A process group that already exists (created by the caller) is used and left alone.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    created = False
    launched = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ  # torchrun sets it, even for one process
    if launched and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        created = True
    joined = dist.is_initialized()
    if joined:
        world, rank = dist.get_world_size(), dist.get_rank()
        if rank == 0:
            log.info("process group: backend %s, %d process(es), device %s", dist.get_backend(), world, dev)
    try:
        yield DistContext(rank=rank, world=world, local_rank=local_rank, device=dev, joined=joined)
    finally:
        if created:
            dist.destroy_process_group()
