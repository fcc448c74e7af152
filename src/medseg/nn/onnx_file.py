"""Writing a PyTorch module as an ONNX file (torch.onnx's dynamo exporter), for
`medseg.export` (segmentation networks) and `medseg.register` (the registration network)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from medseg.errors import ConfigError, located
from medseg.io import atomic_path


def export_module(
    module: torch.nn.Module,
    inputs: tuple[torch.Tensor, ...],
    path: Path,
    opset: int,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: tuple[dict[int, object], ...] | None = None,
) -> None:
    """Write ``module`` (traced on ``inputs``) as ONNX at ``path``, atomically, weights
    inside the file; `ConfigError` naming the file and the opset when the exporter cannot
    translate it."""
    with atomic_path(path) as tmp:
        try:
            torch.onnx.export(
                module, inputs, tmp, input_names=list(input_names),
                output_names=list(output_names), opset_version=opset,
                dynamic_shapes=dynamic_shapes, dynamo=True, external_data=False, verbose=False,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - the exporter's errors are many types
            raise ConfigError(
                located(path, f"ONNX export at opset {opset} failed: {str(exc)[:300]}")
            ) from None
