"""Images as tensors on a multi-resolution pyramid, sampled at world coordinates (PyTorch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medseg.io import Image


@dataclass(frozen=True)
class Level:
    """One image at one pyramid level: intensities ``(1, 1, X, Y, Z)`` and the affine of
    their (coarser) grid."""

    tensor: torch.Tensor
    affine: torch.Tensor  # 4x4, voxel index -> world RAS mm (float64 kept on the CPU)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.tensor.shape[2:])

    def world_grid(self) -> torch.Tensor:
        """World coordinates of every voxel centre, ``(X, Y, Z, 3)``."""
        axes = [torch.arange(n, dtype=torch.float64) for n in self.shape]
        index = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        world = index @ self.affine[:3, :3].T + self.affine[:3, 3]
        return world.to(self.tensor.device, torch.float32)

    def sample(self, points: torch.Tensor) -> torch.Tensor:
        """Trilinear intensities at world points ``(..., 3)`` -> ``(...)``; 0 outside."""
        values, _ = self.sample_with_mask(points)
        return values

    def sample_with_mask(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Intensities at world points and whether each point lies inside the image."""
        inverse = torch.linalg.inv(self.affine).to(points.device, torch.float32)
        index = points @ inverse[:3, :3].T + inverse[:3, 3]
        sizes = torch.tensor(self.shape, device=points.device, dtype=torch.float32)
        normalised = 2 * index / (sizes - 1).clamp_min(1) - 1
        inside = ((normalised >= -1) & (normalised <= 1)).all(dim=-1)
        shape = points.shape[:-1]
        grid = normalised.reshape(1, -1, 1, 1, 3).flip(-1)  # grid_sample wants (z, y, x)
        values = grid_sample_3d(self.tensor, grid, padding="zeros")
        return values.reshape(shape), inside


def grid_sample_3d(
    image: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear", padding: str = "zeros"
) -> torch.Tensor:
    """``F.grid_sample`` (align_corners=True) of ``(B, C, X, Y, Z)`` at ``(B, ..., 3)``
    normalised (z, y, x) positions -> ``(B, C, ...)``, on every CPU thread.

    PyTorch's CPU kernel for 3D runs one thread per batch item, so a single image is sampled
    on one core; here its points are split into one chunk per thread (2x faster on 2 cores,
    same values, gradients flow as usual)."""
    chunks = torch.get_num_threads() if image.device.type == "cpu" and len(image) == 1 else 1
    points = grid[0].numel() // 3
    if chunks < 2 or points < 10_000:
        return F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=True)
    per_chunk = -(-points // chunks)
    flat = F.pad(grid.reshape(points, 3), (0, 0, 0, per_chunk * chunks - points))
    sampled = F.grid_sample(
        image.expand(chunks, -1, -1, -1, -1),
        flat.reshape(chunks, per_chunk, 1, 1, 3),
        mode=mode,
        padding_mode=padding,
        align_corners=True,
    )  # (chunks, C, per_chunk, 1, 1)
    values = sampled.movedim(1, 0).reshape(image.shape[1], -1)[:, :points]
    return values.reshape(1, image.shape[1], *grid.shape[1:-1])


def robust_scaled(array: np.ndarray) -> np.ndarray:
    """Intensities scaled by robust percentiles (1st to 99th over the non-zero voxels) so
    that learning rates and MSE mean the same for every image."""
    values = array[array != 0] if np.any(array != 0) else array.ravel()
    low, high = np.percentile(values, [1, 99])
    return ((array - low) / max(high - low, 1e-8)).astype(np.float32)


def pyramid(image: Image, factors: tuple[int, ...], device: torch.device) -> list[Level]:
    """The first channel of ``image`` (intensities normalised) average-pooled by each
    factor; a coarse voxel ``i`` covers fine voxels ``f*i .. f*i + f - 1``."""
    if image.ndim != 3:
        raise ValueError("registration works on 3D images")
    base = torch.from_numpy(robust_scaled(np.asarray(image.array[0], np.float32)))[None, None]
    base = base.to(device)
    affine = torch.as_tensor(image.affine, dtype=torch.float64)
    levels = []
    for f in factors:
        if f == 1:
            levels.append(Level(base, affine))
            continue
        pooled = F.avg_pool3d(base, kernel_size=f, stride=f, ceil_mode=False)
        levels.append(Level(pooled, coarser_affine(affine, f)))
    return levels


def coarser_affine(affine: torch.Tensor, factor: int) -> torch.Tensor:
    """The affine of a grid ``factor`` times coarser whose voxel ``i`` covers fine voxels
    ``factor*i .. factor*i + factor - 1`` (average pooling)."""
    scale = torch.eye(4, dtype=affine.dtype)
    scale[:3, :3] *= factor
    scale[:3, 3] = (factor - 1) / 2
    return affine @ scale


def centre_of_mass(level: Level) -> torch.Tensor:
    """Intensity-weighted centre (world mm) of the positive intensities."""
    weights = level.tensor[0, 0].clamp_min(0).double().cpu()
    axes = [torch.arange(n, dtype=torch.float64) for n in level.shape]
    index = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
    total = weights.sum().clamp_min(1e-12)
    centre_index = (index * weights[..., None]).sum(dim=(0, 1, 2)) / total
    return level.affine[:3, :3] @ centre_index + level.affine[:3, 3]
