"""``medseg postprocess``: choose morphological cleaning from cross-validation predictions."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "postprocess",
        "segment",
        "Choose morphological cleaning from cross-validation predictions.",
        "  medseg postprocess --auto runs/hippo\n"
        "  medseg postprocess --auto runs/hippo --dataset /data/Dataset004_Hippocampus\n"
        "\nwrites RUN_DIR/postprocessing.json, which medseg predict then applies\n",
        run,
        description="Choose post-processing per label from a run's cross-validation "
        "predictions: keep the largest component, remove small components, fill holes, "
        "opening, closing, smoothing; each kept only where it raises the mean Dice.",
    )
    parser.add_argument(
        "--auto",
        type=arguments.run_folder,
        required=True,
        metavar="RUN_DIR",
        help="run folder whose fold_*/validation predictions decide",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="DATASET_DIR",
        help="the training dataset (default: the one in RUN_DIR/manifest.json)",
    )
    arguments.add_jobs(parser, "worker processes")


def run(args: argparse.Namespace) -> int:
    from medseg.postprocess import POSTPROCESSING_FILE, auto_postprocess, postprocessing_table

    choice = auto_postprocess(args.auto, args.dataset, jobs=args.jobs, quiet=args.quiet)
    console.print(postprocessing_table(choice))
    console.print(f"wrote {args.auto / POSTPROCESSING_FILE}")
    return 0
