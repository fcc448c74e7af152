"""Uncertainty maps and per-case quality scores of a segmentation, and the flag that turns a
score into ``ok`` / ``review``.

Scores of one case (higher = more doubtful):

- ``mean_entropy``: the entropy of the averaged softmax (over folds and TTA copies),
  normalised by log K to [0, 1], averaged over the predicted foreground (0 without any);
- ``disagreement``: 1 − the mean pairwise Dice of the members' foreground (folds × TTA
  copies, on the network's grid); NaN with a single member;
- ``expected_dice_gap``: 1 − the Dice the network expects of its own prediction, per label
  the soft Dice 2·Σ p·m / (Σ p + Σ m) of its probabilities p against its argmax mask m,
  averaged over the labels present (0 when none is): large when much probability lies
  outside the mask or the mask holds unsure voxels;
- ``worst_label_gap``: the same for the label the network is least sure of (a case's Dice
  is often low because one of its labels is);
- ``volume_z``: how many standard deviations the predicted foreground volume lies from the
  mean of the reference volumes the run was calibrated on (NaN before calibration).

`medseg calibrate` (`medseg.infer.calibrate`) chooses, on the run's cross-validation cases,
the score that best detects its worst cases and the threshold above which a case is flagged
``review``; it stores them in ``quality.json`` in the run folder.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medseg.errors import RunFolderError, located
from medseg.infer.temperature import TEMPERATURES
from medseg.io import read_json_file, write_text_atomic

QUALITY_FILE = "quality.json"
SCORES = ("mean_entropy", "disagreement", "expected_dice_gap", "worst_label_gap", "volume_z")


def entropy_map(probabilities: np.ndarray) -> np.ndarray:
    """Voxel-wise entropy of ``probabilities`` ``(K, *spatial)``, divided by log K (0 = sure,
    1 = uniform).

    Examples
    --------
    >>> entropy_map(np.array([[1.0, 0.5], [0.0, 0.5]])).round(3).tolist()
    [0.0, 1.0]
    """
    p = np.clip(probabilities.astype(np.float64), 1e-12, 1.0)
    return (-(p * np.log(p)).sum(0) / np.log(len(probabilities))).astype(np.float32)


def pairwise_agreement(member_labels: list[np.ndarray]) -> float:
    """Mean Dice of the foreground (label > 0) over all pairs of members; NaN for fewer than
    two, 1 for two empty masks."""
    masks = [labels > 0 for labels in member_labels]
    if len(masks) < 2:
        return float("nan")
    scores = []
    for a, b in itertools.combinations(masks, 2):
        total = int(a.sum()) + int(b.sum())
        scores.append(1.0 if total == 0 else 2.0 * int((a & b).sum()) / total)
    return float(np.mean(scores))


@dataclass(frozen=True)
class Calibration:
    """What `medseg calibrate` chose: the score, the threshold at or above which a case is
    flagged (the score's quantile that flags ``review_fraction`` of the calibration cases, or
    Youden's threshold where that is None), the reference volumes ``volume_z`` is measured
    against, and the temperature of the uncertainty map's probabilities."""

    score: str
    threshold: float
    volume_mean_ml: float
    volume_std_ml: float
    auroc: dict[str, float]
    cases: int
    worst_fraction: float
    review_fraction: float | None = None
    #: the probabilities' temperature for the uncertainty map (`medseg.infer.temperature`)
    temperature: float = 1.0

    def save(self, run_dir: Path, extra: dict[str, object]) -> Path:
        """Write ``quality.json`` (this and ``extra``, e.g. the risk-coverage curve)."""
        path = Path(run_dir) / QUALITY_FILE
        fields = asdict(self)
        fields["auroc"] = {k: v if np.isfinite(v) else None for k, v in self.auroc.items()}
        write_text_atomic(path, json.dumps({**fields, **extra}, indent=1) + "\n")
        return path


def load_calibration(run_dir: Path) -> Calibration | None:
    """The run's calibration, or None when it was never calibrated."""
    path = Path(run_dir) / QUALITY_FILE
    if not path.is_file():
        return None
    raw = read_json_file(path, RunFolderError, expect_object=True)
    try:
        optional = {"review_fraction": None, "temperature": 1.0}  # files before 2026-12-03
        fields = {name: raw[name] if name in raw else optional[name]
                  for name in Calibration.__dataclass_fields__}  # fmt: skip
        aurocs = fields["auroc"].items()
        fields["auroc"] = {k: float("nan") if v is None else float(v) for k, v in aurocs}
        calibration = Calibration(**fields)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise RunFolderError(located(path, "not a quality.json of medseg calibrate")) from None
    if calibration.score not in SCORES:
        raise RunFolderError(located(path, f"unknown score {calibration.score!r}"))
    t, (low, high) = calibration.temperature, (float(TEMPERATURES[0]), float(TEMPERATURES[-1]))
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not low <= t <= high:
        # outside the fitted range a hand-edited value could turn the map into NaN
        raise RunFolderError(located(path, f"temperature {t!r} is not in [{low:g}, {high:g}]"))
    share = calibration.review_fraction
    if share is not None and not (isinstance(share, float) and 0 < share < 1):
        raise RunFolderError(located(path, f"review_fraction {share!r} is not in (0, 1)"))
    return calibration


def case_scores(
    probabilities: np.ndarray,
    labels: np.ndarray,
    member_labels: list[np.ndarray],
    voxel_ml: float,
    calibration: Calibration | None,
) -> dict[str, float]:
    """The scores of one case from its averaged probabilities ``(K, *s)`` and label map on
    the input's grid, and its members' label maps; ``voxel_ml`` is one voxel's volume."""
    foreground = labels > 0
    entropy = entropy_map(probabilities)
    expected = expected_dice_per_label(probabilities)
    volume = float(foreground.sum()) * voxel_ml
    z = float("nan")
    if calibration is not None and calibration.volume_std_ml > 0:
        z = abs(volume - calibration.volume_mean_ml) / calibration.volume_std_ml
    return {
        "mean_entropy": float(entropy[foreground].mean()) if foreground.any() else 0.0,
        "disagreement": 1.0 - pairwise_agreement(member_labels),
        "expected_dice_gap": 1.0 - float(np.mean(expected or [1.0])),
        "worst_label_gap": 1.0 - min(expected or [1.0]),
        "volume_ml": round(volume, 4),
        "volume_z": z,
    }


def expected_dice_per_label(probabilities: np.ndarray) -> list[float]:
    """Per foreground class present, the soft Dice between the probabilities
    ``(K, *spatial)`` and their own argmax mask (empty when no foreground is predicted or
    likely anywhere).

    Examples
    --------
    >>> sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> unsure = np.array([[0.4, 0.6], [0.6, 0.4]])
    >>> expected_dice_per_label(sure), [round(d, 3) for d in expected_dice_per_label(unsure)]
    ([1.0], [0.6])
    """
    classes = probabilities.argmax(0)
    scores = []
    for k in range(1, len(probabilities)):
        p, mask = probabilities[k].astype(np.float64), classes == k
        total = float(p.sum()) + float(mask.sum())
        if total > 0:
            scores.append(2.0 * float(p[mask].sum()) / total)
    return scores


def flag(scores: dict[str, float], calibration: Calibration | None) -> str:
    """``review`` when the calibrated score is at or above its threshold (or undefined),
    ``ok`` below it, empty without a calibration."""
    if calibration is None:
        return ""
    value = scores[calibration.score]
    return "review" if not np.isfinite(value) or value >= calibration.threshold else "ok"
