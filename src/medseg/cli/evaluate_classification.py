"""``medseg evaluate-classification``: score a classifier's predictions.csv."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg evaluate-classification preds/predictions.csv Dataset201_Pneumonia/labelsTs.csv \\
      --out scores --images Dataset201_Pneumonia/imagesTs
  medseg evaluate-classification preds/predictions.csv labelsTs.csv --threshold-from runs/p
  medseg evaluate-classification preds/predictions.csv labelsTs.csv --threshold 0.3

accuracy, balanced accuracy, sensitivity, specificity, precision, F1 (per class), ROC AUC
with a bootstrap 95% interval, the confusion matrix, expected calibration error and a
reliability diagram; with --out: summary.json, cases.csv and report.html (ROC curve,
confusion matrix, the most confident errors as images with --images). Two classes are
decided at a threshold on the positive class (the second, or --positive): 0.5, --threshold,
or Youden's on the run's validation predictions (--threshold-from RUN).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "evaluate-classification",
        "evaluate",
        "Score a classifier's predictions: AUC with CI, confusion, calibration, a report.",
        EXAMPLES,
        run,
    )
    parser.add_argument("predictions", type=Path, metavar="PREDICTIONS_CSV")
    parser.add_argument("labels", type=Path, metavar="LABELS_CSV", help="case,class table")
    parser.add_argument("--out", type=Path, help="write summary.json, cases.csv, report.html")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--threshold", type=_probability, help="decide at this probability")
    choice.add_argument(
        "--threshold-from", type=Path, metavar="RUN_DIR",
        help="Youden's threshold on the run's validation predictions",
    )  # fmt: skip
    parser.add_argument("--positive", metavar="CLASS", help="the positive class (default: 2nd)")
    parser.add_argument("--images", type=Path, metavar="DIR", help="images of the cases")


def run(args: argparse.Namespace) -> int:
    from medseg.report.classification import evaluate_classification

    evaluation, written = evaluate_classification(
        args.predictions, args.labels, args.out, threshold=args.threshold,
        threshold_from=args.threshold_from, positive=args.positive, images_dir=args.images,
    )  # fmt: skip
    summary = evaluation.summary
    low, high = summary["auc_ci95"]  # type: ignore[misc]
    line = f"{summary['cases']} cases: AUC {summary['auc']:.4f} ({low:.4f}-{high:.4f}), "
    line += f"accuracy {summary['accuracy']:.4f}, balanced {summary['balanced_accuracy']:.4f}"
    if "threshold" in summary:
        line += f", sensitivity {summary['sensitivity']:.4f}, specificity "
        line += f"{summary['specificity']:.4f} at {summary['threshold']:.4f}"
    console.print(line)
    if written:
        console.print("wrote " + ", ".join(str(p) for p in written))
    return 0


def _probability(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability in [0, 1], got {value}")
    return number
