"""``medseg calibrate``: choose a segmentation run's quality score and flag threshold."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg calibrate runs/hippo
  medseg calibrate runs/hippo --review-fraction 0.1
  medseg calibrate runs/hippo --dataset Dataset004_Hippocampus --worst-fraction 0.2 --youden

predicts each fold's validation cases again with that fold's network, scores them as
medseg predict --uncertainty does (mean entropy in the foreground, disagreement between
members, the Dice the network expects of itself, volume away from the references'), and
keeps the score that best detects the worst cases by Dice, with the threshold that sends
the most doubtful 10 % of these cases to review, in RUN/quality.json, with the temperature
that calibrates the probabilities of the uncertainty map; medseg predict --uncertainty then
flags each case ok or review in quality.csv. Needs a --cross-validation run.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "calibrate",
        "evaluate",
        "Choose the ok/review quality flag of a run on its cross-validation cases.",
        EXAMPLES,
        run,
    )
    parser.add_argument(
        "run_dir", type=arguments.run_folder, metavar="RUN_DIR", help="cross-validated run"
    )
    parser.add_argument("--dataset", type=Path, metavar="DIR", help="default: the recorded one")
    parser.add_argument(
        "--worst-fraction", type=arguments.positive_float, default=0.1, metavar="F",
        help="the share of cases (lowest Dice) the flag should catch (default: 0.1)",
    )  # fmt: skip
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        "--review-fraction", type=arguments.share, metavar="F",
        help="the threshold flags this share of the cases, the most doubtful (default: 0.1)",
    )  # fmt: skip
    threshold.add_argument(
        "--youden", action="store_true",
        help="Youden's threshold for the worst cases instead (it may flag many more)",
    )  # fmt: skip
    arguments.add_device(parser)


def run(args: argparse.Namespace) -> int:
    from medseg.infer.calibrate import REVIEW_FRACTION, calibrate_run

    review = args.review_fraction or REVIEW_FRACTION
    calibration, rows = calibrate_run(
        args.run_dir, args.dataset, args.worst_fraction, args.device, args.quiet,
        review_fraction=None if args.youden else review,
    )  # fmt: skip
    scores = ", ".join(f"{k} {v:.3f}" for k, v in calibration.auroc.items())
    console.print(f"{len(rows)} cross-validation cases; AUROC for the worst: {scores}")
    console.print(
        f"flag: {calibration.score} >= {calibration.threshold:.4g} means review "
        f"(written to {args.run_dir}/quality.json)"
    )
    return 0
