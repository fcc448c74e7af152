"""Learned registration (VoxelMorph-style): a U-Net maps a (fixed, moving) pair, both
resampled onto one axis-aligned grid centred on the fixed image, to a stationary velocity
field; scaling and squaring turns it into a diffeomorphic displacement in one forward pass,
optionally refined by a few steps of instance optimisation.

A model is a folder written by `medseg train-registration` (see `register/training.py`):
``model.safetensors`` (the network) and ``registration.json`` (`LearnedConfig`: the grid the
network works on, the loss weights, how it was trained)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medseg.errors import RunFolderError, located
from medseg.io import Image, read_json_file, write_text_atomic
from medseg.nn import load_weights, registration_unet
from medseg.register.deformable import (
    DeformableResult,
    integrate_index_velocity,
    smoothness_penalty,
    warp_by_index,
)
from medseg.register.pyramid import robust_scaled
from medseg.register.similarity import lncc
from medseg.register.transforms import Transform
from medseg.register.warp import warp_image

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "registration.json"


# Bounds that keep a hand-edited registration.json from allocating without limit.
GridSize = Annotated[int, Field(ge=1, le=1024)]
Millimetres = Annotated[float, Field(gt=0, le=1e3, allow_inf_nan=False)]


class LearnedConfig(BaseModel):
    """What a learned registration model needs at inference, and how it was trained."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    grid_shape: tuple[GridSize, GridSize, GridSize]
    spacing: tuple[Millimetres, Millimetres, Millimetres]
    features: tuple[Annotated[int, Field(ge=1, le=1024)], ...] = Field(min_length=1, max_length=8)
    smoothness: float = Field(ge=0, allow_inf_nan=False)
    label_weight: float = Field(ge=0, allow_inf_nan=False)
    labels: list[int] = []
    dataset: str | None = None
    atlas: str | None = None
    fold: int = 0
    training: dict[str, object] = {}

    def write(self, run_dir: Path) -> None:
        """Write ``registration.json`` into ``run_dir`` atomically."""
        write_text_atomic(run_dir / CONFIG_FILE, self.model_dump_json(indent=2) + "\n")


@dataclass
class LearnedModel:
    """A trained registration network, its configuration and the device it runs on."""

    network: torch.nn.Module
    config: LearnedConfig
    device: torch.device


def load_learned_model(run_dir: str | Path, device: torch.device | None = None) -> LearnedModel:
    """Load a folder written by `medseg train-registration` (weights read as safetensors)."""
    run = Path(run_dir)
    device = device or torch.device("cpu")
    config_path = run / CONFIG_FILE
    if not config_path.is_file() or not (run / MODEL_FILE).is_file():
        raise RunFolderError(
            located(run, f"not a registration model (needs {CONFIG_FILE} and {MODEL_FILE})")
        )
    raw = read_json_file(config_path, RunFolderError)
    try:
        config = LearnedConfig.model_validate(raw)
    except ValidationError as exc:
        first = str(exc).splitlines()[0]
        raise RunFolderError(located(config_path, f"unreadable ({first})")) from None
    network = registration_unet(3, config.features)
    load_weights(network, run / MODEL_FILE, device)
    network.to(device).eval()
    return LearnedModel(network, config, device)


def image_centre(image: Image) -> np.ndarray:
    """World coordinates (mm) of the centre of an image's voxel grid."""
    middle = (np.asarray(image.spatial_shape, float) - 1) / 2
    return image.affine[:3, :3] @ middle + image.affine[:3, 3]


def centred_grid(
    centre: np.ndarray, spacing: tuple[float, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """The voxel-to-world affine of an axis-aligned (RAS) grid of ``shape`` voxels of
    ``spacing`` mm whose centre is at ``centre``."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = np.asarray(centre, float) - np.asarray(spacing) * (np.asarray(shape) - 1) / 2
    return affine


def network_input(
    image: Image, grid_affine: np.ndarray, shape: tuple[int, ...], transform: Transform
) -> np.ndarray:
    """An image's first channel scaled by its robust percentiles and resampled onto a grid
    through ``transform`` (0 outside the image): what the network sees, ``(X, Y, Z)``."""
    scaled = Image(robust_scaled(np.asarray(image.array[:1], np.float32)), image.affine)
    grid = Image(np.zeros((1, *shape), np.float32), grid_affine)
    return warp_image(scaled, grid, transform).array[0]


def centre_alignment(fixed: Image, moving: Image) -> np.ndarray:
    """The translation (fixed world -> moving world) that maps the fixed image's centre onto
    the moving image's: how training pairs are presented to the network."""
    matrix = np.eye(4)
    matrix[:3, 3] = image_centre(moving) - image_centre(fixed)
    return matrix


def predict_velocity(
    network: torch.nn.Module, fixed: torch.Tensor, moving: torch.Tensor
) -> torch.Tensor:
    """The network's velocity field for batches ``(B, 1, X, Y, Z)`` (even sizes): predicted
    from the pair averaged down to half resolution, in voxel units of that half grid
    (VoxelMorph's 'integration at half resolution'; four times cheaper on a CPU)."""
    return network(F.avg_pool3d(torch.cat([fixed, moving], dim=1), 2))


def displacement_from_velocity(velocity: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Scaling and squaring on the half grid, then the displacement on the full grid
    ``shape`` in its voxel units (trilinear; the half grid's voxel k covers voxels 2k, 2k+1)."""
    half = integrate_index_velocity(velocity)
    return 2 * F.interpolate(half, size=tuple(shape), mode="trilinear", align_corners=False)


def refine_velocity(
    velocity: torch.Tensor,
    fixed: torch.Tensor,
    moving: torch.Tensor,
    steps: int,
    smoothness: float,
    learning_rate: float = 0.1,
) -> torch.Tensor:
    """Instance optimisation: a few Adam steps on the (half-resolution) velocity itself
    against local NCC and the training's smoothness penalty, starting from the network's
    prediction."""
    velocity = velocity.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([velocity], lr=learning_rate)
    for _ in range(steps):
        displacement = displacement_from_velocity(velocity, fixed.shape[2:])
        loss = lncc(fixed, warp_by_index(moving, displacement)) + smoothness * (
            smoothness_penalty(velocity)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return velocity.detach()


def learned_stage(
    model: LearnedModel,
    fixed: Image,
    moving: Image,
    affine: np.ndarray,
    refine_steps: int = 0,
) -> DeformableResult:
    """The displacement ``u`` (world mm, on the model's grid centred on the fixed image) of
    the transform ``x -> affine(x + u(x))``, predicted in one forward pass and optionally
    refined for ``refine_steps`` steps."""
    config = model.config
    shape = config.grid_shape
    grid = centred_grid(image_centre(fixed), config.spacing, shape)
    tensors = [
        torch.from_numpy(network_input(image, grid, shape, transform))[None, None].to(model.device)
        for image, transform in ((fixed, Transform()), (moving, Transform(affine)))
    ]
    with torch.no_grad():
        velocity = predict_velocity(model.network, *tensors)
    if refine_steps > 0:
        velocity = refine_velocity(velocity, *tensors, refine_steps, config.smoothness)
    with torch.no_grad():
        index_displacement = displacement_from_velocity(velocity, shape)
    spacing = torch.tensor(config.spacing, dtype=torch.float32, device=model.device)
    world = index_displacement[0] * spacing[:, None, None, None]  # axis-aligned grid
    return DeformableResult(world.cpu(), torch.as_tensor(grid, dtype=torch.float64))


def one_hot(labels: torch.Tensor, values: list[int]) -> torch.Tensor:
    """``(B, 1, *spatial)`` integer labels -> ``(B, len(values), *spatial)`` float masks."""
    return torch.cat([(labels == v).float() for v in values], dim=1)


def soft_dice(reference: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """Mean soft Dice over channels and batch of two stacks of masks (1 where equal)."""
    dims = tuple(range(2, reference.dim()))
    overlap = (reference * warped).sum(dims)
    total = reference.sum(dims) + warped.sum(dims)
    return (2 * overlap / total.clamp_min(1e-6)).mean()
