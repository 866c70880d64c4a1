"""Export a compact network to TorchScript and ONNX, each checked against PyTorch's outputs.

Files are written beside their target and renamed into place, so an interrupted export never
leaves a half-written model.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from netadapt.errors import NetAdaptError

__all__ = ["check_onnx", "check_torchscript", "export_onnx", "export_torchscript"]


def _example(model: nn.Module, input_size: int | None, in_channels: int | None, batch: int = 2) -> torch.Tensor:
    size = input_size or getattr(model, "input_size", None)
    if size is None:
        raise NetAdaptError("input_size is needed to export this module")
    channels = in_channels or getattr(model, "in_channels", 3)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device)


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int | None = None,
    in_channels: int | None = None,
    check: bool = True,
) -> Path:
    """Trace ``model`` (eval mode) to a TorchScript file; with ``check`` the loaded file must
    reproduce the module's outputs."""
    path = Path(path)
    model = model.eval()
    x = _example(model, input_size, in_channels)
    tmp = _temp_beside(path)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # Channel counts of a compact network are fixed, so the tracer's notes about shapes
            # read as Python values are expected; TorchScript's deprecation notice likewise.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, x)
            torch.jit.save(traced, str(tmp))
            if check:
                check_torchscript(model, tmp, x)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_torchscript(model: nn.Module, path: str | os.PathLike, x: torch.Tensor, atol: float = 1e-4) -> float:
    """Largest absolute difference between ``model`` and the TorchScript file on ``x``."""
    loaded = torch.jit.load(str(path), map_location=x.device)
    with torch.no_grad():
        ref = model(x)
        diff = float((loaded(x) - ref).abs().max())
    if diff > atol * max(1.0, float(ref.abs().max())):
        raise NetAdaptError(f"TorchScript export of {path} differs from PyTorch by {diff:.3g}")
    return diff


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int | None = None,
    in_channels: int | None = None,
    opset: int = 17,
    check: bool = True,
) -> Path:
    """Export ``model`` (eval mode, dynamic batch) to ONNX; with ``check``, ONNX Runtime must
    reproduce the PyTorch outputs.

    Uses the TorchScript-based exporter: on these static convolutional graphs it is exact and
    about 20x faster than the ``torch.export`` one, which matters when a metric exports every
    sample of a search.
    """
    if opset < 17:
        raise NetAdaptError(f"ONNX opset {opset} is too old; use 17 or newer")
    path = Path(path)
    model = model.eval()
    x = _example(model, input_size, in_channels)
    tmp = _temp_beside(path)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation notice, see docstring
            torch.onnx.export(
                model,
                (x,),
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        if check:
            check_onnx(model, tmp, x)
        os.replace(tmp, path)
    except NetAdaptError:
        raise
    except Exception as exc:  # the exporter raises many types
        raise NetAdaptError(f"cannot export to ONNX: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(model: nn.Module, path: str | os.PathLike, x: torch.Tensor, atol: float = 1e-4) -> float:
    """Largest absolute difference between ``model`` and ONNX Runtime on ``x``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise NetAdaptError("onnxruntime is not installed: pip install 'netadapt[onnx]'") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x.detach().cpu().numpy()})
    with torch.no_grad():
        ref = model(x).detach().cpu().numpy()
    diff = float(np.abs(out - ref).max())
    if diff > atol * max(1.0, float(np.abs(ref).max())):
        raise NetAdaptError(f"ONNX export {path} differs from PyTorch by {diff:.3g}")
    return diff
