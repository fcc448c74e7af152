"""Trained networks for other runtimes: ONNX (onnxruntime)."""

from medseg.export.onnx import (
    EXPORT_FOLDER,
    OnnxNetwork,
    export_folder_of,
    export_onnx,
    is_export_folder,
    onnx_networks,
)

__all__ = [
    "EXPORT_FOLDER",
    "OnnxNetwork",
    "export_folder_of",
    "export_onnx",
    "is_export_folder",
    "onnx_networks",
]
