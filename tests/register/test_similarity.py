"""Similarity measures: each is lowest for aligned images and works with gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medseg.register.similarity import (
    MEASURES,
    box_mean,
    lncc,
    local_normalised,
    mutual_information,
    ncc,
)


def _blobs(shift: int = 0) -> torch.Tensor:
    x = torch.zeros(1, 1, 24, 24, 24)
    x[..., 6 + shift : 14 + shift, 8:16, 5:18] = 1.0
    x[..., 14:20, 3 + shift : 9 + shift, 10:20] = 0.5
    return x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_aligned_scores_best(name: str) -> None:
    measure = MEASURES[name]
    fixed = _blobs()
    assert float(measure(fixed, fixed)) < float(measure(fixed, _blobs(shift=3)))


def test_correlations_ignore_linear_intensity_changes() -> None:
    fixed = _blobs()
    assert float(ncc(fixed, 2 * fixed + 5)) == pytest.approx(-1.0, abs=1e-4)
    assert float(lncc(fixed, 3 * fixed + 1)) < -0.5


def test_mutual_information_sees_a_non_linear_remapping() -> None:
    fixed = _blobs()
    remapped = torch.cos(3 * fixed)  # one-to-one on [0, 1], not linear
    shifted = torch.cos(3 * _blobs(shift=3))
    assert float(mutual_information(fixed, remapped)) < float(mutual_information(fixed, shifted))


def test_lncc_has_gradients() -> None:
    moving = _blobs(shift=1).requires_grad_(True)
    lncc(_blobs(), moving).backward()
    assert moving.grad is not None and torch.isfinite(moving.grad).all()


def test_lncc_of_an_image_thinner_than_its_window() -> None:
    """An axis shorter than the window (8 slices, window 9) uses the whole axis."""
    fixed = torch.rand(1, 1, 12, 10, 8)
    value = lncc(fixed, fixed)
    assert torch.isfinite(value) and value < -0.9
    assert lncc(fixed, torch.rand(1, 1, 12, 10, 8)) > value


def test_box_mean_equals_average_pooling_without_the_padding() -> None:
    x = torch.rand(2, 3, 11, 7, 4, dtype=torch.float64)
    expected = x
    for axis, size in enumerate((5, 5, 3)):  # the thin last axis gets the largest odd fit
        kernel, padding = [1, 1, 1], [0, 0, 0]
        kernel[axis], padding[axis] = size, size // 2
        expected = F.avg_pool3d(expected, kernel, 1, padding, count_include_pad=False)
    assert torch.allclose(box_mean(x, 5), expected, atol=1e-12)


def test_squared_difference_of_locally_normalised_images_tracks_local_correlation() -> None:
    fixed = _blobs() + 0.05 * torch.rand(
        1, 1, 24, 24, 24, generator=torch.Generator().manual_seed(0)
    )
    near, far = _blobs(shift=1), _blobs(shift=4)

    def distance(moving: torch.Tensor) -> float:
        return float(((local_normalised(fixed) - local_normalised(moving)) ** 2).mean())

    assert distance(fixed) == 0.0
    assert distance(3 * fixed + 1) < 1e-3  # invariant to a linear intensity change
    assert distance(near) < distance(far)
    assert float(lncc(fixed, near)) < float(lncc(fixed, far))  # the same order as LNCC
