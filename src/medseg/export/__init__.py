"""Trained networks for other runtimes: ONNX (onnxruntime), int8 and float16 copies."""

from medseg.export.onnx import (
    EXPORT_FOLDER,
    OnnxNetwork,
    export_folder_of,
    export_onnx,
    is_export_folder,
    onnx_networks,
    record_quantization,
)
from medseg.export.quantize import half_precision_onnx, quantize_onnx

__all__ = [
    "EXPORT_FOLDER",
    "OnnxNetwork",
    "export_folder_of",
    "export_onnx",
    "half_precision_onnx",
    "is_export_folder",
    "onnx_networks",
    "quantize_onnx",
    "record_quantization",
]
