"""A user's own metric: a shell command that measures an exported network and prints a number.

The command template names the exported network with ``{model}`` (an ONNX or TorchScript
file) and/or the architecture JSON with ``{arch}``; the tool fills in quoted paths to files in
a fresh temporary folder, runs the command through the shell and reads the *last* number the
command prints on stdout — e.g. ``adb push {model} /data/local/tmp && adb shell bench ...``
printing a latency, or a power-meter script printing energy.  Values are cached by
architecture (in memory, or in a JSON cache file that resumed searches reuse).

A run that times out, exits non-zero or prints no number is retried; after ``retries`` more
failures the metric raises a one-line :class:`NetAdaptError`.  A failure never writes to the
cache.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import string
import subprocess
import tempfile
from pathlib import Path

import torch

from netadapt.arch.space import Architecture
from netadapt.errors import NetAdaptError
from netadapt.export.formats import EXPORT_FORMATS, export_model
from netadapt.model.supernet import SuperNet
from netadapt.resources.cache import MetricCache, arch_key
from netadapt.resources.metrics import check_value

__all__ = ["PLACEHOLDERS", "CommandMetric", "parse_last_number", "parse_template"]

log = logging.getLogger(__name__)

PLACEHOLDERS = ("model", "arch")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
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


def parse_last_number(text: str) -> float | None:
    """The last number in ``text``, or ``None`` when there is none."""
    matches = _NUMBER.findall(text)
    return float(matches[-1]) if matches else None


def _last_line(text: str, limit: int = 160) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
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
            f"metric command failed {attempts} time(s) for architecture {arch_key(arch)[:48]}...: {reason} (command: {command})"
        )

    def _run_once(self, command: str) -> tuple[float | None, str]:
        """(value, "") on success, (None, why) on failure."""
        # A new session, so that a timeout kills the whole process group, not only the shell.
        proc = subprocess.Popen(
            command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return None, f"timed out after {self.timeout:g} s"
        if proc.returncode != 0:
            detail = _last_line(err) or _last_line(out)
            return None, f"exit status {proc.returncode}" + (f" ({detail})" if detail else "")
        number = parse_last_number(out)
        if number is None:
            shown = _last_line(out)
            return None, "no number in its output" + (f" (last line: {shown!r})" if shown else " (it printed nothing)")
        try:
            return check_value(number, "metric command"), ""
        except NetAdaptError as exc:
            return None, str(exc)

    def __repr__(self) -> str:
        return f"CommandMetric({self.template!r}, {self.export_format}, timeout={self.timeout:g})"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
