"""``medseg demo``: the whole segmentation workflow on a built-in synthetic dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console, print_summary


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "demo",
        "segment",
        "Synthetic dataset, then train, predict and score it: the workflow in minutes.",
        "  medseg demo\n  medseg demo --dim 2d --out /tmp/demo2d\n  medseg demo --epochs 3\n",
        run,
        description="Write a synthetic CT-like dataset, train on it, predict held-out cases, "
        "score them.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("medseg_demo"), help="output folder (default: medseg_demo)"
    )
    parser.add_argument(
        "--dim",
        type=arguments.dimension,
        default=3,
        metavar="{2d,3d}",
        help="2d or 3d (default: 3d)",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs",
        type=arguments.positive_int,
        help="epochs of 100 steps (default: 3 in 3d, 2 in 2d)",
    )
    budget.add_argument(
        "--minutes",
        type=arguments.positive_float,
        help="training budget in minutes instead of epochs",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    arguments.add_device(parser)


def run(args: argparse.Namespace) -> int:
    from medseg.demo import run_demo
    from medseg.train import TrainOptions

    options = TrainOptions(
        epochs=args.epochs,
        minutes=args.minutes,
        seed=args.seed,
        device=args.device,
        quiet=args.quiet,
    )
    result = run_demo(args.out, args.dim, options)
    print_summary(result.evaluation.summary)
    console.print(f"dataset      {result.dataset_dir}")
    console.print(f"run folder   {result.run_dir}  (best epoch {result.training.best_epoch})")
    console.print(f"predictions  {result.predictions_dir}")
    console.print(f"report       {result.evaluation_dir / 'report.html'}")
    console.print(f"scores       {result.evaluation_dir / 'metrics.csv'}, summary.json")
    console.print(f"overlays     {result.overlays[0].parent}")
    return 0
