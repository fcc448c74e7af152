"""Diffeomorphic deformable registration: a stationary velocity field integrated by scaling
and squaring, optimised coarse to fine against a (local) similarity plus a smoothness
penalty (PyTorch; runs on a GPU when one is given)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from medseg.register.pyramid import Level, coarser_affine
from medseg.register.similarity import MEASURES

#: Scaling and squaring steps: the velocity is divided by 2**7 before composing.
SQUARING_STEPS = 7
#: The velocity lives on a control grid this many times coarser than the image level it is
#: optimised on (smoothness by construction, and an 8x cheaper integration).
CONTROL_SPACING = 2


@dataclass
class DeformableResult:
    """The displacement u (world mm, ``(3, X, Y, Z)`` on the finest fixed level given) of
    the transform x -> A(x + u(x)), and the loss after each level."""

    displacement: torch.Tensor
    affine: torch.Tensor  # of the grid the displacement lives on
    losses: list[float] = field(default_factory=list)


def integrate_velocity(velocity: torch.Tensor, grid_affine: torch.Tensor) -> torch.Tensor:
    """The displacement (world mm) of the flow of a stationary velocity field (world mm per
    unit time, ``(B, 3, X, Y, Z)`` on a grid), by scaling and squaring: a diffeomorphism
    whenever the field is smooth enough."""
    linear = grid_affine[:3, :3].to(velocity.device, velocity.dtype)
    to_index = torch.linalg.inv(linear)
    index_velocity = torch.einsum("ij,bj...->bi...", to_index, velocity)
    return torch.einsum("ij,bj...->bi...", linear, integrate_index_velocity(index_velocity))


def integrate_index_velocity(velocity: torch.Tensor) -> torch.Tensor:
    """Scaling and squaring in voxel units: a velocity field ``(B, 3, X, Y, Z)`` whose
    channels are displacements along the array axes (i, j, k) -> the displacement of its
    flow after unit time, in the same units."""
    field = velocity / 2**SQUARING_STEPS
    for _ in range(SQUARING_STEPS):
        field = field + warp_by_index(field, field, padding="border")  # u <- u + u o (x + u)
    return field


def _identity_index(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    axes = [torch.arange(n, dtype=like.dtype, device=like.device) for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (X, Y, Z, 3)


def warp_by_index(
    image: torch.Tensor,
    displacement: torch.Tensor,
    mode: str = "bilinear",
    padding: str = "zeros",
) -> torch.Tensor:
    """``image(x + u(x))`` for a batch of images ``(B, C, X, Y, Z)`` and displacements
    ``(B, 3, X, Y, Z)`` in voxel units of the same grid (trilinear or nearest)."""
    shape = displacement.shape[2:]
    sizes = torch.tensor(shape, dtype=displacement.dtype, device=displacement.device)
    position = _identity_index(tuple(shape), displacement) + displacement.movedim(1, -1)
    grid = (2 * position / (sizes - 1).clamp_min(1) - 1).flip(-1)  # grid_sample wants (z, y, x)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=True)


def smoothness_penalty(field: torch.Tensor, spacing: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared forward difference of a field ``(B, 3, X, Y, Z)`` along every axis, per
    unit of ``spacing`` when given (mm per mm), else per voxel: the diffusion regulariser."""
    total = field.new_zeros(())
    for axis in range(2, field.dim()):
        difference = torch.diff(field, dim=axis)
        if spacing is not None:
            difference = difference / spacing[axis - 2]
        total = total + (difference**2).mean()
    return total


def register_deformable(
    fixed: list[Level],
    moving: list[Level],
    affine: np.ndarray,
    metric: str = "lncc",
    iterations: tuple[int, ...] = (150, 80),
    smoothness: float = 1.0,
    learning_rate: float = 0.5,
) -> DeformableResult:
    """Optimise a velocity field on each level of ``fixed`` (coarsest first), starting from
    the previous level's field, for the transform x -> affine(x + u(x))."""
    if metric not in ("mse", "ncc", "lncc", "mi"):
        raise ValueError(f"unknown similarity {metric}")
    measure = MEASURES[metric]
    matrix = torch.as_tensor(affine, dtype=torch.float32)
    velocity: torch.Tensor | None = None
    losses: list[float] = []
    level_fixed = fixed[0]
    for level_fixed, level_moving, steps in zip(fixed, moving, iterations):
        device = level_fixed.tensor.device
        shape = level_fixed.shape
        control = tuple(max(2, -(-n // CONTROL_SPACING)) for n in shape)
        if velocity is None:
            start = torch.zeros((1, 3, *control), device=device)
        else:  # mm values carry over; only the grid gets finer
            start = F.interpolate(velocity.detach(), size=control, mode="trilinear")
        velocity = start.requires_grad_(True)
        optimizer = torch.optim.Adam([velocity], lr=learning_rate)
        control_affine = coarser_affine(level_fixed.affine, CONTROL_SPACING)
        points = level_fixed.world_grid()
        spacing = torch.linalg.norm(control_affine[:3, :3], dim=0).to(device, torch.float32)
        a = matrix.to(device)
        loss = torch.zeros(())
        for _ in range(steps):
            displacement = _on_level(integrate_velocity(velocity, control_affine), shape)
            warped_points = points + displacement[0].permute(1, 2, 3, 0)
            mapped = warped_points @ a[:3, :3].T + a[:3, 3]
            warped = level_moving.sample(mapped)[None, None]
            similarity = measure(level_fixed.tensor, warped)
            loss = similarity + smoothness * smoothness_penalty(velocity, spacing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        losses.append(float(loss.detach()))
    assert velocity is not None
    with torch.no_grad():
        control_affine = coarser_affine(level_fixed.affine, CONTROL_SPACING)
        displacement = _on_level(integrate_velocity(velocity, control_affine), level_fixed.shape)
    return DeformableResult(displacement[0], level_fixed.affine, losses)


def _on_level(field: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A control-grid field interpolated onto the level's grid (trilinear)."""
    return F.interpolate(field, size=shape, mode="trilinear")


def displacement_on_grid(
    result: DeformableResult, grid_affine: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """The displacement (world mm) sampled at every voxel centre of another grid (e.g. the
    full-resolution fixed image), ``(3, *shape)``: trilinear inside the optimised grid,
    nearest edge value outside."""
    field = result.displacement[None].detach().float().cpu()
    level = Level(field[:, :1], result.affine)  # only for its geometry
    fine = Level(torch.zeros((1, 1, *shape)), torch.as_tensor(grid_affine, dtype=torch.float64))
    points = fine.world_grid()
    inverse = torch.linalg.inv(level.affine).float()
    index = points @ inverse[:3, :3].T + inverse[:3, 3]
    sizes = torch.tensor(level.shape, dtype=torch.float32)
    grid = (2 * index / (sizes - 1).clamp_min(1) - 1).flip(-1)[None]
    sampled = F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return sampled[0].numpy().astype(np.float32)
