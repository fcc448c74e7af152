"""Rigid and affine registration: multi-resolution gradient descent in world coordinates
(PyTorch), initialised by aligning the centres of mass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from medseg.register.pyramid import Level, centre_of_mass
from medseg.register.similarity import MEASURES

#: Parameters are optimised in these units, so that one learning rate suits them all:
#: rotation (rad), translation (mm), log-scale, shear.
_UNITS = torch.tensor([0.05] * 3 + [5.0] * 3 + [0.05] * 3 + [0.05] * 3, dtype=torch.float64)


@dataclass
class AffineResult:
    """The fixed-to-moving world affine and the loss after each level."""

    matrix: np.ndarray
    losses: list[float] = field(default_factory=list)


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrix R = Rz @ Ry @ Rx from Euler angles (radians) about x, y, z."""
    cx, cy, cz = torch.cos(angles)
    sx, sy, sz = torch.sin(angles)
    one, zero = torch.ones((), dtype=angles.dtype), torch.zeros((), dtype=angles.dtype)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx]).reshape(3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy]).reshape(3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one]).reshape(3, 3)
    return rz @ ry @ rx


def affine_matrix(parameters: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """4x4 world affine from 12 parameters (rotation, translation, log-scale, shear) about
    ``centre``: x -> R S H (x - c) + c + t."""
    p = parameters * _UNITS.to(parameters.dtype)
    rotation, translation, log_scale, shear = p[:3], p[3:6], p[6:9], p[9:12]
    one, zero = torch.ones((), dtype=p.dtype), torch.zeros((), dtype=p.dtype)
    shear_matrix = torch.stack(
        [one, shear[0], shear[1], zero, one, shear[2], zero, zero, one]
    ).reshape(3, 3)
    linear = _rotation(rotation) @ torch.diag(torch.exp(log_scale)) @ shear_matrix
    offset = centre + translation - linear @ centre
    top = torch.cat([linear, offset[:, None]], dim=1)
    return torch.cat([top, torch.tensor([[0, 0, 0, 1]], dtype=p.dtype)], dim=0)


def _sample_points(level: Level, count: int, generator: torch.Generator) -> torch.Tensor:
    """World positions of ``count`` random voxel centres of a level (all if fewer)."""
    shape = level.shape
    total = int(np.prod(shape))
    if total <= count:
        flat = torch.arange(total)
    else:
        flat = torch.randint(0, total, (count,), generator=generator)
    index = torch.stack(torch.unravel_index(flat, shape), dim=-1).double()
    world = index @ level.affine[:3, :3].T + level.affine[:3, 3]
    values = level.tensor[0, 0].reshape(-1)[flat.to(level.tensor.device)]
    return world.to(level.tensor.device, torch.float32), values


def register_affine(
    fixed: list[Level],
    moving: list[Level],
    metric: str = "ncc",
    rigid: bool = False,
    iterations: tuple[int, ...] = (200, 100, 50),
    samples: int = 20_000,
    learning_rate: float = 0.05,
    seed: int = 0,
) -> AffineResult:
    """The affine that maps fixed world points onto moving ones, coarse to fine.

    ``fixed`` and ``moving`` are pyramids (coarsest first, same number of levels). Each
    iteration compares ``samples`` random fixed voxels with the moving image at the mapped
    points (``metric``: mse, ncc, mi); ``rigid`` optimises rotation and translation only.
    """
    if metric not in ("mse", "ncc", "mi"):
        raise ValueError(f"affine registration takes mse, ncc or mi, not {metric}")
    measure = MEASURES[metric]
    if metric == "mi":  # the soft joint histogram costs bins x samples per step
        samples = min(samples, 20_000)
    centre = centre_of_mass(fixed[-1])
    shift = (centre_of_mass(moving[-1]) - centre) / _UNITS[3:6]
    parameters = torch.zeros(12, dtype=torch.float64)
    parameters[3:6] = shift
    parameters.requires_grad_(True)
    active = torch.ones(12, dtype=torch.float64)
    if rigid:
        active[6:] = 0
    optimizer = torch.optim.Adam([parameters], lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    result = AffineResult(np.eye(4))
    for level_fixed, level_moving, steps in zip(fixed, moving, iterations):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        loss = torch.zeros(())
        every_voxel = int(np.prod(level_fixed.shape)) <= samples
        if every_voxel:  # the same points at every step: drawn once
            points, values = _sample_points(level_fixed, samples, generator)
        for step in range(steps):
            if not every_voxel:
                points, values = _sample_points(level_fixed, samples, generator)
            matrix = affine_matrix(parameters * active, centre).to(points.device, torch.float32)
            mapped = points @ matrix[:3, :3].T + matrix[:3, 3]
            warped, inside = level_moving.sample_with_mask(mapped)
            if inside.sum() < 100:
                raise ValueError("the images do not overlap after initialisation")
            loss = measure(values[inside], warped[inside])
            optimizer.zero_grad()
            loss.backward()
            parameters.grad *= active
            optimizer.step()
            if step == steps // 2:
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate / 4
        result.losses.append(float(loss.detach()))
    result.matrix = affine_matrix(parameters.detach() * active, centre).numpy()
    return result
