"""Choosing the compute device."""

from __future__ import annotations

import torch

from medseg.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name}: expected one of {', '.join(DEVICES)}")
    return torch.device(name)
