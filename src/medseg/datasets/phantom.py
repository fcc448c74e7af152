"""The built-in synthetic dataset: CT-like slabs with three organ-like structures.

Each case has a body outline with a fat layer, three organs whose intensity ranges overlap
(they are told apart by shape, size and context, not by a threshold), smooth texture, white
noise, partial-volume blur and a smooth bias field. Shape, size, position and orientation are
random per case and fully determined by the seed. 3D cases are anisotropic (0.8 x 0.8 x 2.5 mm)
and stored as int16 Hounsfield-like NIfTI; 2D cases are 8-bit PNG slices.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.io import Image, spacing_affine, write_image, write_text_atomic

LABELS = {"background": 0, "liver": 1, "spleen": 2, "kidney": 3}
SHAPE_3D = (80, 80, 24)
SPACING_3D = (0.8, 0.8, 2.5)
SHAPE_2D = (160, 160)
SPACING_2D = (0.8, 0.8)


@dataclass(frozen=True)
class _Organ:
    label: int
    semi_axes_mm: tuple[float, float, float]
    mean_hu: float


# Neighbouring mean intensities lie about 2.5 noise standard deviations apart: single voxels
# overlap, neighbourhoods do not.
_ORGANS = (
    _Organ(1, (17.0, 12.0, 24.0), 80.0),
    _Organ(2, (11.0, 8.0, 18.0), 125.0),
    _Organ(3, (9.0, 7.0, 15.0), 170.0),
)
_BODY_HU, _FAT_HU, _AIR_HU = 30.0, -90.0, -1000.0


def _rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """A random rotation: any angle in-plane, a small tilt out of plane."""
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    if ndim == 2:
        return np.array([[c, -s], [s, c]])
    in_plane = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    tilt = rng.uniform(-0.3, 0.3)
    ct, st = np.cos(tilt), np.sin(tilt)
    return in_plane @ np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]])


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Smooth random field with features of about ``sigma`` voxels and unit standard deviation.

    Drawn on a grid coarser by ``sigma / 2`` and interpolated up: the same look as a Gaussian
    filter of the full grid at a fraction of the cost for large ``sigma``.
    """
    factor = max(1.0, sigma / 2)
    coarse_shape = tuple(max(2, int(np.ceil(n / factor)) + 1) for n in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse_shape).astype(np.float32), 1.0)
    zoom = [n / c for n, c in zip(shape, coarse_shape)]
    field = ndimage.zoom(field, zoom, order=1, grid_mode=True, mode="nearest")[
        tuple(slice(0, n) for n in shape)
    ]
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def _world_grid(shape: tuple[int, ...], spacing: tuple[float, ...]) -> list[np.ndarray]:
    """World coordinates (mm) of every voxel, centred on the image centre."""
    axes = [(np.arange(n, dtype=np.float32) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    return list(np.meshgrid(*axes, indexing="ij"))


def make_phantom_case(
    rng: np.random.Generator,
    shape: tuple[int, ...] = SHAPE_3D,
    spacing: tuple[float, ...] = SPACING_3D,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one phantom case: a float32 intensity array (HU-like) and a uint8 label map.

    Examples
    --------
    >>> image, label = make_phantom_case(np.random.default_rng(0), (48, 48, 12), (1.6, 1.6, 5.0))
    >>> image.shape, sorted(np.unique(label).tolist())
    ((48, 48, 12), [0, 1, 2, 3])
    """
    ndim = len(shape)
    grid = _world_grid(shape, spacing)
    extent = np.array([n * s for n, s in zip(shape, spacing)])
    coarse = max(4.0, 12.0 / min(spacing))

    # Body: an ellipse in-plane whose radius wobbles smoothly; a slab along the third axis.
    radii = extent[:2] / 2 * rng.uniform(0.78, 0.92, size=2)
    body_d = np.sqrt((grid[0] / radii[0]) ** 2 + (grid[1] / radii[1]) ** 2)
    wobble = 1 + 0.04 * _smooth_noise(rng, shape, coarse)
    body = body_d < wobble
    fat_depth = rng.uniform(0.06, 0.12)
    inner = body_d < wobble * (1 - fat_depth)

    # Organs sit in three sectors around the body centre, so they rarely touch; where they
    # do, the earlier organ keeps the voxel.
    label = np.zeros(shape, np.uint8)
    body_radius = float(radii.min())
    scale = float(rng.uniform(0.85, 1.15)) * body_radius / 33.0
    first_angle = rng.uniform(0, 2 * np.pi)
    for index, organ in enumerate(_ORGANS):
        axes_mm = np.array(organ.semi_axes_mm[:ndim]) * scale * rng.uniform(0.85, 1.15, ndim)
        angle = first_angle + index * 2 * np.pi / 3 + rng.uniform(-0.3, 0.3)
        distance = body_radius * rng.uniform(0.3, 0.5)
        centre = np.zeros(ndim, np.float32)
        centre[:2] = distance * np.cos(angle), distance * np.sin(angle)
        if ndim == 3:
            centre[2] = rng.uniform(-0.1, 0.1) * extent[2]
        offsets = np.stack([g - c for g, c in zip(grid, centre)], axis=-1)
        local = offsets @ _rotation(rng, ndim).astype(np.float32)
        d = np.sqrt(((local / axes_mm.astype(np.float32)) ** 2).sum(-1))
        mask = d < 1 + 0.12 * _smooth_noise(rng, shape, coarse)
        label[mask & inner & (label == 0)] = organ.label

    intensity = np.full(shape, _AIR_HU, np.float32)
    intensity[body] = _FAT_HU
    intensity[inner] = _BODY_HU
    for organ in _ORGANS:
        intensity[label == organ.label] = organ.mean_hu + rng.uniform(-10, 10)
    intensity = ndimage.gaussian_filter(intensity, 0.6)  # partial volume at edges
    tissue = body.astype(np.float32)
    intensity += tissue * 8 * _smooth_noise(rng, shape, 1.5)  # organ texture
    intensity += tissue * 20 * _smooth_noise(rng, shape, 3 * coarse)  # bias field
    intensity += 15 * rng.standard_normal(shape).astype(np.float32)  # white noise
    return intensity, label


def write_phantom_dataset(
    out_dir: str | Path,
    n_train: int = 20,
    n_test: int = 4,
    dim: int = 3,
    seed: int = 0,
    shape: tuple[int, ...] | None = None,
) -> Path:
    """Write a phantom dataset in the nnU-Net v2 raw layout and return its folder.

    Writes ``dataset.json``, ``imagesTr/``, ``labelsTr/``, ``imagesTs/`` and, so that test
    predictions can be scored, ``labelsTs/``. An existing folder is replaced.

    Parameters
    ----------
    out_dir
        Folder to create.
    n_train, n_test
        Number of training and test cases.
    dim
        3 for anisotropic CT-like NIfTI volumes, 2 for PNG slices.
    seed
        Every case is a function of the seed and its index.
    shape
        Voxel grid; the default is ``SHAPE_3D`` or ``SHAPE_2D``.

    Examples
    --------
    >>> import tempfile
    >>> root = write_phantom_dataset(tempfile.mkdtemp(), n_train=2, n_test=1, dim=2)
    >>> sorted(p.name for p in (root / "imagesTr").iterdir())
    ['phantom_000_0000.png', 'phantom_001_0000.png']
    """
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    spacing = SPACING_3D if dim == 3 else SPACING_2D
    shape = shape or (SHAPE_3D if dim == 3 else SHAPE_2D)
    ending = ".nii.gz" if dim == 3 else ".png"
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (out_dir / sub).mkdir(parents=True)
    affine = spacing_affine(spacing)
    for index in range(n_train + n_test):
        rng = np.random.default_rng([seed, index])
        intensity, label = make_phantom_case(rng, shape, spacing)
        if dim == 3:
            image = np.round(intensity).astype(np.int16)
        else:  # a soft-tissue window mapped to 8 bits
            image = np.clip((intensity + 160.0) / 400.0 * 255.0, 0, 255).round().astype(np.uint8)
        split = "Tr" if index < n_train else "Ts"
        case = f"phantom_{index:03d}"
        write_image(Image(image[None], affine), out_dir / f"images{split}" / f"{case}_0000{ending}")
        write_image(Image(label[None], affine), out_dir / f"labels{split}" / f"{case}{ending}")
    spec = {
        "name": f"medseg phantom {dim}D",
        "description": "Synthetic CT-like phantom generated by medseg.datasets.phantom",
        "channel_names": {"0": "CT" if dim == 3 else "grey"},
        "labels": LABELS,
        "numTraining": n_train,
        "file_ending": ending,
        "seed": seed,
    }
    write_text_atomic(out_dir / "dataset.json", json.dumps(spec, indent=2) + "\n")
    return out_dir
