"""Export a network (a compact one, or any small module) to ONNX, TorchScript or a ``torch.export`` program.

Two levels share one exporter code path:

* bytes: :func:`onnx_bytes` and :func:`torchscript_bytes` give the serialized model of a module
  for given example inputs; the latency backends (:mod:`netadapt.resources.timing`) run them in
  memory, and :func:`export_model` writes them for the user-command metric
  (:mod:`netadapt.resources.command`).  :func:`onnx_session` opens an ONNX Runtime CPU session
  on such bytes or on a file.
* files: :func:`export_onnx`, :func:`export_torchscript` and :func:`export_program` export a
  discovered network with a random example input of its own size, check the serialized model
  against PyTorch's outputs (:func:`check_onnx`, :func:`check_torchscript`,
  :func:`check_program`) and only then write it.  Given a
  :class:`~netadapt.export.metadata.ModelMetadata`, each file carries it (preprocessing, class
  names, architecture, MACs), so that the file is all a user of the model needs.

ONNX goes through ``torch.onnx.export(..., dynamo=False)``, the TorchScript-based exporter: in
torch 2.14 it still works offline, writes the requested opset 17 and takes about 7 ms for one
layer and 0.4 s for a whole MobileNetV2, where the ``torch.export`` path (``dynamo=True``) takes
about 6 s per network and raises the opset to 18.  On these static convolutional graphs it is
exact, and the speed matters when a metric exports every sample of a search.  The dynamo
exporter is the fallback for a torch in which the legacy one is gone.

Files are written to a temporary file beside their target and renamed into place
(:func:`netadapt.io.atomic_write`), so an interrupted export never leaves a half-written model.
onnxruntime is imported only inside the functions that need it.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from netadapt.errors import NetAdaptError
from netadapt.export.metadata import METADATA_FILE, ModelMetadata
from netadapt.io import atomic_write

__all__ = [
    "EXPORT_FORMATS",
    "ONNX_OPSET",
    "check_onnx",
    "check_program",
    "check_torchscript",
    "export_model",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "onnx_bytes",
    "onnx_session",
    "program_bytes",
    "torchscript_bytes",
]

log = logging.getLogger(__name__)

ONNX_OPSET = 17
EXPORT_FORMATS = ("onnx", "torchscript")  # of export_model (the user-command metric)


# ---------------------------------------------------------------------------------------------
# bytes level


def _input_names(inputs: tuple[Tensor, ...]) -> list[str]:
    return ["input"] if len(inputs) == 1 else [f"input{i}" for i in range(len(inputs))]


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""


@contextmanager
def _serializing(module: nn.Module, what: str) -> Iterator[io.BytesIO]:
    """A buffer to serialize ``module`` into, with the module in eval mode, gradients off and the
    exporters' warnings silenced (each caller says why); the training mode is restored after,
    and any failure becomes a one-line ``NetAdaptError`` saying ``what`` failed."""
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            yield io.BytesIO()
    except Exception as exc:
        raise NetAdaptError(f"{what} failed: {type(exc).__name__}: {_first_line(exc)}") from None
    finally:
        module.train(was_training)


def _archive_files(metadata: ModelMetadata | None) -> dict[str, str] | None:
    """The extra files that carry ``metadata`` in a TorchScript or ``torch.export`` archive."""
    return None if metadata is None else {METADATA_FILE: metadata.to_json()}


def onnx_bytes(
    module: nn.Module,
    inputs: tuple[Tensor, ...],
    *,
    opset: int = ONNX_OPSET,
    dynamic_batch: bool = False,
) -> bytes:
    """The ONNX model of ``module`` in eval mode for inputs shaped like ``inputs``, as bytes.

    Inputs are named ``input`` (``input0``, ``input1``, ... for several) and the output
    ``output``; with ``dynamic_batch`` their first axis is a free ``batch`` dimension, otherwise
    every shape is fixed.  The module's training mode is restored afterwards.
    """
    names = _input_names(inputs)
    dynamic_axes = {name: {0: "batch"} for name in [*names, "output"]} if dynamic_batch else None
    # The legacy exporter warns that it is deprecated, and warns about Python-level shape
    # arithmetic it records as constants: intended, channel counts are fixed.
    with _serializing(module, "ONNX export") as buffer:
        try:
            torch.onnx.export(
                module, inputs, buffer, opset_version=opset, dynamo=False,
                input_names=names, output_names=["output"], dynamic_axes=dynamic_axes,
            )  # fmt: skip
        except Exception as exc:  # the legacy exporter is gone or failed: try torch.export
            log.debug("legacy ONNX export failed (%s); using the dynamo exporter", exc)
            buffer.seek(0)
            buffer.truncate()
            program = torch.onnx.export(
                module, inputs, dynamo=True, opset_version=opset, input_names=names,
                output_names=["output"], dynamic_axes=dynamic_axes, verbose=False,
            )  # fmt: skip
            program.save(buffer)  # type: ignore[union-attr]
    return buffer.getvalue()


def torchscript_bytes(module: nn.Module, inputs: tuple[Tensor, ...], *, extra_files: dict[str, str] | None = None) -> bytes:
    """The TorchScript (``torch.jit.trace``) model of ``module`` in eval mode, as bytes; with
    ``extra_files`` (name → text) stored in the archive beside it.

    The module's training mode is restored afterwards.
    """
    # The tracer's notes about shapes read as Python values are expected (channel counts are
    # fixed), and so is TorchScript's deprecation notice.
    with _serializing(module, "TorchScript export") as buffer:
        traced = torch.jit.trace(module, inputs, check_trace=False)
        torch.jit.save(traced, buffer, _extra_files=extra_files)
    return buffer.getvalue()


def export_model(module: nn.Module, inputs: tuple[Tensor, ...], path: str | os.PathLike, *, fmt: str = "onnx") -> Path:
    """Write ``module`` to ``path`` (atomically) as ``fmt``: ``"onnx"`` (fixed shapes) or
    ``"torchscript"``; no check against PyTorch."""
    if fmt == "onnx":
        data = onnx_bytes(module, inputs)
    elif fmt == "torchscript":
        data = torchscript_bytes(module, inputs)
    else:
        raise NetAdaptError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return atomic_write(path, lambda f: f.write(data))


def _onnxruntime(missing: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise NetAdaptError(missing) from None
    return ort


def onnx_session(model: bytes | str | os.PathLike, *, threads: int = 1):
    """An ONNX Runtime CPU session with a fixed thread count and full graph optimization."""
    ort = _onnxruntime("the onnxruntime backend needs onnxruntime (pip install 'netadapt[onnx]')")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# file level


def _example(model: nn.Module, input_size: int | None, in_channels: int | None, batch: int = 2) -> torch.Tensor:
    size = input_size or getattr(model, "input_size", None)
    if size is None:
        raise NetAdaptError("input_size is needed to export this module")
    channels = in_channels or getattr(model, "in_channels", 3)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(0)).to(device)


def _named(source: bytes | str | os.PathLike, prefix: str = "") -> str:
    """`` <prefix><path>`` for a file, nothing for bytes (error messages)."""
    return "" if isinstance(source, bytes) else f" {prefix}{source}"


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int | None = None,
    in_channels: int | None = None,
    check: bool = True,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Trace ``model`` (eval mode) to a TorchScript file; with ``check`` the serialized model must
    reproduce the module's outputs before the file is written.  ``metadata`` is stored as the
    archive's extra file ``netadapt.json``."""
    model = model.eval()
    x = _example(model, input_size, in_channels)
    data = torchscript_bytes(model, (x,), extra_files=_archive_files(metadata))
    if check:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notice on loading
            check_torchscript(model, data, x)
    return atomic_write(path, lambda f: f.write(data))


def check_torchscript(model: nn.Module, path: bytes | str | os.PathLike, x: torch.Tensor, atol: float = 1e-4) -> float:
    """Largest absolute difference between ``model`` and the TorchScript model (a file, or its
    bytes) on ``x``."""
    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    loaded = torch.jit.load(source, map_location=x.device)
    with torch.no_grad():
        ref = model(x)
        diff = float((loaded(x) - ref).abs().max())
    if diff > atol * max(1.0, float(ref.abs().max())):
        raise NetAdaptError(f"TorchScript export{_named(path, 'of ')} differs from PyTorch by {diff:.3g}")
    return diff


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int | None = None,
    in_channels: int | None = None,
    opset: int = ONNX_OPSET,
    check: bool = True,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Export ``model`` (eval mode, dynamic batch) to an ONNX file; with ``check``, ONNX Runtime
    must reproduce the PyTorch outputs before the file is written.  ``metadata`` goes into the
    model's ``metadata_props`` (:meth:`ModelMetadata.onnx_properties`; needs the ``onnx`` package).

    Uses :func:`onnx_bytes`, so the TorchScript-based exporter (see the module docstring).
    """
    if opset < 17:
        raise NetAdaptError(f"ONNX opset {opset} is too old; use 17 or newer")
    model = model.eval()
    x = _example(model, input_size, in_channels)
    data = onnx_bytes(model, (x,), opset=opset, dynamic_batch=True)
    if metadata is not None:
        data = _with_onnx_properties(data, metadata.onnx_properties())
    if check:
        try:
            check_onnx(model, data, x)
        except NetAdaptError:
            raise
        except Exception as exc:  # ONNX Runtime raises many types
            raise NetAdaptError(f"cannot export to ONNX: {type(exc).__name__}: {_first_line(exc)}") from None
    return atomic_write(path, lambda f: f.write(data))


def _with_onnx_properties(data: bytes, properties: dict[str, str]) -> bytes:
    """The ONNX model ``data`` with ``properties`` in its ``metadata_props``."""
    try:
        import onnx
    except ImportError:
        raise NetAdaptError("ONNX metadata needs the onnx package (pip install 'netadapt[onnx]')") from None
    proto = onnx.load_from_string(data)
    onnx.helper.set_model_props(proto, properties)
    return proto.SerializeToString()


def check_onnx(model: nn.Module, path: bytes | str | os.PathLike, x: torch.Tensor, atol: float = 1e-4) -> float:
    """Largest absolute difference between ``model`` and ONNX Runtime running the ONNX model (a
    file, or its bytes) on ``x``."""
    ort = _onnxruntime("onnxruntime is not installed: pip install 'netadapt[onnx]'")
    source = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x.detach().cpu().numpy()})
    with torch.no_grad():
        ref = model(x).detach().cpu().numpy()
    diff = float(np.abs(out - ref).max())
    if diff > atol * max(1.0, float(np.abs(ref).max())):
        raise NetAdaptError(f"ONNX export{_named(path)} differs from PyTorch by {diff:.3g}")
    return diff


def program_bytes(
    module: nn.Module, inputs: tuple[Tensor, ...], *, dynamic_batch: bool = True, extra_files: dict[str, str] | None = None
) -> bytes:
    """The ``torch.export`` program of ``module`` in eval mode (``torch.export.save``'s archive,
    ``model.pt2``) as bytes; the first axis of every input is a free batch dimension unless
    ``dynamic_batch`` is off.  ``extra_files`` (name → text) are stored in the archive."""
    dims = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1, max=1 << 16)
        dims = tuple({0: batch} for _ in inputs)
    # torch.export's notes on the graph it captures are not the user's concern.
    with _serializing(module, "torch.export") as buffer:
        program = torch.export.export(module, inputs, dynamic_shapes=dims)
        torch.export.save(program, buffer, extra_files=extra_files)
    return buffer.getvalue()


def export_program(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    input_size: int | None = None,
    in_channels: int | None = None,
    check: bool = True,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Export ``model`` (eval mode, dynamic batch) as a ``torch.export`` program (``.pt2``, load it
    with ``torch.export.load(path).module()``); with ``check`` the saved program must reproduce
    the module's outputs before the file is written.  ``metadata`` is stored as the archive's
    extra file ``netadapt.json``."""
    model = model.eval()
    x = _example(model, input_size, in_channels)
    data = program_bytes(model, (x,), extra_files=_archive_files(metadata))
    if check:
        check_program(model, data, x)
    return atomic_write(path, lambda f: f.write(data))


def check_program(model: nn.Module, path: bytes | str | os.PathLike, x: torch.Tensor, atol: float = 1e-4) -> float:
    """Largest absolute difference between ``model`` and the saved ``torch.export`` program (a
    file, or its bytes) on ``x`` and on ``x`` with another batch size."""
    source = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    try:
        loaded = torch.export.load(source).module()
    except Exception as exc:
        raise NetAdaptError(f"the torch.export program{_named(path, 'of ')} does not load: {type(exc).__name__}") from None
    diff = 0.0
    with torch.no_grad():
        for inputs in (x, torch.cat([x, x[:1]])):  # the batch dimension is free
            ref = model(inputs)
            diff = max(diff, float((loaded(inputs) - ref).abs().max()))
            if diff > atol * max(1.0, float(ref.abs().max())):
                raise NetAdaptError(f"torch.export program{_named(path, 'of ')} differs from PyTorch by {diff:.3g}")
    return diff
