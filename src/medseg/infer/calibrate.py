"""``medseg calibrate RUN``: choose the quality score and the flag threshold of a run on its
cross-validation cases, and store them in ``RUN/quality.json``.

Each fold's validation cases (those in ``fold_K/validation``) are predicted again by that
fold's network and its further models (``fold_K_1``, ...: where the step cap left time),
with the mirrored copies too when the model was trained with mirroring, as
``medseg predict --uncertainty`` would, and scored (`medseg.infer.quality`) and compared with
their references (mean Dice over the foreground labels). The worst cases are the
``worst_fraction`` with the lowest Dice. For each score the ROC AUC of detecting them is
measured; the score with the highest AUC is chosen, with the threshold that sends the most
doubtful ``review_fraction`` of these cases to review (or Youden's threshold).
The risk–coverage curve (the mean Dice of the cases kept when the most doubtful ones are
flagged first) is stored beside, with every case's scores in ``quality_cv.csv``, and the
temperature of the uncertainty map's probabilities, fitted on voxels of these cases
(`medseg.infer.temperature`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from medseg.datasets import DatasetFolder, open_dataset, read_training_case
from medseg.errors import ConfigError, RunFolderError, located
from medseg.folds import cross_validation_folders, fold_number, member_dirs
from medseg.infer.predict import TrainedModel, load_trained_model, mirror_axes, predict_labels
from medseg.infer.quality import SCORES, Calibration, case_scores
from medseg.infer.temperature import TemperatureFit, fit_temperature, voxel_sample
from medseg.io import image_files
from medseg.io.csv_file import write_csv_atomic
from medseg.metrics.classification import roc_auc, youden_threshold
from medseg.metrics.overlap import dice_per_label, mask_ignored
from medseg.postprocess.model import Postprocessing, load_postprocessing
from medseg.postprocess.run_folder import recorded_dataset_dir
from medseg.progress import make_progress

#: The share of cases the flag sends to review by default (see docs/predict.md).
REVIEW_FRACTION = 0.1


def calibrate_run(
    run_dir: str | Path,
    dataset_dir: str | Path | None = None,
    worst_fraction: float = 0.1,
    device: str = "auto",
    quiet: bool = False,
    review_fraction: float | None = REVIEW_FRACTION,
) -> tuple[Calibration, list[dict[str, object]]]:
    """Calibrate the run's quality flag (see the module text); returns the calibration and
    one row per cross-validation case (its scores, Dice and whether it is among the worst).

    Examples
    --------
    >>> calibration, rows = calibrate_run("runs/hippo")  # doctest: +SKIP
    >>> calibration.score, calibration.auroc  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    folds = cross_validation_folders(run_dir)
    if not folds:
        problem = "no fold_K/validation: train it with --cross-validation first"
        raise RunFolderError(located(run_dir, problem))
    dataset = open_dataset(recorded_dataset_dir(run_dir, dataset_dir))
    postprocessing = load_postprocessing(run_dir)
    rows: list[dict[str, object]] = []
    samples: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    rng = np.random.default_rng(0)
    ending = dataset.spec.file_ending
    fold_cases = {
        fold_number(folder): [
            p.name[: -len(ending)] for p in image_files(folder) if p.name.endswith(ending)
        ]
        for folder in folds
    }
    total = sum(len(cases) for cases in fold_cases.values())
    with make_progress(quiet) as progress:
        for fold, cases in fold_cases.items():
            members = [p.name.removeprefix("fold_") for p in member_dirs(run_dir, fold)]
            model = load_trained_model(run_dir, device, folds=[fold, *members])
            if model.config.regions:
                raise ConfigError(f"{run_dir}: calibration is not yet for region-based runs")
            tta = mirror_axes(model.config) != [()]
            for case_id in progress.track(cases, description=f"fold_{fold}"):
                row, sample = _score_case(model, dataset, case_id, tta, postprocessing, rng, total)
                rows.append({"case": case_id, "fold": fold, **row})
                samples.setdefault(fold, []).append(sample)
    calibration, curve = choose_flag(rows, worst_fraction, review_fraction)
    fit = fit_temperature({f: _joined(s) for f, s in samples.items()})
    calibration = dataclasses.replace(calibration, temperature=fit.temperature)
    calibration.save(run_dir, {"temperature_fit": _report(fit), "risk_coverage": curve})
    write_csv_atomic(run_dir / "quality_cv.csv", list(rows[0]), rows)
    return calibration, rows


def _score_case(
    model: TrainedModel,
    dataset: DatasetFolder,
    case_id: str,
    tta: bool,
    postprocessing: Postprocessing | None,
    rng: np.random.Generator,
    cases: int,
) -> tuple[dict[str, object], tuple[np.ndarray, np.ndarray]]:
    """Predict one of ``cases`` cross-validation cases as `medseg predict --uncertainty`
    would: its scores, reference volume and Dice, and the voxels sampled for the temperature
    fit."""
    image, reference = read_training_case(dataset.case(case_id), dataset.spec)
    members: list[np.ndarray] = []
    labels, probabilities = predict_labels(
        model, image, tta, postprocessing, source=case_id, members=members
    )
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    scores = case_scores(probabilities, labels.array[0], members, voxel_ml, None)
    values, ignore = model.config.label_values, model.config.ignore_label
    predicted = mask_ignored(reference, labels.array[0], ignore)
    dice = dice_per_label(reference, predicted, [v for v in values if v != 0])
    annotated = (reference > 0) if ignore is None else (reference > 0) & (reference != ignore)
    lookup = model.config.class_lookup()  # label values -> classes
    usable = np.isin(reference, values)  # not the ignore label (nor a value the plan lacks)
    classes = lookup[np.where(usable, reference, 0)]
    sample = voxel_sample(probabilities, classes, lookup[labels.array[0]], usable, rng, cases)
    row = {**scores, "reference_ml": float(annotated.sum()) * voxel_ml,
           "dice": float(np.nanmean(list(dice.values())))}  # fmt: skip
    return row, sample


def choose_flag(
    rows: list[dict[str, object]],
    worst_fraction: float,
    review_fraction: float | None = REVIEW_FRACTION,
) -> tuple[Calibration, list[dict[str, float]]]:
    """The score that best detects the ``worst_fraction`` of ``rows`` by Dice (each row: the
    scores, ``dice`` and ``reference_ml``), its threshold (the quantile that flags
    ``review_fraction`` of the rows, or Youden's threshold for None) and its risk–coverage
    curve; sets ``volume_z`` (against these rows' reference volumes) and ``worst`` in each
    row."""
    volumes = np.array([r["reference_ml"] for r in rows], float)
    mean, std = float(volumes.mean()), float(volumes.std())
    for row in rows:
        distance = abs(float(row["volume_ml"]) - mean)  # type: ignore[arg-type]
        row["volume_z"] = distance / std if std > 0 else float("nan")
    dice = np.array([r["dice"] for r in rows], float)
    cut = np.quantile(dice, worst_fraction)
    worst = dice <= cut
    for row, bad in zip(rows, worst):
        row["worst"] = bool(bad)
    auroc = {}
    for score in SCORES:
        values = np.array([r[score] for r in rows], float)
        usable = np.isfinite(values)
        auroc[score] = roc_auc(worst[usable], values[usable]) if usable.all() else float("nan")
    finite = {k: v for k, v in auroc.items() if np.isfinite(v)}
    if not finite:
        raise RunFolderError("no quality score is defined on these cases (too few, or one class)")
    best = max(finite, key=finite.get)  # type: ignore[arg-type]
    values = np.array([r[best] for r in rows], float)
    if review_fraction is None:
        threshold = youden_threshold(worst, values)
    else:
        threshold = float(np.quantile(values, 1 - review_fraction, method="higher"))
    order = np.argsort(values)  # most confident first
    curve = [
        {"coverage": round(k / len(rows), 4), "mean_dice": float(dice[order[:k]].mean())}
        for k in range(1, len(rows) + 1)
    ]
    calibration = Calibration(
        best, threshold, mean, std, auroc, len(rows), worst_fraction, review_fraction
    )
    return calibration, curve


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p for p, _ in parts]), np.concatenate([c for _, c in parts])


def _report(fit: TemperatureFit) -> dict[str, float | None]:
    """The fit for quality.json (null where a measure is undefined: JSON has no NaN)."""
    return {k: round(v, 6) if np.isfinite(v) else None for k, v in dataclasses.asdict(fit).items()}
