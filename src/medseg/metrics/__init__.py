"""Segmentation metrics (numpy, scipy and connected-components-3d; no torch).

Definitions and empty-mask conventions: docs/metrics.md.
"""

from medseg.metrics.aggregate import bootstrap_mean_ci, describe, summarise
from medseg.metrics.case import (
    HIGHER_IS_BETTER,
    LESION_METRICS,
    METRICS,
    CaseScores,
    absent_label_scores,
    score_case,
    score_label,
)
from medseg.metrics.evaluate import (
    Evaluation,
    EvaluationSettings,
    default_jobs,
    evaluate_folders,
    write_evaluation,
)
from medseg.metrics.lesions import LesionCounts, match_lesions
from medseg.metrics.overlap import Confusion, dice, dice_per_label, mask_ignored
from medseg.metrics.surface import SurfaceDistances, surface_distances, surface_voxels

__all__ = [
    "HIGHER_IS_BETTER",
    "LESION_METRICS",
    "METRICS",
    "CaseScores",
    "Confusion",
    "Evaluation",
    "EvaluationSettings",
    "LesionCounts",
    "SurfaceDistances",
    "absent_label_scores",
    "bootstrap_mean_ci",
    "default_jobs",
    "describe",
    "dice",
    "dice_per_label",
    "evaluate_folders",
    "mask_ignored",
    "match_lesions",
    "score_case",
    "score_label",
    "summarise",
    "surface_distances",
    "surface_voxels",
    "write_evaluation",
]
