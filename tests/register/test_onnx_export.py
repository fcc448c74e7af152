"""The learned registration network as ONNX (opset 20, 5-D GridSample): the same
displacement as PyTorch on a real Hippocampus pair, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="pip install 'medseg[onnx]'")

import onnxruntime  # noqa: E402

from medseg.errors import ConfigError  # noqa: E402
from medseg.io import read_image  # noqa: E402
from medseg.nn import registration_unet, save_weights  # noqa: E402
from medseg.register.learned import (  # noqa: E402
    MODEL_FILE,
    LearnedConfig,
    centred_grid,
    image_centre,
    network_input,
)
from medseg.register.onnx_export import Displacement, export_registration_onnx  # noqa: E402
from medseg.register.transforms import Transform  # noqa: E402

SHAPE = (32, 48, 32)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A registration model folder with seeded (untrained) weights: parity holds for any."""
    folder = tmp_path / "model"
    folder.mkdir()
    torch.manual_seed(0)
    network = registration_unet(3)
    head = [m for m in network.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():  # a visible displacement, not the near-zero of a fresh last layer
        head.weight.normal_(0, 0.2)
    save_weights(network, folder / MODEL_FILE)
    LearnedConfig(grid_shape=SHAPE, spacing=(1.0, 1.0, 1.0), features=(16, 32, 32, 32),
                  smoothness=1.0, label_weight=0.0).write(folder)  # fmt: skip
    return folder


def _real_pair(hippocampus_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = [read_image(hippocampus_dir / f"imagesTr/hippocampus_{k}_0000.nii.gz")
              for k in ("001", "004")]  # fmt: skip
    grid = centred_grid(image_centre(images[0]), (1.0, 1.0, 1.0), SHAPE)
    arrays = [network_input(image, grid, SHAPE, Transform()) for image in images]
    return tuple(torch.from_numpy(a)[None, None].float() for a in arrays)  # type: ignore[return-value]


def test_onnxruntime_gives_pytorchs_displacement_on_a_real_pair(
    model_dir: Path, hippocampus_dir: Path, tmp_path: Path, run_cli
) -> None:
    code, out, err = run_cli(["export", model_dir, "--out", tmp_path / "onnx"])
    assert code == 0, err
    assert "registration model's ONNX export" in out
    sidecar = json.loads((tmp_path / "onnx/model.json").read_text())
    assert sidecar["opset"] == 20 and sidecar["kind"] == "registration"
    assert sidecar["max_abs_displacement_difference"] < 1e-3
    assert (tmp_path / "onnx/registration.json").is_file()
    fixed, moving = _real_pair(hippocampus_dir)
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx/registration.onnx"))
    theirs = session.run(None, {"fixed": fixed.numpy(), "moving": moving.numpy()})[0]
    from medseg.register.learned import load_learned_model

    model = load_learned_model(model_dir)
    with torch.no_grad():
        ours = Displacement(model.network, SHAPE)(fixed, moving).numpy()
    assert ours.shape == (1, 3, *SHAPE) and np.abs(ours).max() > 0.1  # it moves voxels
    assert np.abs(theirs - ours).max() < 1e-3  # voxels: a thousandth of a millimetre here


def test_an_opset_without_5d_gridsample_is_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="5-D GridSample.*opset 20"):
        export_registration_onnx(model_dir, tmp_path / "onnx", opset=18)
    assert not (tmp_path / "onnx").exists()
