"""``medseg predict --lesions``: every connected component of every predicted label as a row
of ``lesions.csv`` (detection from segmentation: nodules, metastases, lesions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.io import Image
from medseg.io.csv_file import write_csv_atomic
from medseg.metrics.detection import find_lesions
from medseg.runs import Plan

LESIONS_FILE = "lesions.csv"
COLUMNS = [
    "case", "label", "lesion", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
    "bbox_first", "bbox_last", "volume_ml", "confidence_mean", "confidence_max",
]  # fmt: skip


def lesion_rows(
    case: str, labels: Image, probabilities: np.ndarray, config: Plan
) -> list[dict[str, object]]:
    """One row per connected component of each foreground label of ``labels`` (centroid in
    world mm, RAS; voxel bounding box; volume; the label's mean and max probability over it)."""
    rows = []
    for index, (value, name) in enumerate(zip(config.label_values, config.label_names)):
        if value == 0:
            continue
        mask = labels.array[0] == value
        found = find_lesions(mask, labels.affine, probabilities[index])
        for number, lesion in enumerate(found, start=1):
            x, y, z = [*lesion.centroid_mm, 0.0][:3]
            rows.append(
                {
                    "case": case,
                    "label": name,
                    "lesion": number,
                    "centroid_x_mm": x,
                    "centroid_y_mm": y,
                    "centroid_z_mm": z,
                    "bbox_first": " ".join(map(str, lesion.bbox_first)),
                    "bbox_last": " ".join(map(str, lesion.bbox_last)),
                    "volume_ml": lesion.volume_ml,
                    "confidence_mean": round(lesion.confidence_mean, 6),
                    "confidence_max": round(lesion.confidence_max, 6),
                }
            )
    return rows


def write_lesions(rows: list[dict[str, object]], out_dir: Path) -> Path:
    """Write ``lesions.csv`` into ``out_dir`` (a header only when nothing was found)."""
    return write_csv_atomic(Path(out_dir) / LESIONS_FILE, COLUMNS, rows)
