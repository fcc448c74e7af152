"""Sampling a level: the threaded 3D grid_sample gives PyTorch's values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medseg.register.pyramid import grid_sample_3d


@pytest.mark.parametrize("padding", ["zeros", "border"])
def test_threaded_sampling_equals_grid_sample(padding) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # 121,200 points in 3 chunks: the last one padded
    try:
        _compare(padding)
    finally:
        torch.set_num_threads(threads)


def _compare(padding: str) -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 2, 40, 50, 60, generator=generator)
    grid = (torch.rand(1, 30, 40, 101, 3, generator=generator) * 2.4 - 1.2).requires_grad_(True)
    ours = grid_sample_3d(image, grid, padding=padding)
    theirs = F.grid_sample(image, grid, padding_mode=padding, align_corners=True)
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    (ours_grad,) = torch.autograd.grad(ours.sum(), grid)
    (theirs_grad,) = torch.autograd.grad(theirs.sum(), grid)
    assert torch.allclose(ours_grad, theirs_grad)
