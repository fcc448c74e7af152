"""A learned registration model as ONNX: ``medseg export MODEL_DIR`` on a folder written by
``medseg train-registration``.

``registration.onnx`` maps the pair ``fixed``, ``moving`` ``(1, 1, *grid_shape)`` — both
already on the model's grid and scaled as `medseg.register.learned.network_input` does —
to ``displacement`` ``(1, 3, *grid_shape)`` in voxels of that grid: the network, scaling
and squaring, and the upsampling, in one graph. Scaling and squaring samples a 3D field
(5-D ``GridSample``), which ONNX has from opset 20 on. ``model.json`` records the opset,
the shapes, the file's SHA-256 and the largest difference to PyTorch's displacement on the
example pair (in voxels); ``registration.json`` is copied beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from medseg import __version__
from medseg.errors import ConfigError
from medseg.io import atomic_path, write_text_atomic
from medseg.io.checksum import file_sha256
from medseg.io.outputs import prepare_output_folder
from medseg.nn.onnx_file import export_module
from medseg.progress import log_line
from medseg.register.learned import (
    CONFIG_FILE,
    displacement_from_velocity,
    load_learned_model,
    predict_velocity,
)

#: 5-D GridSample (sampling a 3D field) entered ONNX in opset 20.
MIN_REGISTRATION_OPSET = 20
MODEL_NAME = "registration.onnx"


class Displacement(torch.nn.Module):
    """The registration network with its integration: ``(fixed, moving)`` on the model's
    grid to the displacement in voxels of that grid."""

    def __init__(self, network: torch.nn.Module, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.network, self.shape = network, tuple(shape)

    def forward(self, fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        velocity = predict_velocity(self.network, fixed, moving)
        return displacement_from_velocity(velocity, self.shape)


def is_registration_model(folder: Path) -> bool:
    """Whether ``folder`` holds a learned registration model (registration.json)."""
    return (Path(folder) / CONFIG_FILE).is_file()


def export_registration_onnx(
    model_dir: str | Path,
    out_dir: str | Path | None = None,
    opset: int = MIN_REGISTRATION_OPSET,
    example: tuple[torch.Tensor, torch.Tensor] | None = None,
    quiet: bool = True,
) -> Path:
    """Export the learned registration model in ``model_dir`` as ``registration.onnx`` into
    ``out_dir`` (default ``MODEL_DIR/onnx``) with its model.json; returns the folder.
    ``example``: the (fixed, moving) pair the parity with PyTorch is measured on (default:
    smooth random images).

    Examples
    --------
    >>> folder = export_registration_onnx("models/hippo_registration")  # doctest: +SKIP
    """
    if not MIN_REGISTRATION_OPSET <= opset <= 23:
        raise ConfigError(
            f"--opset {opset}: the registration network samples 3D fields (5-D GridSample), "
            f"which ONNX has from opset {MIN_REGISTRATION_OPSET}; choose 20 to 23"
        )
    _onnxruntime()
    model_dir = Path(model_dir)
    model = load_learned_model(model_dir)
    shape = tuple(model.config.grid_shape)
    out = prepare_output_folder(Path(out_dir) if out_dir is not None else model_dir / "onnx")
    out.mkdir(parents=True, exist_ok=True)
    module = Displacement(model.network, shape).eval()
    pair = example if example is not None else _smooth_pair(shape)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one plain grid_sample (`grid_sample_3d` splits it by threads)
    try:
        export_module(module, pair, out / MODEL_NAME, opset, ["fixed", "moving"],
                      ["displacement"])  # fmt: skip
        with torch.no_grad():
            expected = module(*pair).numpy()
    finally:
        torch.set_num_threads(threads)
    difference = float(np.abs(_onnxruntime_displacement(out / MODEL_NAME, pair) - expected).max())
    log_line(f"{MODEL_NAME}: onnxruntime within {difference:.1e} voxels of PyTorch", quiet)
    with atomic_path(out / CONFIG_FILE) as tmp:
        shutil.copyfile(model_dir / CONFIG_FILE, tmp)
    sidecar = {
        "format": "onnx", "kind": "registration", "opset": opset, "file": MODEL_NAME,
        "sha256": file_sha256(out / MODEL_NAME),
        "inputs": {name: [1, 1, *shape] for name in ("fixed", "moving")},
        "output": {"name": "displacement", "shape": [1, 3, *shape],
                   "meaning": "voxels of the model's grid along its array axes; "
                              "T(x) = x + u(x), see docs/register.md"},
        "max_abs_displacement_difference": difference,
        "versions": {"medseg": __version__, "torch": torch.__version__},
    }  # fmt: skip
    write_text_atomic(out / "model.json", json.dumps(sidecar, indent=2) + "\n")
    return out


def _smooth_pair(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(2, 1, *[max(2, s // 8) for s in shape], generator=generator)
    fine = torch.nn.functional.interpolate(coarse, size=shape, mode="trilinear")
    return fine[:1].contiguous(), fine[1:].contiguous()


def _onnxruntime():  # noqa: ANN202 - the optional module
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX needs onnx and onnxruntime: pip install 'medseg[onnx]'") from None
    return onnxruntime


def _onnxruntime_displacement(path: Path, pair: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    session = _onnxruntime().InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"fixed": pair[0].numpy(), "moving": pair[1].numpy()}
    return session.run(None, feeds)[0]
