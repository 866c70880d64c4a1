"""Timing a module on a backend: PyTorch eager on CPU, ONNX Runtime on CPU, CUDA.

One measurement = a few warm-up runs, then *blocks* of back-to-back runs until ``min_time``
seconds have passed (and at least ``min_blocks`` blocks), each block's per-run time one sample —
the scheme of ``torch.utils.benchmark.Timer.blocked_autorange``.  The block size is ours,
though: ``blocked_autorange`` makes a block long enough that reading the clock costs < 0.01% of
it, which for a 5 µs layer means 60 ms blocks, one or two per measurement; we aim at
``block_time`` (1 ms), so a measurement has dozens of blocks and a shared machine leaves some of
them undisturbed (the clock read costs ~0.1 µs, < 0.1% of a block).  CUDA runs are synchronized
around every block, so timings include the kernels, not only their launch.  Thread counts are
fixed: ``torch.set_num_threads`` (restored afterwards) for PyTorch, the session's intra-op
threads for ONNX Runtime.

Every measurement keeps the mean, spread, median and minimum of its blocks.  Which one stands
for "the latency" is the caller's :data:`STATISTICS` choice: the median is the typical run on a
dedicated device; the minimum is the run no other process disturbed.  Interference only ever
adds time, so on a shared machine the minimum is the steadier figure (``docs/resources.md``).
"""

from __future__ import annotations

import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.export.formats import onnx_bytes, onnx_session
from netadapt.version import __version__

__all__ = [
    "BACKENDS",
    "STATISTICS",
    "MeasureFn",
    "Measurer",
    "Timing",
    "check_statistic",
    "cpu_name",
    "environment",
    "make_runner",
]

log = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "torch", "cuda")
STATISTICS = ("median", "min")


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings of one thing, in milliseconds.

    ``count`` is the number of timed blocks; every block ran ``number`` calls and contributes
    its per-call time as one sample.
    """

    mean: float
    std: float
    median: float
    min: float
    count: int
    number: int = 1

    @classmethod
    def from_samples(cls, samples_ms: list[float], number: int = 1) -> Timing:
        if not samples_ms:
            raise ValueError("no timing samples")
        std = statistics.stdev(samples_ms) if len(samples_ms) > 1 else 0.0
        return cls(
            mean=statistics.fmean(samples_ms),
            std=std,
            median=statistics.median(samples_ms),
            min=min(samples_ms),
            count=len(samples_ms),
            number=number,
        )

    @classmethod
    def exact(cls, value_ms: float) -> Timing:
        """A timing known without measuring (fake timers in tests, free operations)."""
        return cls(mean=value_ms, std=0.0, median=value_ms, min=value_ms, count=1)

    def value(self, statistic: str) -> float:
        """The median or the minimum (see :data:`STATISTICS`)."""
        return float(getattr(self, check_statistic(statistic)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Timing:
        try:
            return cls(
                mean=float(d["mean"]),
                std=float(d["std"]),
                median=float(d["median"]),
                min=float(d.get("min", d["median"])),
                count=int(d["count"]),
                number=int(d.get("number", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise NetAdaptError(f"malformed timing entry {d!r}: {exc}") from None


#: Measures one module on fixed inputs: ``(module, inputs) -> Timing``.  The lookup-table
#: builder takes one, so tests can inject a deterministic fake.
MeasureFn = Callable[[nn.Module, tuple[Tensor, ...]], Timing]


def check_statistic(statistic: str) -> str:
    if statistic not in STATISTICS:
        raise NetAdaptError(f"unknown statistic {statistic!r}; choose one of {', '.join(STATISTICS)}")
    return statistic


def _check_backend(backend: str, threads: int) -> None:
    if backend not in BACKENDS:
        raise NetAdaptError(f"unknown latency backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if threads < 1:
        raise NetAdaptError(f"threads must be at least 1, got {threads}")
    if backend == "cuda" and not torch.cuda.is_available():
        raise NetAdaptError("the cuda backend needs a CUDA device, and none is available")


def make_runner(module: nn.Module, inputs: tuple[Tensor, ...], *, backend: str, threads: int = 1) -> Callable[[], object]:
    """A no-argument function that runs ``module`` (eval mode) once on ``inputs`` on ``backend``."""
    _check_backend(backend, threads)
    module = module.eval()
    if backend == "onnxruntime":
        return _onnx_runner(module, inputs, threads)
    if backend == "cuda":
        module = module.to("cuda")
        inputs = tuple(x.to("cuda") for x in inputs)

    def run() -> object:
        with torch.inference_mode():
            return module(*inputs)

    return run


def _onnx_runner(module: nn.Module, inputs: tuple[Tensor, ...], threads: int) -> Callable[[], list]:
    """ONNX Runtime run with inputs and outputs bound once (I/O binding).

    ``session.run`` would copy every output into a new numpy array: for one layer timed by
    itself that copy is a cost the layer does not have inside a network (tens of µs for a
    large feature map), and it would add up over the table.  With preallocated outputs a run
    is the graph alone.  Returns the bound outputs (``OrtValue``s).
    """
    import onnxruntime as ort

    session = onnx_session(onnx_bytes(module, inputs), threads=threads)
    feeds = {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs, strict=True)}
    first = session.run(None, feeds)  # output shapes and types
    binding = session.io_binding()
    for name, array in feeds.items():
        binding.bind_cpu_input(name, array)
    outputs = [ort.OrtValue.ortvalue_from_shape_and_type(y.shape, y.dtype) for y in first]
    for arg, value in zip(session.get_outputs(), outputs, strict=True):
        binding.bind_ortvalue_output(arg.name, value)

    def run() -> list:
        session.run_with_iobinding(binding)
        return outputs

    return run


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run PyTorch with ``threads`` intra-op threads, restoring the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class Measurer:
    """Times modules on one backend with fixed settings; call it as a :data:`MeasureFn`.

    ``warmup`` runs come first (ONNX Runtime and the CUDA caching allocator settle in the first
    calls); then blocks of about ``block_time`` seconds are timed until ``min_time`` seconds
    and ``min_blocks`` blocks.
    """

    backend: str = "onnxruntime"
    threads: int = 1
    warmup: int = 5
    min_time: float = 0.05
    block_time: float = 1e-3
    min_blocks: int = 5

    def __post_init__(self) -> None:
        _check_backend(self.backend, self.threads)
        if self.warmup < 0 or self.min_time <= 0 or self.block_time <= 0 or self.min_blocks < 1:
            raise NetAdaptError("warmup must be ≥ 0, min_time and block_time > 0, min_blocks ≥ 1")

    def _block(self, run: Callable[[], object], number: int) -> float:
        if self.backend == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(number):
            run()
        if self.backend == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - began

    def time(self, run: Callable[[], object]) -> Timing:
        """Time a prepared runner (see :func:`make_runner`)."""
        with _torch_threads(self.threads):
            self._block(run, self.warmup)
            once = min(self._block(run, 1) for _ in range(3))
            number = max(1, min(100_000, round(self.block_time / max(once, 1e-9))))
            samples: list[float] = []
            total = 0.0
            while total < self.min_time or len(samples) < self.min_blocks:
                elapsed = self._block(run, number)
                samples.append(elapsed / number * 1e3)
                total += elapsed
        return Timing.from_samples(samples, number)

    def __call__(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> Timing:
        return self.time(make_runner(module, inputs, backend=self.backend, threads=self.threads))

    def settings(self) -> dict:
        return {"warmup": self.warmup, "min_time": self.min_time, "block_time": self.block_time, "min_blocks": self.min_blocks}


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module reports: which machine
    a figure came from (two x86_64 VMs can be an AMD EPYC and an Intel Xeon)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(backend: str, threads: int) -> dict:
    """Where a latency was measured: device, backend, threads and library versions."""
    versions = {"python": platform.python_version(), "torch": torch.__version__, "netadapt": __version__}
    if backend == "onnxruntime":
        ort = sys.modules.get("onnxruntime")
        if ort is None:
            import onnxruntime as ort
        versions["onnxruntime"] = ort.__version__
    if backend == "cuda" and torch.cuda.is_available():
        device = torch.cuda.get_device_name()
        versions["cuda"] = str(torch.version.cuda)
    else:
        device = cpu_name()
    return {"device": device, "platform": platform.platform(), "backend": backend, "threads": threads, "versions": versions}
