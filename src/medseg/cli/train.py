"""``medseg train``: train a segmentation network on a dataset folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console, print_summary

NOTE_FOLD_ALL = (
    "medseg: note: --fold all trains one model on every case, as in nnU-Net (it used to mean "
    "cross-validation, which is now --cross-validation)"
)

EXAMPLES = """\
  medseg train Dataset004_Hippocampus --out runs/hippo --minutes 10
  medseg train Dataset001_ISBI2012EM --out runs/em --epochs 50 --model fcn
  medseg train Dataset004_Hippocampus --out runs/hippo --fold 1 --seed 7
  medseg train Dataset004_Hippocampus --out runs/hippo --plan plan.json
  medseg train Dataset004_Hippocampus --out runs/hippo --minutes 10 \\
      --set batch_size=4 --set preprocessing.target_spacing=[1.5,1.5,1.5]
  medseg train Dataset004_Hippocampus --out runs/hippo --cross-validation --minutes 6
  medseg train Dataset004_Hippocampus --out runs/hippo --resume --epochs 60
  medseg train MyData --out runs/mine --init-from runs/hippo --freeze-encoder
  medseg train Dataset004_Hippocampus --out runs/h --set augmentation.enabled=false
  medseg train 4 --minutes 10    # $nnUNet_raw/Dataset004_*, run in $nnUNet_results/.../medseg

without --fold, one model learns from every labelled case; --fold K holds fold K out
for validation (best epoch by validation Dice). Without --plan, the run folder's
plan.json is made from the dataset's fingerprint, fitted to this device and the
--minutes budget (see medseg plan --help); budgets are per fold. The recipe follows
the budget: below 50,000 steps AdamW and nnU-Net's augmentation without mirroring,
above it nnU-Net's SGD + Nesterov and mirroring too (deep supervision and poly decay
in both). A small dataset caps the steps (more would overfit), and the time the cap
leaves trains up to 4 more models with the next seeds (fold_K_1, ... beside fold_K; a
fold's validation scores its models averaged); medseg predict averages them all.
Without --fold, a budget of over twice the cap first trains fold 0 with a stop on its
validation curve (fold_all_search), and every case then trains the steps it found.
Everything is in plan.json and every field can be changed with --set (e.g. --set
max_members=1, --set held_out_stop=false).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "train",
        "segment",
        "Train a segmentation network on an nnU-Net v2 dataset folder.",
        EXAMPLES,
        run,
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="RUN_DIR",
        help="run folder (default: $MEDSEG_RESULTS/DATASET/medseg, or under $nnUNet_results)",
    )
    parser.add_argument(
        "--dim",
        type=arguments.dimension,
        metavar="{2d,3d}",
        help="2d or 3d network (default: the data's)",
    )
    arguments.add_model(parser, "network (default: unet, or the run folder's)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs", type=arguments.positive_int, help="number of epochs (default: 100)"
    )
    budget.add_argument(
        "--minutes", type=arguments.positive_float, help="wall-clock training budget"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--fold",
        type=arguments.fold,
        metavar="{0..4,all}",
        help="train fold K (its cases held out for validation), or all: one model on every "
        "case, without validation (the default)",
    )
    which.add_argument(
        "--cross-validation",
        action="store_true",
        help="train every fold of the plan in turn and score all their validation predictions "
        "together (what medseg postprocess --auto needs)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _add_run_options(parser)
    _add_recipe_options(parser)
    arguments.add_plan_options(parser)
    parser.add_argument(
        "--plan", type=Path, metavar="FILE", help="use this plan (from medseg plan) as it is"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="preprocessed cases (default: RUN_DIR/preprocessed; reused while current)",
    )
    arguments.add_device(parser)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nproc",
        type=arguments.positive_int,
        metavar="N",
        help="train each fold on N processes of this machine (torchrun and "
        "DistributedDataParallel: one per GPU, or CPU processes sharing the cores; "
        "the batch is split among them). Several machines: docs/distributed.md",
    )
    parser.add_argument(
        "--spread-folds",
        action="store_true",
        help="with --nproc or torchrun and --cross-validation: each process trains folds of "
        "its own (fold k on process k mod N) instead of every fold on all processes",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last saved epoch (a larger budget extends a finished fold)",
    )
    parser.add_argument(
        "--init-from",
        type=arguments.run_folder,
        metavar="RUN_DIR_OR_WEIGHTS",
        help="start from these weights: every tensor whose name and shape fit is loaded",
    )
    parser.add_argument(
        "--freeze-encoder", action="store_true", help="with --init-from: train the decoder only"
    )
    parser.add_argument(
        "--fine-tune-lr", type=arguments.positive_float, metavar="X", help="initial learning rate"
    )
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="bit-identical results for a seed on this machine (needs --epochs)",
    )
    parser.add_argument(
        "--splits", type=Path, metavar="FILE",
        help="the folds of a new run, in nnU-Net's splits_final.json format (default: the "
        "dataset's splits_final.json, else nnU-Net's 5-fold split)",
    )  # fmt: skip


def _add_recipe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=arguments.positive_int, help="patches per step")
    parser.add_argument(
        "--patch-size",
        type=arguments.positive_int,
        nargs="+",
        metavar="N",
        help="patch size per axis",
    )
    parser.add_argument(
        "--learning-rate", type=arguments.positive_float, help="initial learning rate"
    )
    parser.add_argument(
        "--optimizer", choices=["adamw", "sgd"], help="default: by budget (see above)"
    )
    parser.add_argument(
        "--iterations-per-epoch",
        type=arguments.positive_int,
        help="steps between validations (default: 100)",
    )


def run(args: argparse.Namespace) -> int:
    from medseg.datasets.folder import find_dataset_folder
    from medseg.runs.locations import default_run_folder
    from medseg.train import TrainOptions, cross_validation_complete, train_folds
    from medseg.train.distributed import PeerStopped, launch, ranks_from_environment
    from medseg.train.held_out import best_steps

    if args.nproc and args.nproc > 1 and not ranks_from_environment().distributed:
        code = launch(args.nproc, _without_nproc(args.argv))
        if code == 1:  # (2: a process said what was wrong with the input)
            print(
                f"medseg: error: a training process failed (torchrun's exit code {code}); each "
                "fold keeps its last saved epoch: the same command with --resume continues",
                file=sys.stderr,
            )
        return code
    if args.out is None:
        args.out = default_run_folder(find_dataset_folder(args.dataset))
        console.print(f"run folder: {args.out}")
    options = TrainOptions(
        dim=args.dim,
        model=args.model,
        epochs=args.epochs,
        minutes=args.minutes,
        memory_gb=args.memory_gb,
        device=args.device,
        quiet=args.quiet,
        seed=args.seed,
        settings=dict(args.set),
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        iterations_per_epoch=args.iterations_per_epoch,
        plan_file=args.plan,
        cache_dir=args.cache,
        resume=args.resume,
        init_from=args.init_from,
        freeze_encoder=args.freeze_encoder,
        fine_tune_lr=args.fine_tune_lr,
        deterministic=args.deterministic,
        splits_file=args.splits,
        spread_folds=args.spread_folds,
    )
    if args.fold == "all":
        print(NOTE_FOLD_ALL, file=sys.stderr)
    folds = None if args.cross_validation else [args.fold if args.fold is not None else "all"]
    try:
        results = train_folds(args.dataset, args.out, options, folds)
    except PeerStopped as exc:
        print(f"medseg: {exc}", file=sys.stderr)
        return 1
    if not ranks_from_environment().is_main:
        return 0  # rank 0 reports
    for result in results:
        if result.validation is not None:
            models = f", its {len(result.members) + 1} models averaged" if result.members else ""
            heading = f"{result.fold_dir.name} validation (50% overlap, best weights{models}): "
            print_summary(result.validation.summary, heading)
        line = f"trained {result.epochs} epoch(s) in {result.seconds:.0f} s"
        if result.validation is not None:
            line += (
                f"; best smoothed validation Dice {result.best_val_dice:.4f} at epoch "
                f"{result.best_epoch}"
            )
        console.print(f"{line}; weights in {result.fold_dir}")
        if result.search is not None:
            console.print(
                f"fold 0 ({result.search.fold_dir.name}) validated best after "
                f"{best_steps(result.search)} steps; every case trained "
                f"{result.history[-1].iterations if result.history else 0}"
            )
        if result.members:
            names = ", ".join(m.name for m in result.members)
            console.print(
                f"the step cap left time for {len(result.members)} more model(s) with other "
                f"seeds ({names}); medseg predict averages them all"
            )
    if args.cross_validation and cross_validation_complete(args.out):
        summary = json.loads((args.out / "cross_validation" / "summary.json").read_text())
        print_summary(summary, "Cross-validation (every case, by the fold that held it out): ")
    if args.cross_validation or args.fold not in (None, "all"):
        console.print(f"validation predictions and scores in {args.out}/fold_*/validation")
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` (each torchrun process trains, none launches)."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            words.append(word)
    return words
