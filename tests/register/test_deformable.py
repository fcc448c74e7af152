"""The deformable stage's building blocks: the control grid's upsampling and its transpose,
fields moved between grids, the number of squaring steps, and the mutual information path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg.io import Image
from medseg.register.deformable import (
    field_on_grid,
    integrate_index_velocity,
    register_deformable,
    squaring_steps,
    upsample_twice,
    upsample_twice_adjoint,
)
from medseg.register.pyramid import Level, coarser_affine, pyramid
from medseg.register.register import register_images


@pytest.mark.parametrize("shape", [(12, 9, 7), (2, 3, 1), (16, 16, 16)])
def test_the_adjoint_is_the_transpose_of_the_upsampling(shape) -> None:
    control = tuple(-(-n // 2) for n in shape)
    field = torch.rand(1, 3, *control, dtype=torch.float64, requires_grad=True)
    gradient = torch.rand(1, 3, *shape, dtype=torch.float64)
    (expected,) = torch.autograd.grad(upsample_twice(field, shape), field, gradient)
    assert torch.allclose(upsample_twice_adjoint(gradient, control), expected, atol=1e-12)


def test_upsampling_follows_the_control_grid_geometry() -> None:
    # a field linear in world x is reproduced exactly away from the clamped edges
    affine = torch.diag(torch.tensor([2.0, 1.0, 3.0, 1.0], dtype=torch.float64))
    affine[:3, 3] = torch.tensor([5.0, -1.0, 2.0], dtype=torch.float64)
    shape = (10, 6, 6)
    control_affine = coarser_affine(affine, 2)
    control_x = Level(torch.zeros(1, 1, 5, 3, 3), control_affine).world_grid()[..., 0]
    fine_x = Level(torch.zeros(1, 1, *shape), affine).world_grid()[..., 0]
    fine = upsample_twice(control_x[None, None].double(), shape)[0, 0]
    inner = (slice(1, -1), slice(1, -1), slice(1, -1))
    assert torch.allclose(fine[inner].float(), fine_x[inner], atol=1e-5)


def test_a_field_moved_between_grids_keeps_its_world_values() -> None:
    source = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=torch.float64))
    target = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    target[:3, 3] = 1.0  # inside the source grid's span
    world_x = Level(torch.zeros(1, 1, 8, 8, 8), source).world_grid()[..., 0]
    moved = field_on_grid(world_x[None, None], source, target, (10, 10, 10))[0, 0]
    expected = Level(torch.zeros(1, 1, 10, 10, 10), target).world_grid()[..., 0]
    assert torch.allclose(moved, expected, atol=1e-4)


def test_squaring_steps_grow_with_the_field() -> None:
    assert squaring_steps(torch.full((1, 3, 4, 4, 4), 0.1)) == 1
    assert squaring_steps(torch.full((1, 3, 4, 4, 4), 8.0)) == 5  # 8 / 2**5 = 0.25 voxel
    # the flow of a constant velocity is the same shift, whatever the number of steps
    velocity = torch.zeros(1, 3, 8, 8, 8)
    velocity[:, 0] = 1.5
    flow = integrate_index_velocity(velocity, squaring_steps(velocity))
    assert torch.allclose(flow[:, :, 2:-2, 2:-2, 2:-2], velocity[:, :, 2:-2, 2:-2, 2:-2])


def _blob_pair(shift_mm: float) -> tuple[Image, Image]:
    axes = np.meshgrid(*[np.arange(32.0)] * 3, indexing="ij")
    affine = np.diag([2.0, 2.0, 2.0, 1.0])

    def blob(centre: float) -> np.ndarray:
        r2 = (axes[0] - centre) ** 2 + (axes[1] - 16) ** 2 + (axes[2] - 16) ** 2
        return np.exp(-r2 / 40.0).astype(np.float32)

    return Image(blob(16)[None], affine), Image(blob(16 + shift_mm / 2)[None], affine)


@pytest.mark.parametrize("metric", ["lncc", "mse", "ncc", "mi"])
def test_every_measure_moves_a_blob_onto_its_shifted_copy(metric) -> None:
    fixed, moving = _blob_pair(shift_mm=4.0)  # the moving blob sits 4 mm further along x
    levels = (4, 2, 1)
    result = register_deformable(
        pyramid(fixed, levels, torch.device("cpu")),
        pyramid(moving, levels, torch.device("cpu")),
        np.eye(4),
        metric=metric,
    )
    centre = result.displacement[0, 16, 16, 16].item()  # the x displacement at the centre
    assert centre == pytest.approx(4.0, abs=1.0)


def test_a_single_slice_volume_registers() -> None:
    # an axis of one voxel has no central difference; the stage must still run and align
    rng = np.random.default_rng(0)
    data = np.zeros((40, 40, 1), np.float32)
    data[10:30, 12:28] = 1.0
    data += 0.01 * rng.random(data.shape).astype(np.float32)
    fixed = Image(data[None], np.eye(4))
    moving = Image(np.roll(data, 2, axis=0)[None], np.eye(4))
    result = register_images(fixed, moving, "deformable", affine_first=False)
    assert result.metrics["similarity_after"] > result.metrics["similarity_before"] + 0.1
