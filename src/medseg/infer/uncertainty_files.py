"""What ``medseg predict --uncertainty`` writes: ``{case}_uncertainty.nii.gz`` and
``quality.csv`` (one row per case: its scores and, once calibrated, its flag)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.infer.quality import Calibration, case_scores, entropy_map, flag
from medseg.infer.temperature import scale
from medseg.io import Image, write_image
from medseg.io.csv_file import write_csv_atomic

QUALITY_CSV = "quality.csv"
QUALITY_COLUMNS = [
    "case", "mean_entropy", "disagreement", "expected_dice_gap", "worst_label_gap", "volume_ml",
    "volume_z", "flag",
]  # fmt: skip


def write_uncertainty(
    probabilities: np.ndarray,
    labels: Image,
    out_dir: Path,
    case: str,
    calibration: Calibration | None = None,
) -> Path:
    """The normalised entropy map on the input's grid (float32, 0 = sure, 1 = uniform), of
    the probabilities at the calibrated temperature (`medseg.infer.temperature`)."""
    path = Path(out_dir) / f"{case}_uncertainty.nii.gz"
    temperature = calibration.temperature if calibration is not None else 1.0
    entropy = entropy_map(scale(probabilities, temperature))
    write_image(Image(entropy[None], labels.affine), path)
    return path


def quality_row(
    case: str,
    probabilities: np.ndarray,
    labels: Image,
    members: list[np.ndarray],
    calibration: Calibration | None,
) -> dict[str, object]:
    """One row of quality.csv."""
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    scores = case_scores(probabilities, labels.array[0], members, voxel_ml, calibration)
    row: dict[str, object] = {"case": case}
    row |= {k: round(v, 6) if np.isfinite(v) else "" for k, v in scores.items()}
    row["flag"] = flag(scores, calibration)
    return row


def write_quality(rows: list[dict[str, object]], out_dir: Path) -> Path:
    """Write quality.csv into ``out_dir``."""
    return write_csv_atomic(Path(out_dir) / QUALITY_CSV, QUALITY_COLUMNS, rows)
