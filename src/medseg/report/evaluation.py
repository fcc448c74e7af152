"""``medseg evaluate`` as one call: score a folder of predictions against references and write
the tables and the HTML report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medseg.io.outputs import prepare_output_folder
from medseg.metrics import Evaluation, EvaluationSettings, evaluate_folders, write_evaluation
from medseg.report.html import find_images_dir, write_report


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
) -> tuple[Evaluation, list[Path]]:
    """`evaluate_folders`, then with ``out_dir`` its metrics.csv, lesions.csv, summary.json
    and report.html, whose overlays are drawn on ``images_dir`` (default: the
    imagesTr/imagesTs folder beside a labelsTr/labelsTs ``ref_dir``, if any). Returns the
    evaluation and the files written.

    Examples
    --------
    >>> evaluation, written = evaluate_and_report("preds", "labelsTs", "scores")
    ... # doctest: +SKIP
    >>> evaluation.summary["mean_dice"]  # doctest: +SKIP
    """
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
    written.append(write_report(evaluation, out_dir, images))
    return evaluation, written
