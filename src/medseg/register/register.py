"""One registration from start to files: checks, affine then deformable, warped images and
labels, metrics before and after, and the result files of `medseg register`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from medseg.errors import MedsegError, located
from medseg.io import Image, same_grid, write_image, write_text_atomic
from medseg.metrics import score_label
from medseg.register.affine import register_affine
from medseg.register.deformable import displacement_on_grid, register_deformable
from medseg.register.itk_files import write_affine_text, write_displacement, write_jacobian
from medseg.register.jacobian import folding_percent, jacobian_determinant
from medseg.register.learned import LearnedModel, centre_alignment, learned_stage
from medseg.register.overlay import save_registration_overlay
from medseg.register.pyramid import pyramid, robust_scaled
from medseg.register.similarity import MEASURES
from medseg.register.transforms import Transform
from medseg.register.warp import warp_image, warp_labels

Method = Literal["rigid", "affine", "deformable", "learned"]
#: Pyramid levels, as voxel sizes in mm (each turned into a pooling factor of the image).
AFFINE_LEVELS_MM = (8.0, 4.0, 2.0)
DEFORMABLE_LEVELS_MM = (8.0, 4.0, 2.0)
#: Adam steps per level, coarsest first (bench/registration.py: half the affine steps lose
#: nothing on MNI but 0.01 Dice on Hippocampus inter-subject pairs).
AFFINE_ITERATIONS = (200, 80, 20)
DEFORMABLE_ITERATIONS = (20, 20, 20)


class RegistrationError(MedsegError):
    """Inputs that cannot be registered (wrong dimensionality, empty, NaN, bad labels)."""


@dataclass
class Registration:
    """A finished registration: the transform, the warped moving image (and labels), the
    Jacobian determinant of a deformable transform, and the numbers of metrics.json."""

    transform: Transform
    warped: Image
    warped_labels: Image | None = None
    jacobian: np.ndarray | None = None
    metrics: dict[str, object] = field(default_factory=dict)


def check_inputs(
    fixed: Image,
    moving: Image,
    names: tuple[str, str] = ("fixed", "moving"),
    labels: dict[str, tuple[Image, Image]] | None = None,
) -> None:
    """Refuse what cannot be registered, one line naming the input and the problem."""
    for name, image in zip(names, (fixed, moving)):
        if image.ndim != 3:
            raise RegistrationError(
                located(name, f"a {image.ndim}D image; registration needs 3D images")
            )
        data = image.array[0]
        if not np.isfinite(data).all():
            raise RegistrationError(located(name, "holds NaN or infinite intensities"))
        if float(data.max()) == float(data.min()):
            raise RegistrationError(located(name, "is empty (one constant value)"))
    for name, (label, image) in (labels or {}).items():
        _check_label_map(name, label)
        if not same_grid(label, image):
            raise RegistrationError(
                located(name, "label map's grid (shape or affine) differs from its image's")
            )


def _check_label_map(name: str, label: Image) -> None:
    """One channel of whole, non-negative numbers (float files holding them are accepted)."""
    data = label.array
    if label.channels != 1:
        raise RegistrationError(located(name, f"a label map has one channel, not {label.channels}"))
    whole = np.issubdtype(data.dtype, np.integer) or (
        np.isfinite(data).all() and bool((data == np.round(data)).all())
    )
    if not whole:
        raise RegistrationError(
            located(name, "holds values that are not whole numbers: not labels")
        )
    if data.size and float(data.min()) < 0:
        raise RegistrationError(located(name, "holds negative values: not a label map"))


def _factors(image: Image, levels_mm: tuple[float, ...]) -> tuple[int, ...]:
    finest = min(image.spacing)
    smallest = min(image.spatial_shape)
    factors = []
    for mm in levels_mm:
        f = max(1, int(round(mm / finest)))
        while f > 1 and smallest // f < 8:  # keep at least 8 voxels per axis
            f //= 2
        factors.append(f)
    return tuple(sorted(set(factors), reverse=True))  # coarsest first


def _label_scores(
    reference: Image, labels: Image, values: list[int]
) -> dict[str, dict[str, float | None]]:
    out = {}
    for value in values:
        scores, _ = score_label(
            reference.array[0] == value, labels.array[0] == value, reference.spacing
        )
        out[str(value)] = {
            k: (None if not np.isfinite(scores[k]) else float(scores[k])) for k in ("dice", "hd95")
        }
    return out


def _similarity(metric: str, fixed: Image, warped: Image) -> float:
    measure = MEASURES[metric]
    if metric == "lncc":  # on intensities of order 1, for float32's sake (see box_mean)
        f, w = (
            torch.from_numpy(robust_scaled(np.asarray(x.array[0], np.float32)))[None, None]
            for x in (fixed, warped)
        )
        return float(-measure(f, w))
    f = torch.from_numpy(np.asarray(fixed.array[:1], np.float32))[None]
    w = torch.from_numpy(np.asarray(warped.array[:1], np.float32))[None]
    if metric == "mi":  # on a sample: the soft histogram of every voxel would be large
        index = torch.randperm(f.numel(), generator=torch.Generator().manual_seed(0))[:200_000]
        return float(-measure(f.flatten()[index], w.flatten()[index]))
    value = float(measure(f, w))
    return value if metric == "mse" else -value


def register_images(
    fixed: Image,
    moving: Image,
    method: Method = "deformable",
    metric: str | None = None,
    moving_labels: Image | None = None,
    fixed_labels: Image | None = None,
    affine_first: bool = True,
    smoothness: float = 0.3,
    device: torch.device | None = None,
    model: LearnedModel | None = None,
    refine_steps: int = 0,
) -> Registration:
    """Register ``moving`` to ``fixed`` (world coordinates: any shapes, spacings and
    orientations). ``method``: rigid, affine, deformable or learned (the deformable ones after
    an affine stage unless ``affine_first`` is False; without it, learned starts from the
    image centres aligned). ``metric`` defaults to ncc for rigid/affine and lncc for
    deformable; use mi for different modalities. ``learned`` needs ``model`` (from
    `load_learned_model`) and may refine its field for ``refine_steps`` steps. Labels, when
    given, are warped with the result and scored before and after (Dice, HD95 per label)."""
    device = device or torch.device("cpu")
    deformable = method in ("deformable", "learned")
    metric = metric or ("lncc" if deformable else "ncc")
    if metric not in MEASURES:
        raise RegistrationError(f"unknown similarity {metric!r}; choose from {sorted(MEASURES)}")
    if method == "learned" and model is None:
        raise RegistrationError("the learned method needs a model (--model RUN_DIR)")
    start = time.perf_counter()
    affine_metric = "ncc" if metric == "lncc" else metric
    matrix = np.eye(4)
    if method == "learned" and not affine_first:
        matrix = centre_alignment(fixed, moving)
    if method in ("rigid", "affine") or affine_first:
        factors = _factors(fixed, AFFINE_LEVELS_MM)
        result = register_affine(
            pyramid(fixed, factors, device),
            pyramid(moving, factors, device),
            metric=affine_metric,
            rigid=method == "rigid",
            iterations=AFFINE_ITERATIONS[: len(factors)],
        )
        matrix = result.matrix
    transform = Transform(matrix)
    jacobian = None
    if method == "learned":
        assert model is not None
        result_d = learned_stage(model, fixed, moving, matrix, refine_steps)
    elif method == "deformable":
        factors = _factors(fixed, DEFORMABLE_LEVELS_MM)
        result_d = register_deformable(
            pyramid(fixed, factors, device),
            pyramid(moving, factors, device),
            matrix,
            metric=metric,
            iterations=DEFORMABLE_ITERATIONS[: len(factors)],
            smoothness=smoothness,
            learning_rate=1.0,
        )
    if deformable:
        displacement = displacement_on_grid(result_d, fixed.affine, fixed.spatial_shape)
        transform = Transform(matrix, displacement, fixed.affine)
        jacobian = jacobian_determinant(displacement, fixed.affine)
    seconds = time.perf_counter() - start
    warped = warp_image(moving, fixed, transform)
    identity = warp_image(moving, fixed, Transform())
    metrics: dict[str, object] = {
        "method": method,
        "metric": metric,
        "seconds": round(seconds, 2),
        "similarity_before": _similarity(metric, fixed, identity),
        "similarity_after": _similarity(metric, fixed, warped),
        "affine": matrix.tolist(),
    }
    if jacobian is not None:
        logs = np.log(np.clip(jacobian, 1e-9, None))
        metrics["folding_percent"] = folding_percent(jacobian)
        metrics["log_jacobian_std"] = (
            float(logs[jacobian > 0].std()) if np.any(jacobian > 0) else None
        )
    else:
        det = float(np.linalg.det(matrix[:3, :3]))
        metrics["folding_percent"] = 0.0 if det > 0 else 100.0
        metrics["log_jacobian_std"] = 0.0
    warped_labels = None
    if moving_labels is not None:
        warped_labels = warp_labels(moving_labels, fixed, transform, "nearest")
        if fixed_labels is not None:
            values = sorted(
                (set(np.unique(fixed_labels.array)) | set(np.unique(moving_labels.array))) - {0}
            )
            values = [int(v) for v in values]
            before = warp_labels(moving_labels, fixed, Transform(), "nearest")
            metrics["labels_before"] = _label_scores(fixed_labels, before, values)
            metrics["labels_after"] = _label_scores(fixed_labels, warped_labels, values)
    return Registration(transform, warped, warped_labels, jacobian, metrics)


def write_registration(
    result: Registration,
    fixed: Image,
    moving: Image,
    out_dir: str | Path,
    fixed_labels: Image | None = None,
    moving_labels: Image | None = None,
) -> list[Path]:
    """Write warped.nii.gz, warped_labels.nii.gz (with labels), displacement.nii.gz,
    affine.txt, affine.tfm, affine.mat (ANTs), jacobian.nii.gz (deformable), metrics.json
    and overlay.png."""
    out = Path(out_dir)
    written = [out / "warped.nii.gz"]
    write_image(result.warped, written[0])
    if result.warped_labels is not None:
        written.append(out / "warped_labels.nii.gz")
        write_image(result.warped_labels, written[-1])
    written.append(out / "displacement.nii.gz")
    write_displacement(result.transform, fixed, written[-1])
    for name in ("affine.txt", "affine.tfm", "affine.mat"):
        written.append(out / name)
        write_affine_text(result.transform.affine, written[-1])
    if result.jacobian is not None:
        written.append(out / "jacobian.nii.gz")
        write_jacobian(result.jacobian, fixed, written[-1])
    written.append(out / "metrics.json")
    write_text_atomic(written[-1], json.dumps(result.metrics, indent=2) + "\n")
    overlay = out / "overlay.png"
    written.append(
        save_registration_overlay(
            fixed, moving, result.transform, overlay, fixed_labels, moving_labels
        )
    )
    return written
