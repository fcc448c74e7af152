"""What this installation can do: versions, devices, formats and optional parts
(``medseg info``; TotalSegmentator's ``info --json`` is the model)."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import torch

from medseg import __version__
from medseg.device import resolve_device, resolve_precision
from medseg.io import DICOM_SUFFIXES, SUPPORTED_SUFFIXES
from medseg.parallel import available_cores

#: Distributions whose versions a result may depend on.
PACKAGES = (
    "torch", "numpy", "scipy", "SimpleITK", "nibabel", "pydicom", "highdicom", "pynetdicom",
    "safetensors", "scikit-image", "fastapi", "uvicorn", "httpx", "tensorboard",
)  # fmt: skip
#: Optional parts and the distributions each needs (``pip install -e ".[part]"``).
EXTRAS = {
    "serve": ("fastapi", "uvicorn", "python-multipart", "httpx"),
    "tensorboard": ("tensorboard",),
}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def system_info() -> dict[str, Any]:
    """Versions, devices, formats and optional parts of this installation (JSON values).

    Examples
    --------
    >>> info = system_info()
    >>> info["medseg"] == __version__ and "cpu" in info["devices"]
    True
    """
    cuda = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            memory = round(properties.total_memory / 2**30, 1)
            cuda.append({"index": index, "name": properties.name, "memory_gib": memory})
    return {
        "medseg": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": {
            "cpu": {"cores": available_cores(), "torch_threads": torch.get_num_threads()},
            "cuda": cuda,
            "cuda_build": torch.version.cuda,
            "auto": str(resolve_device("auto")),
            "auto_precision": str(resolve_precision("auto", resolve_device("auto"))).removeprefix(
                "torch."
            ),
        },
        "formats": {
            "read": [
                *SUPPORTED_SUFFIXES,
                *DICOM_SUFFIXES,
                "DICOM series folder",
                "DICOM-SEG",
                "RTSTRUCT",
            ],
            "write": ["NIfTI", "NRRD", "MHA", "PNG", "TIFF", "DICOM-SEG", "RTSTRUCT"],
        },  # fmt: skip
        "extras": {part: all(_version(d) for d in needs) for part, needs in EXTRAS.items()},
    }
