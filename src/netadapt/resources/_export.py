"""Export a compact network (or any small module) to ONNX or TorchScript.

Used by the latency backends and by the user-command metric; a later export stage may take
these helpers over.

ONNX goes through ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter: in
torch 2.14 it still works offline, writes the requested opset 17 and takes about 7 ms for one
layer and 0.4 s for a whole MobileNetV2, where the ``torch.export`` path (``dynamo=True``) takes
about 6 s per network and raises the opset to 18.  The dynamo exporter is the fallback for a
torch in which the legacy one is gone.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.io import atomic_write

__all__ = ["EXPORT_FORMATS", "ONNX_OPSET", "export_model", "export_onnx", "export_torchscript", "onnx_session"]

log = logging.getLogger(__name__)

ONNX_OPSET = 17
EXPORT_FORMATS = ("onnx", "torchscript")


def _names(inputs: tuple[Tensor, ...]) -> list[str]:
    return ["input"] if len(inputs) == 1 else [f"input{i}" for i in range(len(inputs))]


def export_onnx(module: nn.Module, inputs: tuple[Tensor, ...], *, opset: int = ONNX_OPSET) -> bytes:
    """The ONNX model of ``module`` in eval mode for inputs shaped like ``inputs``, as bytes."""
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter warns that it is deprecated, and warns about Python-level
            # shape arithmetic it records as constants: intended, shapes are fixed here.
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    module, inputs, buffer, opset_version=opset, dynamo=False,
                    input_names=_names(inputs), output_names=["output"],
                )  # fmt: skip
            except Exception as exc:  # the legacy exporter is gone or failed: try torch.export
                log.debug("legacy ONNX export failed (%s); using the dynamo exporter", exc)
                buffer = io.BytesIO()
                program = torch.onnx.export(
                    module, inputs, dynamo=True, opset_version=opset,
                    input_names=_names(inputs), output_names=["output"], verbose=False,
                )  # fmt: skip
                program.save(buffer)  # type: ignore[union-attr]
    except Exception as exc:
        raise NetAdaptError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        module.train(was_training)
    return buffer.getvalue()


def export_torchscript(module: nn.Module, inputs: tuple[Tensor, ...]) -> bytes:
    """The TorchScript (``torch.jit.trace``) model of ``module`` in eval mode, as bytes."""
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about fixed shapes, as above
            traced = torch.jit.trace(module, inputs, check_trace=False)
            torch.jit.save(traced, buffer)
    except Exception as exc:
        raise NetAdaptError(f"TorchScript export failed: {type(exc).__name__}: {exc}") from None
    finally:
        module.train(was_training)
    return buffer.getvalue()


def export_model(module: nn.Module, inputs: tuple[Tensor, ...], path: str | os.PathLike, *, fmt: str = "onnx") -> Path:
    """Write ``module`` to ``path`` (atomically) as ``fmt``: ``"onnx"`` or ``"torchscript"``."""
    if fmt == "onnx":
        data = export_onnx(module, inputs)
    elif fmt == "torchscript":
        data = export_torchscript(module, inputs)
    else:
        raise NetAdaptError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return atomic_write(path, lambda f: f.write(data))


def onnx_session(model: bytes | str | os.PathLike, *, threads: int = 1):
    """An ONNX Runtime CPU session with a fixed thread count and full graph optimization."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise NetAdaptError("the onnxruntime backend needs onnxruntime (pip install 'netadapt[onnx]')") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
