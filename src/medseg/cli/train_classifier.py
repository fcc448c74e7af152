"""``medseg train-classifier``: train a CNN classifier on a classification dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg train-classifier Dataset201_Pneumonia --out runs/pneumonia --minutes 5
  medseg train-classifier Dataset202_Adrenal --out runs/adrenal --minutes 15 --fold all
  medseg train-classifier Dataset201_Pneumonia --out runs/p --epochs 20 --set dropout=0.5
  medseg train-classifier Dataset201_Pneumonia --out runs/pneumonia --minutes 10 --resume
  medseg train-classifier Dataset203_Nodules --out runs/nodules --minutes 15 --init-from runs/lung

the dataset holds "classes" in dataset.json and labels.csv (docs/classify.md; medseg convert
medmnist makes one). Images are resized to one input size and z-scored; a residual CNN is
trained with class-balanced batches, AdamW and augmentation, and scored on the validation
cases (ROC AUC, accuracy, balanced accuracy in FOLD/log.csv) every 100 steps; the best
weights by validation AUC are kept, FOLD/curves.png plots the scores. --init-from starts from
a segmentation run's U-Net encoder (or another classifier's); --resume continues an
interrupted fold, or extends a finished one with a larger budget. medseg predict on the run
folder writes predictions.csv.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "train-classifier",
        "classify",
        "Train a CNN classifier on a classification dataset folder (classes, labels.csv).",
        EXAMPLES,
        run,
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=arguments.positive_float, help="training budget")
    budget.add_argument(
        "--epochs", type=arguments.positive_int, help="epochs of the plan's steps_per_epoch steps"
    )
    parser.add_argument(
        "--fold", default=0, type=_fold, metavar="{K,all}",
        help="fold K of the dataset's splits_final.json (else of 5 folds) held out for "
        "validation, or all: every case, no validation (default: 0)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue the fold from its last validation (a larger budget extends a finished one)",
    )  # fmt: skip
    parser.add_argument(
        "--init-from", type=arguments.run_folder, metavar="RUN_DIR",
        help="start from this run's encoder: a segmentation run (U-Net) or another classifier",
    )  # fmt: skip
    parser.add_argument(
        "--freeze-encoder", action="store_true", help="with --init-from: train the head only"
    )
    arguments.add_settings(parser, "change a field of the plan, e.g. --set batch_size=32")
    arguments.add_device(parser)


def run(args: argparse.Namespace) -> int:
    from medseg.train.classifier import train_classifier

    result = train_classifier(
        args.dataset, args.out, minutes=args.minutes, epochs=args.epochs, fold=args.fold,
        seed=args.seed, device=args.device, overrides=dict(args.set), resume=args.resume,
        init_from=args.init_from, freeze_encoder=args.freeze_encoder, quiet=args.quiet,
    )  # fmt: skip
    scores = ", ".join(f"{k} {v:.4g}" for k, v in result.best.items() if k.startswith("val_"))
    console.print(f"trained {result.steps} steps in {result.seconds:.0f} s; best: {scores or '-'}")
    console.print(f"run folder: {result.run_dir} (medseg predict {result.run_dir} IMAGES ...)")
    return 0


def _fold(value: str) -> int | str:
    return "all" if value == "all" else arguments.non_negative_int(value)
