"""Keep freed memory in the process instead of handing it back to the system (glibc only).

A CPU training step allocates and frees the same activation-sized buffers (megabytes each) in
every step.  glibc's ``malloc`` serves allocations above a threshold with ``mmap`` and returns
them with ``munmap`` when freed, and trims the heap's top when it grows past another threshold;
the next step then takes a page fault for every 4 KiB page it touches again, and the kernel
zero-fills each one.  Measured on a 2-core VM (``benchmarks/bench_train_step.py --allocator
both``, docs/benchmarks.md): thousands of faults per step, and a step several percent slower,
more for ordered-dropout steps, which allocate more buffers of more sizes than plain ones.

:func:`retain_freed_memory` raises both thresholds (``mallopt``), so freed buffers stay in the
heap and are reused: the process's resident memory stays at its peak instead of falling back
between steps.  PyTorch's CPU performance guide gets the same effect by preloading jemalloc or
tcmalloc; this needs no other library.  The ``netadapt`` command calls it at start-up unless the
environment variable ``NETADAPT_MALLOC=system`` is set; a Python user calls it explicitly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["retain_freed_memory"]

# glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Buffers above 1 GiB are still mapped and unmapped.  glibc's own dynamic threshold stops at
# 32 MiB, below a MobileNetV2's largest CIFAR activations at batch 64 (36 MiB).
_MMAP_THRESHOLD = 1 << 30
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest, never trim


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; ``True`` when they were set,
    ``False`` where there is no glibc (macOS, Windows, musl) and nothing changed."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
