"""Validation of the per-case quality flag (``medseg calibrate``) on a cross-validated run:
does a score catch the worst segmentations, and by how much more than a random flag?

For every cross-validation case, `calibrate_run` predicts the case again with its fold's
network (and the mirrored copies), computes the quality scores and its Dice against the
reference. This script then prints, for the worst 10 % of cases by Dice:

1. each score's AUROC with a 95 % bootstrap interval (2,000 resamples of cases), beside a
   random flag's (the mean and the 2.5–97.5 % range of the AUROC of 2,000 random scores);
2. the risk–coverage table: the mean Dice of the cases kept when the most doubtful are
   flagged first, at 100 / 95 / 90 / 80 / 70 % coverage, for the chosen score, a random flag
   (the mean over 2,000 random orders) and an oracle that flags by the true Dice;
3. held-out folds: the score and threshold chosen on four folds (as ``medseg calibrate``
   chooses them: Youden's threshold, or the quantile that sends 10 / 20 / 30 % of the cases
   to review) and applied to the fifth, each fold in turn — the worst cases caught, the
   share of cases flagged, the mean Dice of flagged and kept cases, and the probability
   that a random flag of the same size catches as many (hypergeometric). This is the
   figure a user can expect: nothing of the held-out fold went into the choice.

Usage: python bench/quality_flag.py RUN_DIR [--dataset DIR] [--reuse]
(RUN_DIR: a run trained with ``medseg train DATASET --out RUN_DIR --cross-validation``.)
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
from pathlib import Path

import numpy as np
from scipy.stats import hypergeom

from medseg.infer.calibrate import calibrate_run, choose_flag
from medseg.infer.quality import SCORES
from medseg.metrics.classification import roc_auc

WORST = 0.1
REVIEW_FRACTIONS = (0.1, 0.2, 0.3)
COVERAGES = (1.0, 0.95, 0.9, 0.8, 0.7)
DRAWS = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--dataset", type=Path)
    parser.add_argument(
        "--reuse", action="store_true",
        help="read the scores of an earlier calibration (RUN/quality_cv.csv) instead of "
        "predicting every case again",
    )  # fmt: skip
    args = parser.parse_args()
    if args.reuse:
        rows = _stored_rows(args.run / "quality_cv.csv")
        calibration, _ = choose_flag(rows, WORST)  # sets each row's worst, as calibrate does
    else:
        calibration, rows = calibrate_run(args.run, args.dataset, WORST, "cpu", quiet=True)
    dice = np.array([r["dice"] for r in rows], float)
    worst = np.array([r["worst"] for r in rows], bool)
    print(f"{len(rows)} cross-validation cases, mean Dice {dice.mean():.4f}; worst {WORST:.0%}: "
          f"{worst.sum()} cases with Dice <= {dice[worst].max():.4f}")  # fmt: skip
    rng = np.random.default_rng(0)
    _aurocs(rows, worst, rng)
    if not args.reuse:
        _temperature(args.run)
    chosen = np.array([r[calibration.score] for r in rows], float)
    print(f"\nchosen on all folds: {calibration.score} >= {calibration.threshold:.4g}")
    _risk_coverage(dice, chosen, rng)
    _held_out(rows, float(np.quantile(dice, WORST)))


def _temperature(run: Path) -> None:
    fit = json.loads((run / "quality.json").read_text())["temperature_fit"]
    print(f"\ntemperature of the uncertainty map: {fit['temperature']:.3g} (fitted "
          f"{fit['fitted']:.3g} on {fit['voxels']} voxels near the foreground)\n"
          f"  negative log-likelihood {fit['nll_before']:.4f} -> {fit['nll_after']:.4f}; "
          f"held out (each fold by a T fitted on the others) {fit['held_out_nll_before']:.4f}"
          f" -> {fit['held_out_nll_after']:.4f}\n  expected calibration error "
          f"{fit['ece_before']:.4f} -> {fit['ece_after']:.4f}")  # fmt: skip


def _aurocs(rows: list[dict], worst: np.ndarray, rng: np.random.Generator) -> None:
    print("\nAUROC for the worst cases (95 % bootstrap interval)")
    for score in SCORES:
        values = np.array([r[score] for r in rows], float)
        if not np.isfinite(values).all():
            print(f"  {score:17s} undefined")
            continue
        low, high = _bootstrap(worst, values, rng)
        print(f"  {score:17s} {roc_auc(worst, values):.3f} ({low:.3f}-{high:.3f})")
    random = [roc_auc(worst, rng.random(len(worst))) for _ in range(DRAWS)]
    low, high = np.percentile(random, [2.5, 97.5])
    print(f"  {'random flag':17s} {np.mean(random):.3f} (95 % of draws {low:.3f}-{high:.3f})")


def _bootstrap(worst: np.ndarray, values: np.ndarray, rng: np.random.Generator):
    samples = []
    for _ in range(DRAWS):
        pick = rng.integers(0, len(worst), len(worst))
        if worst[pick].any() and not worst[pick].all():
            samples.append(roc_auc(worst[pick], values[pick]))
    return np.percentile(samples, [2.5, 97.5])


def _risk_coverage(dice: np.ndarray, score: np.ndarray, rng: np.random.Generator) -> None:
    print("\nmean Dice of the cases kept (most doubtful flagged first)")
    print("  coverage   chosen   random   oracle")
    by_score, by_dice = np.argsort(score), np.argsort(-dice)
    for coverage in COVERAGES:
        keep = int(round(coverage * len(dice)))
        random = np.mean([dice[rng.permutation(len(dice))[:keep]].mean() for _ in range(DRAWS)])
        print(f"  {coverage:8.0%}   {dice[by_score[:keep]].mean():.4f}   {random:.4f}   "
              f"{dice[by_dice[:keep]].mean():.4f}")  # fmt: skip


def _held_out(rows: list[dict], cut: float) -> None:
    """Each threshold rule chosen on four folds, applied to the fifth, every fold in turn."""
    print("\nheld-out folds: score and threshold chosen on the other folds")
    for review in (None, *REVIEW_FRACTIONS):
        rule = "Youden's threshold" if review is None else f"flag {review:.0%} of the cases"
        print(f"  {rule}:")
        print("    fold  score             threshold  caught  flagged  Dice flagged  Dice kept")
        flags, bads = [], []
        for fold in sorted({r["fold"] for r in rows}):
            others = [copy.copy(r) for r in rows if r["fold"] != fold]
            calibration, _ = choose_flag(others, WORST, review)
            test = [r for r in rows if r["fold"] == fold]
            flag = np.array([_score(r, calibration) for r in test]) >= calibration.threshold
            dice = np.array([r["dice"] for r in test])
            bad = dice <= cut
            flags.append(flag)
            bads.append(bad)
            flagged_dice = dice[flag].mean() if flag.any() else float("nan")
            print(f"    {fold:4d}  {calibration.score:17s} {calibration.threshold:9.4g}  "
                  f"{(flag & bad).sum():2d}/{bad.sum():<3d}  {flag.mean():7.1%}  "
                  f"{flagged_dice:12.4f}  {dice[~flag].mean():9.4f}")  # fmt: skip
        _chance(np.concatenate(flags), np.concatenate(bads))


def _chance(flag: np.ndarray, bad: np.ndarray) -> None:
    """How many of the worst cases the flag caught, how many a random flag of the same size
    catches on average, and the chance of a random flag catching as many (hypergeometric)."""
    caught, flagged, worst = int((flag & bad).sum()), int(flag.sum()), int(bad.sum())
    expected = flagged * worst / len(flag)
    p_value = hypergeom.sf(caught - 1, len(flag), worst, flagged)
    print(f"    all: {caught}/{worst} worst cases caught while flagging {flagged} of "
          f"{len(flag)} ({flagged / len(flag):.1%}); a random flag of that size catches "
          f"{expected:.1f} on average, {caught} or more with probability "
          f"{p_value:.2g}")  # fmt: skip


def _stored_rows(path: Path) -> list[dict]:
    """The rows of a ``quality_cv.csv``: numbers as floats, ``fold`` as an int."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key, value in row.items():
            if key not in ("case", "worst"):
                row[key] = int(value) if key == "fold" else float(value)
    return rows


def _score(row: dict, calibration) -> float:
    """The chosen score of a held-out case (its volume against the training folds')."""
    if calibration.score != "volume_z":
        return float(row[calibration.score])
    mean, std = calibration.volume_mean_ml, calibration.volume_std_ml
    return abs(float(row["volume_ml"]) - mean) / std


if __name__ == "__main__":
    main()
