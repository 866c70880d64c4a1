"""Export of discovered networks: TorchScript and ONNX (checked against PyTorch)."""

from netadapt.export.formats import check_onnx, check_torchscript, export_onnx, export_torchscript

__all__ = ["check_onnx", "check_torchscript", "export_onnx", "export_torchscript"]
