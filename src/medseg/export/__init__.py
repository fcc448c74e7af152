"""Trained networks for other runtimes: ONNX (onnxruntime), and their int8 quantisation."""

from medseg.export.onnx import (
    EXPORT_FOLDER,
    OnnxNetwork,
    export_folder_of,
    export_onnx,
    is_export_folder,
    onnx_networks,
    record_quantization,
)
from medseg.export.quantize import quantize_onnx

__all__ = [
    "EXPORT_FOLDER",
    "OnnxNetwork",
    "export_folder_of",
    "export_onnx",
    "is_export_folder",
    "onnx_networks",
    "quantize_onnx",
    "record_quantization",
]
