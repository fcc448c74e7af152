"""``medseg register``, ``train-registration`` and ``atlas-segment``: align images, learn to
align them, and segment by registering labelled atlases."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

REGISTER_EXAMPLES = """\
  medseg register fixed.nii.gz moving.nii.gz --out reg
  medseg register ct.nii.gz mri.nii.gz --out reg --method affine --metric mi
  medseg register atlas.nii.gz t1.nii.gz --out reg --moving-labels t1_seg.nii.gz \\
      --fixed-labels atlas_seg.nii.gz
  medseg register fixed.nii.gz moving.nii.gz --out reg --method learned \\
      --model runs/reg --refine 20

writes warped.nii.gz, warped_labels.nii.gz, displacement.nii.gz (ITK/ANTs),
affine.txt, affine.tfm, affine.mat (ANTs), jacobian.nii.gz, metrics.json and overlay.png
(conventions: docs/register.md)
"""

TRAINING_EXAMPLES = """\
  medseg train-registration Dataset004_Hippocampus --out runs/reg --minutes 20
  medseg train-registration Dataset004_Hippocampus --out runs/reg --label-weight 0
  medseg train-registration MyData --out runs/atlas_reg --atlas atlas.nii.gz \\
      --atlas-labels atlas_seg.nii.gz --epochs 40
  medseg register fixed.nii.gz moving.nii.gz --out reg --method learned --model runs/reg

pairs are two different training cases of the fold (or the atlas and a case); the
loss is local NCC + smoothness, plus a Dice term when labels exist (--label-weight 0
for unsupervised training). Writes model.safetensors (the best epoch by validation
Dice), registration.json and log.csv (see docs/register.md).
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    _add_register(subparsers)
    _add_train_registration(subparsers)
    _add_atlas_segment(subparsers)


def _add_register(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "register",
        "register",
        "Align a moving image to a fixed one: rigid, affine, deformable, learned.",
        REGISTER_EXAMPLES,
        run_register,
        description="Align a moving image to a fixed one (world coordinates; any shapes, "
        "spacings and orientations): rigid, affine, or deformable (diffeomorphic) after an "
        "affine stage.",
    )
    parser.add_argument("fixed", type=Path, metavar="FIXED", help="the image to align to")
    parser.add_argument("moving", type=Path, metavar="MOVING", help="the image to move")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="result folder")
    parser.add_argument(
        "--method",
        choices=["rigid", "affine", "deformable", "learned"],
        default="deformable",
        help="default: deformable (after an affine stage); learned needs --model",
    )
    parser.add_argument(
        "--model",
        type=Path,
        metavar="RUN_DIR",
        help="for --method learned: a folder written by medseg train-registration",
    )
    parser.add_argument(
        "--refine",
        type=arguments.non_negative_int,
        default=0,
        metavar="STEPS",
        help="for --method learned: instance-optimisation steps after the network (default: 0)",
    )
    parser.add_argument(
        "--metric",
        choices=["ncc", "lncc", "mi", "mse"],
        help="similarity (default: ncc for rigid/affine, lncc for deformable; mi for "
        "different modalities)",
    )
    parser.add_argument("--moving-labels", type=Path, metavar="FILE", help="warped with it")
    parser.add_argument(
        "--fixed-labels", type=Path, metavar="FILE", help="to score Dice/HD95 before and after"
    )
    parser.add_argument(
        "--no-affine", action="store_true", help="deformable only, without the affine stage"
    )
    parser.add_argument(
        "--smoothness",
        type=arguments.non_negative_float,
        default=0.3,
        help="weight of the deformation's smoothness penalty (default: 0.3)",
    )
    arguments.add_device(parser)


def _add_train_registration(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "train-registration",
        "register",
        "Train a network that registers two images in one pass (VoxelMorph).",
        TRAINING_EXAMPLES,
        run_train_registration,
        description="Train a network that registers two images in one forward pass "
        "(VoxelMorph-style: a U-Net predicts a stationary velocity field) on pairs of a "
        "dataset's training cases.",
    )
    parser.add_argument(
        "dataset", type=Path, metavar="DATASET_DIR", help="dataset folder (nnU-Net v2 layout)"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="model folder")
    parser.add_argument(
        "--atlas", type=Path, metavar="FILE", help="register every case to this image"
    )
    parser.add_argument(
        "--atlas-labels", type=Path, metavar="FILE", help="the atlas's label map (Dice term)"
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=arguments.positive_int, help="epochs of 50 steps")
    budget.add_argument(
        "--minutes",
        type=arguments.positive_float,
        help="wall-clock budget (default: 20 minutes)",
    )
    _add_registration_recipe(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    arguments.add_device(parser)


def _add_registration_recipe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-weight",
        type=arguments.non_negative_float,
        default=1.0,
        metavar="W",
        help="weight of the soft Dice term when labels exist (default: 1; 0 = unsupervised)",
    )
    parser.add_argument(
        "--smoothness",
        type=arguments.non_negative_float,
        default=1.0,
        help="weight of the velocity field's smoothness penalty (default: 1)",
    )
    parser.add_argument(
        "--fold", type=int, choices=range(5), default=0, help="validation fold (default: 0)"
    )
    parser.add_argument(
        "--batch-size", type=arguments.positive_int, default=2, help="pairs per step (default: 2)"
    )
    parser.add_argument(
        "--learning-rate",
        type=arguments.positive_float,
        default=1e-3,
        help="Adam's initial learning rate, decayed to 0 (default: 0.001)",
    )


def _add_atlas_segment(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "atlas-segment",
        "register",
        "Segment without training: register labelled atlases, fuse their labels.",
        "  medseg atlas-segment t1.nii.gz --atlas a1.nii.gz:a1_seg.nii.gz "
        "--atlas a2.nii.gz:a2_seg.nii.gz \\\n"
        "      --atlas a3.nii.gz:a3_seg.nii.gz --out t1_seg.nii.gz --fusion weighted\n",
        run_atlas_segment,
        description="Segment an image without training: register labelled atlases to it and "
        "fuse their labels (majority vote, or weighted by local similarity).",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE", help="the image to segment")
    parser.add_argument(
        "--atlas",
        type=arguments.atlas_pair,
        action="append",
        required=True,
        metavar="IMG:LABELS",
        help="an atlas image and its label map (give several)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="label map to write"
    )
    parser.add_argument(
        "--fusion", choices=["majority", "weighted"], default="majority", help="default: majority"
    )
    parser.add_argument(
        "--method",
        choices=["affine", "deformable"],
        default="deformable",
        help="default: deformable",
    )
    arguments.add_device(parser)


def run_register(args: argparse.Namespace) -> int:
    from medseg.register import RegistrationOptions, register_files

    options = RegistrationOptions(
        method=args.method,
        metric=args.metric,
        moving_labels=args.moving_labels,
        fixed_labels=args.fixed_labels,
        affine_first=not args.no_affine,
        smoothness=args.smoothness,
        device=args.device,
        model=args.model,
        refine=args.refine,
    )
    result, written = register_files(args.fixed, args.moving, args.out, options)
    m = result.metrics
    console.print(
        f"{m['method']} ({m['metric']}) in {m['seconds']} s: similarity "
        f"{m['similarity_before']:.4f} -> {m['similarity_after']:.4f}, "
        f"folding {m['folding_percent']:.3f} %"
    )
    for value, after in m.get("labels_after", {}).items():  # type: ignore[union-attr]
        before = m["labels_before"][value]  # type: ignore[index]
        console.print(f"label {value}: Dice {before['dice']:.4f} -> {after['dice']:.4f}")
    console.print(f"wrote {len(written)} files to {args.out}")
    return 0


def run_train_registration(args: argparse.Namespace) -> int:
    from medseg.register import RegistrationTrainingOptions, train_registration

    options = RegistrationTrainingOptions(
        atlas=args.atlas,
        atlas_labels=args.atlas_labels,
        epochs=args.epochs,
        minutes=args.minutes,
        label_weight=args.label_weight,
        smoothness=args.smoothness,
        fold=args.fold,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        quiet=args.quiet,
    )
    result = train_registration(args.dataset, args.out, options)
    best = result.config.training.get("best_validation", {})
    line = f"trained {len(result.history)} epoch(s) in {result.history[-1]['seconds']} s"
    if isinstance(best, dict) and "dice_after" in best:
        line += f"; validation Dice {best['dice_before']:.3f} -> {best['dice_after']:.3f}"
    console.print(f"{line}; model in {args.out}")
    return 0


def run_atlas_segment(args: argparse.Namespace) -> int:
    from medseg.register import atlas_segment_files

    atlas_segment_files(args.image, args.atlas, args.out, args.method, args.fusion, args.device)
    console.print(f"fused {len(args.atlas)} atlas(es) by {args.fusion} vote; wrote {args.out}")
    return 0
