"""A user's own metric: a shell command that measures an exported network and prints a number.

The command template names the exported network with ``{model}`` (an ONNX or TorchScript
file) and/or the architecture JSON with ``{arch}``; the tool fills in quoted paths to files in
a fresh temporary folder and runs the command through the shell, in a process group of its own
— e.g. ``adb push {model} /data/local/tmp && adb shell bench ...`` printing a latency, or a
power-meter script printing energy.  Values are cached by architecture (in memory, or in a JSON
cache file that resumed searches reuse).

The output is read strictly: the *last non-empty line* of stdout must be one number alone
(``12.5``) or a JSON object holding it (``{"value": 12.5}``, or one entry such as
``{"latency_ms": 12.5}``), and the value must be finite and positive.  Anything else — "done, 3
runs", "error 404" — is a failure, never a value.

A run that times out, exits non-zero or prints no valid value is retried; after ``retries``
more failures the metric raises a one-line :class:`NetAdaptError` naming the architecture and
showing the end of the output.  A failure never writes to the cache.  After every run — and on
a timeout, Ctrl-C or an exception — the command's whole process group is killed, so nothing it
started is left running, and the temporary folder is removed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import signal
import string
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.export.formats import EXPORT_FORMATS, export_model
from netadapt.model.supernet import SuperNet
from netadapt.resources.cache import MetricCache, arch_key

__all__ = ["PLACEHOLDERS", "CommandMetric", "parse_output", "parse_template"]

log = logging.getLogger(__name__)

PLACEHOLDERS = ("model", "arch")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_OUTPUT_HELP = 'print the value alone, or {"value": N}, on the last line'

_SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


def parse_template(template: str) -> set[str]:
    """The placeholders used by a command template; one-line errors for a bad template."""
    if not template or not template.strip():
        raise NetAdaptError("metric command is empty")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise NetAdaptError(
            f"metric command {template!r} is not a valid template ({exc}; write literal braces as {{{{ }}}})"
        ) from None
    unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
    if unknown:
        names = ", ".join("{" + f + "}" for f in unknown)
        raise NetAdaptError(f"metric command uses unknown placeholder(s) {names}; only {{model}} and {{arch}} are filled in")
    if not fields:
        raise NetAdaptError("metric command must contain {model} (the exported network) or {arch} (the architecture JSON)")
    return set(fields)


def parse_output(text: str) -> tuple[float | None, str]:
    """(value, "") from a command's stdout, or (None, why not).

    The last non-empty line must be one number alone or a JSON object with a ``"value"``
    entry or a single entry; the number must be finite and positive."""
    line = _last_line(text, limit=None)
    if not line:
        return None, f"it printed nothing on stdout ({_OUTPUT_HELP})"
    value: object = None
    if _NUMBER.fullmatch(line):
        value = float(line)
    elif line.startswith("{"):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            value = data["value"] if "value" in data else next(iter(data.values())) if len(data) == 1 else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"its last line {_clip(line)!r} is not a number alone ({_OUTPUT_HELP})"
    if not math.isfinite(value) or value <= 0:
        return None, f"it printed {value}; a resource must be a finite positive number"
    return float(value), ""


def _last_line(text: str, limit: int | None = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    return line if limit is None else _clip(line, limit)


def _clip(line: str, limit: int = 160) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."


class CommandMetric:
    """A metric computed by running the user's command on the exported sub-network.

    ``export_format`` is ``"onnx"`` or ``"torchscript"``; ``timeout`` is in seconds per run;
    ``retries`` is how many more times a failed run is tried; ``cache`` a JSON file that keeps
    values across runs (``None``: in memory).
    """

    def __init__(
        self,
        supernet: SuperNet,
        template: str,
        *,
        export_format: str = "onnx",
        timeout: float = 600.0,
        retries: int = 2,
        cache: str | os.PathLike | None = None,
        name: str = "command",
        unit: str = "",
    ) -> None:
        self.fields = parse_template(template)
        if export_format not in EXPORT_FORMATS:
            raise NetAdaptError(f"unknown export format {export_format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
        if timeout <= 0:
            raise NetAdaptError(f"command timeout must be positive, got {timeout}")
        if retries < 0:
            raise NetAdaptError(f"retries must be ≥ 0, got {retries}")
        self.supernet = supernet
        self.template = template
        self.export_format = export_format
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.name = name
        self.unit = unit
        self.cache = MetricCache(cache, metric=f"command[{export_format}]: {template}")

    def __call__(self, arch: Architecture) -> float:
        self.supernet.space.validate(arch)
        cached = self.cache.get(arch)
        if cached is not None:
            return cached
        with tempfile.TemporaryDirectory(prefix="netadapt-metric-") as tmp:
            command = self._command(arch, Path(tmp))
            value = self._run_with_retries(command, arch)
        self.cache.put(arch, value)
        return value

    def _command(self, arch: Architecture, folder: Path) -> str:
        paths = {}
        if "model" in self.fields:
            net = self.supernet.extract(arch).eval()
            size = self.supernet.input_size
            x = torch.randn(1, self.supernet.in_channels, size, size, generator=torch.Generator().manual_seed(0))
            paths["model"] = export_model(net, (x,), folder / f"model{_SUFFIX[self.export_format]}", fmt=self.export_format)
        if "arch" in self.fields:
            paths["arch"] = folder / "arch.json"
            paths["arch"].write_text(arch.to_json(self.supernet.space), encoding="utf-8")
        return self.template.format(**{k: shlex.quote(str(v)) for k, v in paths.items()})

    def _run_with_retries(self, command: str, arch: Architecture) -> float:
        attempts = 1 + self.retries
        reason = ""
        for attempt in range(1, attempts + 1):
            value, reason = self._run_once(command)
            if value is not None:
                return value
            log.warning("metric command failed (attempt %d of %d): %s", attempt, attempts, reason)
        raise NetAdaptError(
            f"metric command failed {attempts} time(s) for architecture {arch_key(arch)}: {reason} (command: {command})"
        )

    def _run_once(self, command: str) -> tuple[float | None, str]:
        """(value, "") on success, (None, why) on failure."""
        # A new session: the command and everything it starts form one process group, which is
        # killed after the run, so a timeout or an interrupt leaves nothing running.
        deferred = _DeferredSignals()
        with deferred:  # an interrupt while Popen starts the command would leave its group running
            proc = subprocess.Popen(
                command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
        try:
            deferred.deliver()  # now that the group can be ended
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _end_group(proc, reap=True)
            return None, f"timed out after {self.timeout:g} s (--metric-timeout)"
        except BaseException:  # Ctrl-C, or SIGTERM raised as KeyboardInterrupt by the command line
            _end_group(proc, reap=True)
            raise
        _end_group(proc, reap=False)  # what it left running in the background
        if proc.returncode != 0:
            detail = _last_line(err) or _last_line(out)
            return None, f"exit status {proc.returncode}" + (f" ({detail})" if detail else "")
        return parse_output(out)

    def __repr__(self) -> str:
        return f"CommandMetric({self.template!r}, {self.export_format}, timeout={self.timeout:g})"


class _DeferredSignals:
    """Within the block, SIGINT and SIGTERM are recorded instead of handled (main thread only);
    :meth:`deliver` then hands the first one recorded to the handler that was in place."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.previous: dict[int, object] = {}
        self.caught: list[tuple[int, object]] = []

    def __enter__(self) -> _DeferredSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, lambda n, frame: self.caught.append((n, frame)))
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def deliver(self) -> None:
        if not self.caught:
            return
        signum, frame = self.caught[0]
        handler = self.previous.get(signum)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)


def _end_group(proc: subprocess.Popen, *, reap: bool) -> None:
    """Kill the command's process group; with ``reap``, also end the interrupted
    ``communicate`` (close the pipes, collect the shell's exit status)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group is gone already
        if proc.poll() is None:
            proc.kill()
    if not reap:
        return
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # a process that left the group still holds a pipe
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
