"""The dataset fingerprint: what the images and labels look like, before any decision.

``medseg fingerprint DATASET`` writes it as fingerprint.json; the plan is derived from it.
Shapes and spacings are given in the canonical (closest to RAS) axis order that
preprocessing works in.
"""

from __future__ import annotations

import zlib
from functools import partial
from pathlib import Path

import numpy as np
from nibabel import orientations
from pydantic import BaseModel, Field
from scipy import ndimage

from medseg.bounding_box import bounding_box
from medseg.datasets import Case, DatasetFolder, open_dataset, read_training_case
from medseg.errors import ConfigError
from medseg.io import read_json_file, write_text_atomic
from medseg.io.outputs import check_output_file
from medseg.parallel import map_in_processes
from medseg.preprocess.geometry import canonical_orientation, nonzero_box, reorient

FINGERPRINT_VERSION = 1
#: Foreground voxels sampled per case and channel for the pooled intensity statistics.
SAMPLES_PER_CASE = 10_000


class IntensityStats(BaseModel):
    """Intensity statistics of one channel inside the foreground (label > 0)."""

    mean: float
    std: float
    p0_5: float
    p99_5: float
    min: float
    max: float


class CaseFingerprint(BaseModel):
    """One training case."""

    case_id: str
    shape: list[int]  # canonical axis order
    spacing: list[float]
    orientation: str  # axis codes of the file, e.g. "LPS"
    cropped_shape: list[int]  # after cropping to the non-zero region
    foreground: list[IntensityStats | None]  # per channel; None without foreground
    class_voxels: dict[str, int]  # label value -> voxels
    class_volume_ml: dict[str, float]  # label value -> millilitres (mm^2 / 1000 in 2D)
    # label value -> centre of mass per canonical axis, as a fraction of the box around all
    # foreground (0 at its start, 1 at its end): where labels lie relative to one another
    class_centroids: dict[str, list[float]] = Field(default_factory=dict)


class ChannelFingerprint(BaseModel):
    """One channel over the whole dataset."""

    name: str
    foreground: IntensityStats | None  # pooled foreground samples of every case
    min: float
    max: float
    integer_0_255: bool  # every value an integer in [0, 255]: an 8-bit image


class Fingerprint(BaseModel):
    """The fingerprint of a dataset."""

    version: int = FINGERPRINT_VERSION
    dataset: str
    data_dim: int
    channels: list[ChannelFingerprint]
    labels: dict[str, int]
    median_shape: list[int]
    median_spacing: list[float]
    median_cropped_shape: list[int]
    class_frequency: dict[str, float]  # share of all foreground voxels per label value
    cases: list[CaseFingerprint]

    def save(self, path: str | Path) -> Path:
        """Write as JSON, atomically."""
        write_text_atomic(Path(path), self.model_dump_json(indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Fingerprint:
        """Read a fingerprint.json; a missing or malformed file is a `ConfigError` naming it."""
        return cls.model_validate(read_json_file(path, ConfigError))


def _stats(values: np.ndarray) -> IntensityStats | None:
    if values.size == 0:
        return None
    p_low, p_high = np.percentile(values, [0.5, 99.5])
    return IntensityStats(
        mean=float(values.mean(dtype=np.float64)),
        std=float(values.std(dtype=np.float64)),
        p0_5=float(p_low),
        p99_5=float(p_high),
        min=float(values.min()),
        max=float(values.max()),
    )


def _class_centroids(label: np.ndarray) -> dict[str, list[float]]:
    """Each label's centre of mass, per axis as a fraction of the foreground's box.

    Examples
    --------
    >>> label = np.zeros((4, 10), np.uint8); label[1:3, 0:3] = 1; label[1:3, 6:10] = 2
    >>> _class_centroids(label)
    {'1': [0.5, 0.111], '2': [0.5, 0.833]}
    """
    box = bounding_box(label > 0)
    if box is None:
        return {}
    values = [int(v) for v in np.unique(label[box]) if v > 0]
    centres = ndimage.center_of_mass(np.ones(label[box].shape), label[box], values)
    extent = np.asarray([max(b.stop - b.start - 1, 1) for b in box], float)
    return {
        str(v): [round(float(c), 3) for c in np.asarray(centre) / extent]
        for v, centre in zip(values, centres)
    }


def _case(
    case: Case, dataset: DatasetFolder
) -> tuple[CaseFingerprint, list[np.ndarray], list[tuple]]:
    """Fingerprint of one case, its foreground samples per channel and value ranges."""
    image, label = read_training_case(case, dataset.spec)
    ornt = canonical_orientation(image.affine, image.ndim)
    array, affine = reorient(image.array, image.affine, ornt)
    (label,), _ = reorient(label[None], image.affine, ornt)
    spacing = np.linalg.norm(affine[:3, : image.ndim], axis=0)
    box = nonzero_box(array)
    foreground = label > 0
    rng = np.random.default_rng(zlib.crc32(case.case_id.encode()))  # stable across processes
    stats, samples, ranges = [], [], []
    for channel in array:
        values = channel[foreground]
        stats.append(_stats(values))
        take = min(SAMPLES_PER_CASE, values.size)
        samples.append(rng.choice(values, take, replace=False) if take else values)
        integral = bool(np.all(channel == np.round(channel)))
        ranges.append((float(channel.min()), float(channel.max()), integral))
    counts = np.bincount(label.ravel())
    fingerprint = CaseFingerprint(
        class_centroids=_class_centroids(label),
        case_id=case.case_id,
        shape=list(array.shape[1:]),
        spacing=[float(s) for s in spacing],
        orientation="".join(orientations.aff2axcodes(image.affine))[: image.ndim],
        cropped_shape=[b - a for a, b in box],
        foreground=stats,
        class_voxels={str(v): int(n) for v, n in enumerate(counts) if n and v > 0},
        class_volume_ml={
            str(v): float(n * np.prod(spacing) / 1000) for v, n in enumerate(counts) if n and v > 0
        },
    )
    return fingerprint, samples, ranges


def compute_fingerprint(
    dataset: DatasetFolder, jobs: int | None = None, quiet: bool = False
) -> Fingerprint:
    """Fingerprint every training case of a dataset and pool them; ``jobs`` processes (by
    default one per core when the cases are slow enough to pay for starting them).

    Examples
    --------
    >>> fp = compute_fingerprint(open_dataset("Dataset004_Hippocampus"))  # doctest: +SKIP
    >>> fp.median_spacing, fp.channels[0].foreground.p99_5  # doctest: +SKIP
    """
    results = list(
        map_in_processes(
            partial(_case, dataset=dataset), dataset.training, jobs, "fingerprint", quiet
        )
    )
    cases = [r[0] for r in results]
    spec = dataset.spec
    channels = []
    for c in range(spec.num_channels):
        pooled = np.concatenate([r[1][c] for r in results])
        low = min(r[2][c][0] for r in results)
        high = max(r[2][c][1] for r in results)
        integral = all(r[2][c][2] for r in results)
        channels.append(
            ChannelFingerprint(
                name=spec.channel_names[str(c)],
                foreground=_stats(pooled),
                min=low,
                max=high,
                integer_0_255=integral and low >= 0 and high <= 255,
            )
        )
    voxels: dict[str, int] = {}
    for case in cases:
        for value, n in case.class_voxels.items():
            voxels[value] = voxels.get(value, 0) + n
    total = sum(voxels.values()) or 1
    return Fingerprint(
        dataset=dataset.root.name,
        data_dim=len(cases[0].shape),
        channels=channels,
        labels=dict(spec.labels),
        median_shape=[int(v) for v in np.median([c.shape for c in cases], axis=0)],
        median_spacing=[float(v) for v in np.median([c.spacing for c in cases], axis=0)],
        median_cropped_shape=[int(v) for v in np.median([c.cropped_shape for c in cases], axis=0)],
        class_frequency={
            k: v / total for k, v in sorted(voxels.items(), key=lambda kv: int(kv[0]))
        },
        cases=cases,
    )


def fingerprint_dataset(
    dataset_dir: str | Path, out: str | Path, jobs: int | None = None, quiet: bool = False
) -> Fingerprint:
    """``medseg fingerprint``: fingerprint the dataset folder ``dataset_dir`` and write it to
    ``out`` as JSON.

    Examples
    --------
    >>> fingerprint_dataset("Dataset004_Hippocampus", "fingerprint.json")  # doctest: +SKIP
    """
    check_output_file(out)
    fingerprint = compute_fingerprint(open_dataset(dataset_dir), jobs=jobs, quiet=quiet)
    fingerprint.save(out)
    return fingerprint
