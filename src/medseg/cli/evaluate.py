"""``medseg evaluate``: score predictions against references; tables and an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console, print_comparison, print_summary

EXAMPLES = """\
  medseg evaluate preds Dataset004_Hippocampus/labelsTs --out scores
  medseg evaluate preds refs --out scores --labels 1 2 --tolerance-mm 2
  medseg evaluate preds refs --out scores --per-label-tolerance liver=3 2=1.5
  medseg evaluate runs/hippo/fold_0/validation Dataset004_Hippocampus/labelsTr \
--only-predicted --out scores
  medseg evaluate preds studies/ --label-names runs/liver/dataset.json --out scores
  medseg evaluate preds_unet preds_fcn labelsTs --out unet_vs_fcn

writes metrics.csv, summary.csv, lesions.csv, summary.json, report.html and figures/ (SVG and
300-dpi PNG) to --out; definitions of every metric and of empty masks: docs/metrics.md.
REF_DIR may be a folder of DICOM studies with DICOM-SEG or RTSTRUCT files (as for 'medseg
convert dicom'): the prediction named after a series folder is scored against the SEG or
RTSTRUCT on that series. With two prediction folders (A, then B) both are scored into
--out/A and --out/B and compared case by case: comparison.csv, comparison.json and a
report.html of the paired differences B - A (bootstrap CI, Wilcoxon p-value).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "evaluate",
        "evaluate",
        "Score predictions against references: CSV, JSON and an HTML report.",
        EXAMPLES,
        run,
        description="Score predicted label maps against references (matched by file name, "
        "or DICOM-SEG/RTSTRUCT by series folder name): "
        "overlap, volumes, surface distances in mm, lesion detection; CSV, JSON and an HTML "
        "report. Given two prediction folders, compare them case by case.",
        usage="medseg evaluate [options] PRED_DIR [PRED_B] REF_DIR",
    )
    parser.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="predictions")
    parser.add_argument(
        "more", type=Path, nargs="+", metavar="[PRED_B] REF_DIR",
        help="the references; or a second predictions folder to compare with, then the "
        "references",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, help="write the tables, summary.json, report.html and figures/ here"
    )
    parser.add_argument(
        "--labels",
        type=int,
        nargs="+",
        metavar="L",
        help="label values to score (default: dataset.json's, else every value found)",
    )
    _add_metric_options(parser)
    missing = parser.add_mutually_exclusive_group()
    missing.add_argument(
        "--only-predicted",
        action="store_true",
        help="score only references that have a prediction (default: a missing one is an error)",
    )
    missing.add_argument(
        "--missing-as-empty",
        action="store_true",
        help="score a missing prediction as an empty label map",
    )
    parser.add_argument(
        "--label-names", type=Path, metavar="JSON",
        help="with DICOM references: the dataset.json whose labels number the predictions "
        "(e.g. RUN/dataset.json); SEG segments and RTSTRUCT ROIs are matched to it by name",
    )  # fmt: skip
    arguments.add_jobs(parser, "parallel processes (default: one per core)")
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="images to draw the report's overlays on (default: the imagesTr/imagesTs "
        "beside a labelsTr/labelsTs REF_DIR, if any)",
    )


def _add_metric_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tolerance-mm",
        type=arguments.non_negative_float,
        default=1.0,
        metavar="T",
        help="surface Dice tolerance in mm (default: 1)",
    )
    parser.add_argument(
        "--per-label-tolerance",
        type=arguments.label_tolerance,
        nargs="+",
        default=[],
        metavar="LABEL=T",
        help="surface Dice tolerance of one label (value or name), e.g. liver=3 2=1.5",
    )
    parser.add_argument(
        "--lesion-iou",
        type=arguments.fraction,
        default=0.1,
        metavar="X",
        help="a predicted and a reference lesion match above this IoU (default: 0.1)",
    )


def run(args: argparse.Namespace) -> int:
    from medseg.errors import ConfigError
    from medseg.metrics import EvaluationSettings
    from medseg.report import compare_and_report, evaluate_and_report

    if len(args.more) > 2:
        raise ConfigError("medseg evaluate: give PRED_DIR [PRED_B] REF_DIR (at most three folders)")
    settings = EvaluationSettings(
        tolerance_mm=args.tolerance_mm,
        tolerances=dict(args.per_label_tolerance),
        lesion_iou=args.lesion_iou,
    )
    options = {
        "labels": args.labels,
        "only_predicted": args.only_predicted,
        "missing_as_empty": args.missing_as_empty,
        "settings": settings,
        "jobs": args.jobs,
        "quiet": args.quiet,
        "images_dir": args.images,
        "label_names": args.label_names,
    }
    if len(args.more) == 2:
        if args.out is None:
            raise ConfigError("medseg evaluate: comparing two prediction folders needs --out")
        comparison, written = compare_and_report(args.pred_dir, *args.more, args.out, **options)
        for warning in comparison.warnings:
            print(f"medseg: warning: {warning}", file=sys.stderr)
        print_comparison(comparison)
        console.print("wrote " + ", ".join(str(p) for p in written))
        return 0
    evaluation, written = evaluate_and_report(args.pred_dir, args.more[0], args.out, **options)
    for warning in evaluation.warnings:
        print(f"medseg: warning: {warning}", file=sys.stderr)
    print_summary(evaluation.summary)
    if written:
        console.print("wrote " + ", ".join(str(p) for p in written))
    return 0
