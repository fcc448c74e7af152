"""``medseg evaluate`` as one call: score a folder of predictions against references and write
the tables and the HTML report."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from medseg.datasets import load_dataset_spec
from medseg.datasets.dicom_references import is_studies_folder, write_references
from medseg.errors import ConfigError
from medseg.io import write_text_atomic
from medseg.io.outputs import prepare_output_folder
from medseg.metrics import Evaluation, EvaluationSettings, evaluate_folders, write_evaluation
from medseg.report.html import FIGURES_FOLDER, find_images_dir, write_report


def evaluate_and_report(
    pred_dir: str | Path,
    ref_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    labels: Sequence[int] | None = None,
    only_predicted: bool = False,
    missing_as_empty: bool = False,
    settings: EvaluationSettings | None = None,
    jobs: int | None = None,
    quiet: bool = True,
    images_dir: str | Path | None = None,
    label_names: str | Path | None = None,
) -> tuple[Evaluation, list[Path]]:
    """`evaluate_folders`, then with ``out_dir`` its metrics.csv, summary.csv, lesions.csv,
    summary.json, report.html and figures/; the report's overlays are drawn on
    ``images_dir`` (default: the imagesTr/imagesTs folder beside a labelsTr/labelsTs
    ``ref_dir``, if any). Returns the evaluation and the files written.

    ``ref_dir`` may also be a folder of DICOM studies whose DICOM-SEG or RTSTRUCT files are
    the references (`medseg.datasets.dicom_references`): a prediction named after a series
    folder is scored against the SEG/RTSTRUCT on that series, segments numbered by the label
    names of ``label_names`` (a dataset.json, e.g. the run folder's), and the series images
    are the overlays' background.

    Examples
    --------
    >>> evaluation, written = evaluate_and_report("preds", "labelsTs", "scores")
    ... # doctest: +SKIP
    >>> evaluation.summary["mean_dice"]  # doctest: +SKIP
    """
    if is_studies_folder(ref_dir):
        names = load_dataset_spec(label_names).foreground_labels if label_names else None
        with tempfile.TemporaryDirectory(prefix="medseg-references-") as tmp:
            notes = write_references(ref_dir, tmp, names, quiet)
            evaluation, written = evaluate_and_report(
                pred_dir, Path(tmp) / "labelsTs", out_dir, labels=labels,
                only_predicted=only_predicted, missing_as_empty=missing_as_empty,
                settings=settings, jobs=jobs, quiet=quiet,
                images_dir=images_dir if images_dir is not None else Path(tmp) / "imagesTs",
            )  # fmt: skip
        evaluation.warnings[:0] = notes
        evaluation.summary["settings"]["reference_dir"] = str(Path(ref_dir).resolve())
        evaluation.summary["settings"]["references"] = "DICOM-SEG / RTSTRUCT of a studies folder"
        if out_dir is not None:  # name the studies folder, not the temporary one
            text = json.dumps(evaluation.summary, indent=2) + "\n"
            write_text_atomic(Path(out_dir) / "summary.json", text)
        return evaluation, written
    if label_names is not None:
        raise ConfigError(f"{ref_dir}: label names apply to DICOM references (a studies folder)")
    if out_dir is not None:
        prepare_output_folder(out_dir)
    evaluation = evaluate_folders(
        pred_dir,
        ref_dir,
        labels,
        only_predicted=only_predicted,
        missing_as_empty=missing_as_empty,
        settings=settings,
        jobs=jobs,
        quiet=quiet,
    )
    if out_dir is None:
        return evaluation, []
    written = write_evaluation(evaluation, out_dir)
    images = images_dir if images_dir is not None else find_images_dir(Path(ref_dir))
    written += [write_report(evaluation, out_dir, images), Path(out_dir) / FIGURES_FOLDER]
    return evaluation, written
