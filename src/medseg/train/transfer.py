"""Transfer learning: start a network from another run's weights.

Every tensor whose name and shape match is copied; the rest keep their fresh initialisation
(a new output layer for another label set, a different first layer for more channels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from medseg.errors import ConfigError, RunFolderError, located

_WEIGHT_NAMES = ("model_best.safetensors", "model_latest.safetensors")


@dataclass
class TransferReport:
    """What `load_compatible_weights` did, tensor by tensor."""

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # source tensor -> why
    reinitialised: list[str] = field(default_factory=list)  # network tensors left fresh
    frozen: int = 0  # parameters frozen by `freeze_encoder`

    def summary(self) -> str:
        """One line for the console.

        Examples
        --------
        >>> TransferReport("a.st", ["x", "y"], {"z": "shape"}, ["head.weight"]).summary()
        'initialised from a.st: 2 tensors loaded, 1 skipped, 1 re-initialised (head.weight)'
        """
        names = ", ".join(self.reinitialised[:4]) + (", ..." if len(self.reinitialised) > 4 else "")
        fresh = f" ({names})" if self.reinitialised else ""
        frozen = f", {self.frozen} encoder parameters frozen" if self.frozen else ""
        return (
            f"initialised from {self.source}: {len(self.loaded)} tensors loaded, "
            f"{len(self.skipped)} skipped, {len(self.reinitialised)} re-initialised"
            f"{fresh}{frozen}"
        )


def find_weights(source: str | Path) -> Path:
    """The weights file of ``source``: a ``.safetensors`` file, a fold folder, or a run
    folder (its first fold with weights; best weights before latest)."""
    source = Path(source)
    if source.is_file():
        return source
    if not source.is_dir():
        raise ConfigError(located(source, "--init-from: no such file or folder"))
    for folder in [source, *sorted(source.glob("fold_*"))]:
        for name in _WEIGHT_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise RunFolderError(located(source, "--init-from: holds no model weights"))


def load_compatible_weights(network: nn.Module, source: str | Path) -> TransferReport:
    """Copy every tensor of ``source`` (see `find_weights`) whose name and shape match a
    tensor of ``network``; report what was loaded, skipped and left re-initialised."""
    path = find_weights(source)
    try:
        incoming = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise RunFolderError(located(path, f"unreadable weights ({exc})")) from None
    own = network.state_dict()
    report = TransferReport(str(path))
    matched = {}
    for name, tensor in incoming.items():
        if name not in own:
            report.skipped[name] = "not in this network"
        elif own[name].shape != tensor.shape:
            report.skipped[name] = f"shape {list(tensor.shape)} != {list(own[name].shape)}"
        else:
            matched[name] = tensor
    if not matched:
        raise ConfigError(located(path, "--init-from: no tensor fits this network"))
    network.load_state_dict(matched, strict=False)
    report.loaded = sorted(matched)
    report.reinitialised = [name for name in own if name not in matched]
    return report


def freeze_encoder(network: nn.Module) -> int:
    """Stop gradients into the network's encoder; returns the number of parameters frozen."""
    # the U-Net's encoder, or the FCN's backbone stages
    encoder = getattr(network, "encoder", None) or getattr(network, "stages", None)
    if not isinstance(encoder, nn.Module):
        raise ConfigError("--freeze-encoder: this network has no encoder")
    count = 0
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
        count += parameter.numel()
    return count


def trainable_parameters(network: nn.Module) -> list[torch.nn.Parameter]:
    """The parameters the optimiser should update."""
    return [p for p in network.parameters() if p.requires_grad]
