"""The spatial step: image and label stay aligned, labels are never invented, mirroring is
exact, anisotropic data turns only in-plane, and the two 3D resampling paths agree."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medseg.augment import AugmentationSettings, Augmenter, padded_patch_size
from medseg.augment.resample import affine_points, resample_direct, resample_separable
from medseg.augment.spatial import rotation_matrices

INTENSITY = ["noise", "blur", "brightness", "contrast", "low_resolution", "inverted_gamma", "gamma"]


def spatial_only(**changes: dict) -> AugmentationSettings:
    """Settings with every intensity transform off, rotation and scaling always on (nnU-Net's
    ranges), mirroring at its default, and ``changes`` merged into the transforms."""
    data = AugmentationSettings().model_dump()
    for name in INTENSITY:
        data[name]["probability"] = 0.0
    data["rotation"]["probability"] = data["scaling"]["probability"] = 1.0
    for name, values in changes.items():
        data[name].update(values)
    return AugmentationSettings.model_validate(data)


def spheres(batch: int, size: tuple[int, ...], seed: int, count: int = 6) -> torch.Tensor:
    """``(B, 1, *size)`` signed distance (voxels) to a union of random balls of radius 5-13:
    positive inside. Its zero surface is smooth, so ``image > 0`` is a label whose every edge
    is well defined."""
    g = torch.Generator().manual_seed(seed)
    dim = len(size)
    axes = [
        torch.arange(n, dtype=torch.float32).view([n if i == a else 1 for i in range(dim)])
        for a, n in enumerate(size)
    ]
    out = torch.full((batch, 1, *size), -1e9)
    for b in range(batch):
        for _ in range(count):
            centre = torch.rand(dim, generator=g) * torch.tensor(size)
            radius = 5 + 8 * torch.rand(1, generator=g)
            squared = sum((x - c) ** 2 for x, c in zip(axes, centre))
            torch.maximum(out[b, 0], radius - squared.sqrt(), out=out[b, 0])
    return out


def misaligned_far_from_edges(image: torch.Tensor, label: torch.Tensor, radius: int) -> int:
    """Voxels where ``image > 0`` and ``label`` disagree although no edge of ``image > 0``
    lies within ``radius`` voxels (max-norm); voxels nearer than ``radius`` to the patch
    border are not judged (their neighbourhood is partly unseen)."""
    above = (image[:, 0] > 0).float()[:, None]
    pool = F.max_pool3d if above.ndim == 5 else F.max_pool2d
    size = 2 * radius + 1
    high = pool(above, size, 1, radius)[:, 0]
    low = -pool(-above, size, 1, radius)[:, 0]
    inner = torch.zeros_like(label, dtype=torch.bool)
    inner[(slice(None), *[slice(radius, -radius)] * (label.ndim - 1))] = True
    wrong = (above[:, 0] > 0) != (label > 0)
    return int((wrong & (high == low) & inner).sum())


CASES = {
    "3d": dict(dim=3, size=(52, 52, 44), out=(36, 36, 30), spacing=None, changes={}),
    "3d anisotropic": dict(
        dim=3, size=(52, 52, 16), out=(36, 36, 12), spacing=(1.0, 1.0, 4.0), changes={}
    ),
    "3d large angles": dict(
        dim=3,
        size=(52, 52, 44),
        out=(36, 36, 30),
        spacing=None,
        changes={"rotation": {"probability": 1.0, "angle_degrees": [-90, 90]}},
    ),  # fmt: skip
    "3d elastic": dict(
        dim=3,
        size=(52, 52, 44),
        out=(36, 36, 30),
        spacing=None,
        changes={"elastic": {"probability": 1.0, "magnitude": [2, 5], "spacing": 12}},
    ),  # fmt: skip
    "2d": dict(dim=2, size=(96, 90), out=(64, 60), spacing=None, changes={}),
    "2d elastic": dict(
        dim=2,
        size=(96, 90),
        out=(64, 60),
        spacing=None,
        changes={"elastic": {"probability": 1.0, "magnitude": [2, 5], "spacing": 12}},
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(CASES))
def test_label_of_a_function_of_the_image_stays_aligned(case: str) -> None:
    """label = image > 0 before; after rotation (±30°, or ±90°), zoom 0.7-1.4, mirroring and
    elastic deformation, ``augmented image > 0`` matches the augmented label everywhere except
    within 2 voxels of an edge (zooming in by 1/0.7, one input voxel spans 1.4 output voxels),
    and on no more voxels than 3D/2D grid_sample's trilinear/nearest pair shows itself."""
    c = CASES[case]
    augment = Augmenter(spatial_only(**c["changes"]), dim=c["dim"], seed=3, spacing=c["spacing"])
    for seed in range(2):
        image = spheres(4, c["size"], seed)
        label = (image[:, 0] > 0).long()
        out, out_label = augment(image, label, c["out"])
        assert misaligned_far_from_edges(out, out_label, radius=2) == 0
        # Nearly every voxel agrees; about 18 % of the voxels are foreground.
        disagree = float(((out[:, 0] > 0) != (out_label > 0)).double().mean())
        assert disagree < 0.025
        assert out_label.sum() > 0.05 * out_label.numel()  # the check saw foreground


SPATIAL = ["rotation", "scaling", "translation", "elastic", "mirror"]

#: Each spatial transform alone, always applied, at nnU-Net's ranges (elastic: a clear one).
ALONE = {
    "rotation": {"probability": 1.0},
    "scaling": {"probability": 1.0},
    "translation": {"probability": 1.0},
    "elastic": {"probability": 1.0, "magnitude": [2, 5], "spacing": 12},
    "mirror": {"probability": 1.0},
}

GEOMETRIES = {
    "2d": dict(dim=2, size=(96, 90), out=(64, 60), spacing=None),
    "3d": dict(dim=3, size=(52, 52, 44), out=(36, 36, 30), spacing=None),
    "3d anisotropic": dict(dim=3, size=(52, 52, 16), out=(36, 36, 12), spacing=(1.0, 1.0, 4.0)),
}


def alone(name: str) -> AugmentationSettings:
    """Every transform off but ``name``, which is always applied."""
    data = AugmentationSettings().model_dump()
    for other in SPATIAL + INTENSITY:
        data[other]["probability"] = 0.0
    data[name].update(ALONE[name])
    return AugmentationSettings.model_validate(data)


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
@pytest.mark.parametrize("transform", SPATIAL)
def test_each_spatial_transform_alone_keeps_the_label_aligned(transform, geometry) -> None:
    """label = image > 0 before; after one transform, ``image > 0`` still matches the label
    away from edges (exactly, for mirroring), the image moved (the transform did something)
    and foreground was seen; in 2D, 3D and anisotropic 3D."""
    g = GEOMETRIES[geometry]
    augment = Augmenter(alone(transform), dim=g["dim"], seed=5, spacing=g["spacing"])
    image = spheres(4, g["size"], seed=11)
    label = (image[:, 0] > 0).long()
    out, out_label = augment(image, label, g["out"])
    if transform == "mirror":
        assert torch.equal(out[:, 0] > 0, out_label > 0)
    else:
        assert misaligned_far_from_edges(out, out_label, radius=2) == 0
        assert float(((out[:, 0] > 0) != (out_label > 0)).double().mean()) < 0.025
    start = [(i - o) // 2 for i, o in zip(g["size"], g["out"])]
    centre = image[(slice(None), slice(None), *[slice(a, a + o) for a, o in zip(start, g["out"])])]
    assert not torch.equal(out, centre)
    assert out_label.sum() > 0.05 * out_label.numel()


def test_separable_path_matches_grid_sample_3d() -> None:
    """The two-pass 3D resampling and one trilinear grid_sample agree closely (both are
    linear interpolations); labels agree on all but voxels at edges."""
    size, out_size = (48, 48, 40), (36, 36, 30)
    g = torch.Generator().manual_seed(0)
    image = spheres(4, size, seed=1)
    label = (image[:, 0] > 0).long() + (image[:, 0] > 4).long()
    angles = (torch.rand(4, 3, generator=g, dtype=torch.float64) - 0.5) * math.radians(60)
    zoom = 0.7 + 0.7 * torch.rand(4, 1, 1, generator=g, dtype=torch.float64)
    matrix = rotation_matrices(angles, 3) * zoom
    start = torch.tensor([(i - o) // 2 for i, o in zip(size, out_size)])
    centre = (torch.tensor(out_size, dtype=torch.float64) - 1) / 2
    offset = start + centre - torch.einsum("bij,j->bi", matrix, centre) + 0.3
    for axis in range(3):
        ours, ours_label = resample_separable(image, label, matrix, offset, out_size, axis=axis)
        ref, ref_label = resample_direct(image, label, matrix, offset, out_size)
        difference = (ours - ref).abs()[:, 0]
        assert float(difference.mean()) < 0.02  # voxels; the image is a distance
        assert float(difference.quantile(0.99)) < 0.3
        # away from the input's border (where the two fade to the 0 outside differently)
        points = affine_points(matrix, offset, out_size)
        inside = ((points >= 1.5) & (points <= torch.tensor(size) - 2.5)).all(-1)
        assert float(difference[inside].max()) < 0.35
        assert float((ours_label != ref_label).double().mean()) < 0.01
        assert set(ours_label.unique().tolist()) <= {0, 1, 2}


@pytest.mark.parametrize("dim", [2, 3])
def test_labels_are_never_new_values(dim: int) -> None:
    size = (40, 40, 24)[:dim] if dim == 3 else (48, 44)
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 4, (3, *size), generator=g) * 3  # values 0, 3, 6, 9
    image = torch.rand(3, 2, *size, generator=g)
    changes = {"elastic": {"probability": 0.5}, "translation": {"probability": 0.5}}
    augment = Augmenter(spatial_only(**changes), dim=dim, seed=1)
    for _ in range(3):
        _, out = augment(image, label)
        assert out.dtype == torch.int64
        assert set(out.unique().tolist()) <= {0, 3, 6, 9}


@pytest.mark.parametrize("dim", [2, 3])
def test_mirroring_alone_is_an_exact_flip(dim: int) -> None:
    settings = spatial_only(rotation={"probability": 0.0}, scaling={"probability": 0.0})
    size, out_size = ((12, 10, 8), (8, 6, 4)) if dim == 3 else ((12, 10), (8, 6))
    g = torch.Generator().manual_seed(0)
    image = torch.rand(16, 2, *size, generator=g)
    label = torch.randint(0, 5, (16, *size), generator=g)
    out, out_label = Augmenter(settings, dim=dim, seed=0)(image, label, out_size)
    crop = tuple(slice((s - o) // 2, (s - o) // 2 + o) for s, o in zip(size, out_size))
    seen = set()
    for b in range(16):
        region, region_label = image[b][(slice(None), *crop)], label[b][crop]
        matches = [
            axes
            for axes in _subsets(dim)
            if torch.equal(out[b], region.flip([1 + a for a in axes]))
            and torch.equal(out_label[b], region_label.flip(list(axes)))
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 2  # several mirror combinations were drawn


def test_mirroring_inside_a_resampling_is_a_flip_too() -> None:
    """A rotation by 0° forces the resampling path; mirrored there, the result is the flipped
    crop up to float rounding, and the labels exactly."""
    settings = spatial_only(
        rotation={"probability": 1.0, "angle_degrees": 0.0}, scaling={"probability": 0.0}
    )
    size, out_size = (14, 12, 10), (8, 8, 6)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(8, 1, *size, generator=g)
    label = torch.randint(0, 3, (8, *size), generator=g)
    out, out_label = Augmenter(settings, dim=3, seed=0)(image, label, out_size)
    crop = tuple(slice((s - o) // 2, (s - o) // 2 + o) for s, o in zip(size, out_size))
    for b in range(8):
        region, region_label = image[b][(slice(None), *crop)], label[b][crop]
        found = [
            axes
            for axes in _subsets(3)
            if torch.allclose(out[b], region.flip([1 + a for a in axes]), atol=1e-5)
            and torch.equal(out_label[b], region_label.flip(list(axes)))
        ]
        assert len(found) == 1


def _subsets(dim: int) -> list[tuple[int, ...]]:
    return [tuple(a for a in range(dim) if mask >> a & 1) for mask in range(2**dim)]


def test_anisotropic_data_turns_and_zooms_only_in_plane() -> None:
    """Spacing (1, 1, 5): axis 2 is coarse. Every output slice along it must come from the
    one input slice at the same place (label = slice number + 1), for any rotation, zoom
    and mirroring; isotropic data with the same settings mixes slices."""
    size, out_size = (40, 40, 12), (28, 28, 8)
    settings = spatial_only(mirror={"probability": 0.0})
    slice_number = torch.arange(size[2]).view(1, 1, 1, -1).expand(4, *size)
    label = slice_number + 1
    # channel 0: the slice's number, channel 1: ones; both fade alike outside the input, so
    # their ratio shows whether slices were mixed
    image = torch.stack([label.float(), torch.ones(4, *size)], 1)
    start = (size[2] - out_size[2]) // 2
    anisotropic = Augmenter(settings, dim=3, seed=0, spacing=(1.0, 1.0, 5.0))
    out, out_label = anisotropic(image, label, out_size)
    expected = (torch.arange(out_size[2]) + start + 1).view(1, 1, 1, -1)
    assert bool(((out_label == expected) | (out_label == 0)).all())
    assert bool((out_label == expected).float().mean() > 0.5)
    seen = out[:, 1] > 0.01
    ratio = out[:, 0] / out[:, 1].clamp_min(0.01)
    assert torch.allclose(ratio[seen], expected.expand_as(ratio)[seen].float(), atol=1e-3)
    isotropic = Augmenter(settings, dim=3, seed=0, spacing=(1.0, 1.0, 1.0))
    _, mixed = isotropic(image, label, out_size)
    assert not bool(((mixed == expected) | (mixed == 0)).all())


def test_rotation_turns_in_millimetres() -> None:
    """A 90° in-plane turn of a patch with 0.5 x 1 mm pixels: a bar 10 mm long along axis 1
    (10 pixels) becomes 10 mm long along axis 0 (20 pixels)."""
    settings = spatial_only(
        rotation={"probability": 1.0, "in_plane_angle_degrees": 90.0},
        scaling={"probability": 0.0},
        mirror={"probability": 0.0},
    )
    label = torch.zeros(1, 41, 41, dtype=torch.int64)
    label[0, 20, 15:25] = 1
    _, out = Augmenter(settings, dim=2, seed=0, spacing=(0.5, 1.0))(label[:, None].float(), label)
    rows, cols = out[0].nonzero().unbind(1)
    assert (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)) == (20, 1)


def test_padded_patch_size() -> None:
    settings = AugmentationSettings()
    assert padded_patch_size([64, 64, 64], settings) == [89, 89, 89]  # capped at 1.4x
    assert padded_patch_size([128, 128], settings) == [179, 179]
    # the coarse axis of anisotropic data is not enlarged
    assert padded_patch_size([64, 64, 16], settings, spacing=(1, 1, 5)) == [89, 89, 16]
    small = settings.model_copy(
        update={"rotation": settings.rotation.model_copy(update={"angle_degrees": (-5, 5)}),
                "scaling": settings.scaling.model_copy(update={"probability": 0.0})}
    )  # fmt: skip
    # 5° about every axis: the turned box is about 1.2x larger
    assert padded_patch_size([40, 40, 40], small) == [47, 47, 47]
    nothing = settings.model_copy(
        update={"rotation": settings.rotation.model_copy(update={"probability": 0.0}),
                "scaling": settings.scaling.model_copy(update={"probability": 0.0})}
    )  # fmt: skip
    assert padded_patch_size([40, 30], nothing) == [40, 30]
