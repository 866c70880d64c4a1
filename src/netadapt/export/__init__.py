"""Export of discovered networks: a self-contained PyTorch file, TorchScript, ONNX and a
``torch.export`` program, each carrying its preprocessing and labels (:mod:`netadapt.export.metadata`)."""

from netadapt.export.formats import (
    check_onnx,
    check_program,
    check_torchscript,
    export_onnx,
    export_program,
    export_torchscript,
)
from netadapt.export.metadata import ModelMetadata, read_metadata
from netadapt.export.package import load_compact, save_compact

__all__ = [
    "ModelMetadata",
    "check_onnx",
    "check_program",
    "check_torchscript",
    "export_onnx",
    "export_program",
    "export_torchscript",
    "load_compact",
    "read_metadata",
    "save_compact",
]
