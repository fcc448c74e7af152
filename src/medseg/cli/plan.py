"""``medseg fingerprint``, ``plan`` and ``preprocess``: describe a dataset, plan its training
on this machine, and preprocess it with a plan."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

PLAN_EXAMPLES = """\
  medseg plan Dataset004_Hippocampus --budget-minutes 10
  medseg plan Dataset004_Hippocampus --budget-minutes 600 --device cuda --memory-gb 12
  medseg plan Dataset001_ISBI2012EM --out em_plan.json --set batch_size=4

with a budget, candidate networks are timed for a second each on --device and the
largest that still trains enough steps in the budget is chosen
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    _add_fingerprint(subparsers)
    _add_plan(subparsers)
    _add_preprocess(subparsers)


def _add_fingerprint(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "fingerprint",
        "prepare",
        "Describe a dataset: shapes, spacings, intensities, class volumes.",
        "  medseg fingerprint Dataset004_Hippocampus\n"
        "  medseg fingerprint Dataset004_Hippocampus --out hippo_fingerprint.json\n",
        run_fingerprint,
        description="Describe a dataset: per case shape, spacing, orientation, foreground "
        "intensities, class volumes, size after cropping; writes fingerprint.json.",
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    parser.add_argument(
        "--out", type=Path, default=Path("fingerprint.json"), help="default: ./fingerprint.json"
    )
    arguments.add_jobs(parser)


def _add_plan(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "plan",
        "prepare",
        "Plan preprocessing and network for this machine and time budget.",
        PLAN_EXAMPLES,
        run_plan,
        description="Plan preprocessing and network for a dataset on this machine: target "
        "spacing, normalisation, 2D/3D, patch, depth, width, batch, iterations; writes "
        "plan.json with the reason for every decision.",
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    parser.add_argument("--out", type=Path, default=Path("plan.json"), help="default: ./plan.json")
    parser.add_argument(
        "--budget-minutes",
        type=arguments.positive_float,
        metavar="M",
        help="training time to plan for",
    )
    parser.add_argument(
        "--dim",
        type=arguments.dimension,
        metavar="{2d,3d}",
        help="2d or 3d network (default: the data's)",
    )
    arguments.add_model(parser, "network (default: unet)")
    arguments.add_plan_options(parser)
    arguments.add_jobs(parser)
    arguments.add_device(parser)


def _add_preprocess(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "preprocess",
        "prepare",
        "Preprocess a dataset with a plan into the cache training reads.",
        "  medseg preprocess Dataset004_Hippocampus --plan plan.json --out cache/hippo\n",
        run_preprocess,
        description="Preprocess every training case with a plan into a cache of .npy arrays "
        "(reoriented, cropped, resampled, normalised) that training reads directly.",
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    parser.add_argument("--plan", type=Path, required=True, metavar="FILE", help="plan.json")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="cache folder")
    arguments.add_settings(parser, 'override a plan field, e.g. preprocessing.equalization="clahe"')
    arguments.add_jobs(parser)


def run_fingerprint(args: argparse.Namespace) -> int:
    from medseg.preprocess import fingerprint_dataset

    fp = fingerprint_dataset(args.dataset, args.out, jobs=args.jobs, quiet=args.quiet)
    console.print(
        f"{len(fp.cases)} cases, median shape {fp.median_shape}, median spacing "
        f"{[round(v, 3) for v in fp.median_spacing]}, cropped {fp.median_cropped_shape}"
    )
    console.print(f"wrote {args.out}")
    return 0


def run_plan(args: argparse.Namespace) -> int:
    from medseg.train import PlanOptions, plan_dataset

    options = PlanOptions(
        dim=args.dim,
        model=args.model,
        minutes=args.budget_minutes,
        memory_gb=args.memory_gb,
        device=args.device,
        quiet=args.quiet,
        settings=dict(args.set),
    )
    plan = plan_dataset(args.dataset, options, jobs=args.jobs, save_to=args.out)
    for decision in plan.decisions:
        console.print(f"[bold]{decision.setting}[/bold] = {decision.value}")
        console.print(f"    {decision.reason}")
    console.print(f"wrote {args.out}")
    return 0


def run_preprocess(args: argparse.Namespace) -> int:
    from medseg.train import preprocess_with_plan

    cases = preprocess_with_plan(
        args.dataset, args.plan, args.out, dict(args.set), jobs=args.jobs, quiet=args.quiet
    )
    console.print(f"{len(cases)} cases preprocessed in {args.out}")
    return 0
