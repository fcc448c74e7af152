"""Network weights in safetensors (never pickle), written atomically."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from medseg.errors import RunFolderError, located
from medseg.io import atomic_path
from medseg.io.limits import check_input_file


def save_weights(
    model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Save a model's state dict to ``path`` (safetensors) atomically."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata or {})


def load_weights(model: nn.Module, path: str | Path, device: torch.device | str = "cpu") -> None:
    """Load safetensors weights into ``model``; every tensor must match by name and shape."""
    path = check_input_file(path, RunFolderError)
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise RunFolderError(located(path, f"unreadable weights ({exc})")) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise RunFolderError(located(path, f"weights do not fit the network ({first})")) from None
