"""Export of discovered networks: a self-contained PyTorch file, TorchScript and ONNX."""

from netadapt.export.formats import check_onnx, check_torchscript, export_onnx, export_torchscript
from netadapt.export.package import load_compact, save_compact

__all__ = ["check_onnx", "check_torchscript", "export_onnx", "export_torchscript", "load_compact", "save_compact"]
