"""Services on top of the library: the HTTP inference service (``medseg serve``, its
`Client`) and the DICOM node (`DicomNode`). Imported lazily: the client needs neither
pynetdicom nor torch."""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Client": "medseg.serve.client",
    "Destination": "medseg.serve.dicom_node",
    "DicomNode": "medseg.serve.dicom_node",
    "NodeSettings": "medseg.serve.dicom_node",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'medseg.serve' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
