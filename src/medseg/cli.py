"""The ``medseg`` command line: parse, call the library, print. Nothing else lives here."""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medseg import __version__
from medseg.errors import ConfigError, MedsegError

EXIT_OK, EXIT_BUG, EXIT_USER = 0, 1, 2

_out = Console(highlight=False, soft_wrap=True)


def _dim(value: str) -> int:
    if value.lower() not in ("2d", "3d"):
        raise argparse.ArgumentTypeError("expected 2d or 3d")
    return int(value[0])


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or math.isinf(number):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def _fold(value: str) -> int | str:
    """A fold number or ``all``."""
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fold number or all, got {value!r}") from None


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0 or math.isinf(number):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return number


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return number


def _label_tolerance(value: str) -> tuple[str, float]:
    label, sep, tolerance = value.partition("=")
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL=MM, got {value}")
    return label, _non_negative_float(tolerance)


def _setting(value: str) -> tuple[str, object]:
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {value}")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw  # a bare word, e.g. optimizer=sgd
    return key, parsed


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--memory-gb",
        type=_positive_float,
        metavar="G",
        help="memory the training may use (default: no limit beyond the device's)",
    )
    parser.add_argument(
        "--set",
        type=_setting,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any plan field (JSON value; dotted names for nested fields), "
        "e.g. --set batch_size=4 --set preprocessing.denoise_sigma_mm=0.5",
    )


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs", type=_positive_int, metavar="N", help="parallel processes (default: per core)"
    )


def _atlas_pair(value: str) -> tuple[Path, Path]:
    image, sep, labels = value.partition(":")
    if not sep or not image or not labels:
        raise argparse.ArgumentTypeError(f"expected IMAGE:LABELS, got {value}")
    return Path(image), Path(labels)


def _command(sub: argparse._SubParsersAction, name: str, summary: str, examples: str):
    return sub.add_parser(
        name,
        help=summary,
        description=summary,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda}",
        help="auto (CUDA when present, else CPU), cpu, or cuda (default: auto)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        description="Medical image segmentation with CNNs: train, predict, evaluate.",
        epilog=(
            "examples:\n"
            "  medseg demo                              phantom -> train -> predict -> score\n"
            "  medseg train Dataset004_Hippocampus --out runs/hippo --minutes 10\n"
            "  medseg predict runs/hippo Dataset004_Hippocampus/imagesTs --out preds\n"
            "  medseg evaluate preds Dataset004_Hippocampus/labelsTs --out scores\n"
            "\nrun 'medseg COMMAND --help' for a command's options"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = _command(
        sub,
        "demo",
        "Write a synthetic CT-like dataset, train on it, predict held-out cases, score them.",
        "  medseg demo\n  medseg demo --dim 2d --out /tmp/demo2d\n  medseg demo --epochs 3\n",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("medseg_demo"), help="output folder (default: medseg_demo)"
    )
    demo.add_argument(
        "--dim", type=_dim, default=3, metavar="{2d,3d}", help="2d or 3d (default: 3d)"
    )
    budget = demo.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs", type=_positive_int, help="epochs of 100 steps (default: 3 in 3d, 2 in 2d)"
    )
    budget.add_argument(
        "--minutes", type=_positive_float, help="training budget in minutes instead of epochs"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _add_device(demo)

    train = _command(
        sub,
        "train",
        "Train a segmentation network on an nnU-Net v2 style dataset folder.",
        "  medseg train Dataset004_Hippocampus --out runs/hippo --minutes 10\n"
        "  medseg train Dataset001_ISBI2012EM --out runs/em --epochs 50 --model fcn\n"
        "  medseg train Dataset004_Hippocampus --out runs/hippo --fold 1 --seed 7\n"
        "  medseg train Dataset004_Hippocampus --out runs/hippo --plan plan.json\n"
        "  medseg train Dataset004_Hippocampus --out runs/hippo --minutes 10 \\\n"
        "      --set batch_size=4 --set preprocessing.target_spacing=[1.5,1.5,1.5]\n"
        "  medseg train Dataset004_Hippocampus --out runs/hippo --fold all --minutes 6\n"
        "  medseg train Dataset004_Hippocampus --out runs/hippo --resume --epochs 60\n"
        "  medseg train MyData --out runs/mine --init-from runs/hippo --freeze-encoder\n"
        "  medseg train Dataset004_Hippocampus --out runs/h --set augmentation.enabled=false\n"
        "\nwithout --plan, the run folder's plan.json is made from the dataset's fingerprint,\n"
        "fitted to this device and the --minutes budget (see medseg plan --help); budgets are\n"
        "per fold. The recipe follows the budget: below 10,000 steps AdamW without\n"
        "augmentation, above it nnU-Net's SGD + Nesterov with its augmentation (deep\n"
        "supervision and poly decay in both); it is in plan.json and every field can be\n"
        "changed with --set.\n",
    )
    train.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    train.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    train.add_argument(
        "--dim", type=_dim, metavar="{2d,3d}", help="2d or 3d network (default: the data's)"
    )
    train.add_argument(
        "--model", choices=["unet", "fcn"], help="network (default: unet, or the run folder's)"
    )
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_positive_int, help="number of epochs (default: 100)")
    budget.add_argument("--minutes", type=_positive_float, help="wall-clock training budget")
    train.add_argument(
        "--fold",
        type=_fold,
        default=0,
        metavar="{0..4,all}",
        help="validation fold, or all for k-fold cross-validation (default: 0)",
    )
    train.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last saved epoch (a larger budget extends a finished fold)",
    )
    train.add_argument(
        "--init-from",
        metavar="RUN_DIR_OR_WEIGHTS",
        help="start from these weights: every tensor whose name and shape fit is loaded",
    )
    train.add_argument(
        "--freeze-encoder", action="store_true", help="with --init-from: train the decoder only"
    )
    train.add_argument(
        "--fine-tune-lr", type=_positive_float, metavar="X", help="initial learning rate"
    )
    train.add_argument(
        "--deterministic",
        action="store_true",
        help="bit-identical results for a seed on this machine (needs --epochs)",
    )
    train.add_argument("--batch-size", type=_positive_int, help="patches per step")
    train.add_argument(
        "--patch-size", type=_positive_int, nargs="+", metavar="N", help="patch size per axis"
    )
    train.add_argument("--learning-rate", type=_positive_float, help="initial learning rate")
    train.add_argument(
        "--optimizer", choices=["adamw", "sgd"], help="default: by budget (see above)"
    )
    train.add_argument(
        "--iterations-per-epoch",
        type=_positive_int,
        help="steps between validations (default: 100)",
    )
    _add_plan_options(train)
    train.add_argument(
        "--plan", type=Path, metavar="FILE", help="use this plan (from medseg plan) as it is"
    )
    train.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="preprocessed cases (default: RUN_DIR/preprocessed; reused while current)",
    )
    _add_device(train)

    fingerprint = _command(
        sub,
        "fingerprint",
        "Describe a dataset: per case shape, spacing, orientation, foreground intensities, "
        "class volumes, size after cropping; writes fingerprint.json.",
        "  medseg fingerprint Dataset004_Hippocampus\n"
        "  medseg fingerprint Dataset004_Hippocampus --out hippo_fingerprint.json\n",
    )
    fingerprint.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    fingerprint.add_argument(
        "--out", type=Path, default=Path("fingerprint.json"), help="default: ./fingerprint.json"
    )
    _add_jobs(fingerprint)

    plan = _command(
        sub,
        "plan",
        "Plan preprocessing and network for a dataset on this machine: target spacing, "
        "normalisation, 2D/3D, patch, depth, width, batch, iterations; writes plan.json "
        "with the reason for every decision.",
        "  medseg plan Dataset004_Hippocampus --budget-minutes 10\n"
        "  medseg plan Dataset004_Hippocampus --budget-minutes 600 --device cuda --memory-gb 12\n"
        "  medseg plan Dataset001_ISBI2012EM --out em_plan.json --set batch_size=4\n"
        "\nwith a budget, candidate networks are timed for a second each on --device and the\n"
        "largest that still trains enough steps in the budget is chosen\n",
    )
    plan.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    plan.add_argument("--out", type=Path, default=Path("plan.json"), help="default: ./plan.json")
    plan.add_argument(
        "--budget-minutes", type=_positive_float, metavar="M", help="training time to plan for"
    )
    plan.add_argument(
        "--dim", type=_dim, metavar="{2d,3d}", help="2d or 3d network (default: the data's)"
    )
    plan.add_argument("--model", choices=["unet", "fcn"], default="unet", help="default: unet")
    _add_plan_options(plan)
    _add_jobs(plan)
    _add_device(plan)

    preprocess = _command(
        sub,
        "preprocess",
        "Preprocess every training case with a plan into a cache of .npy arrays "
        "(reoriented, cropped, resampled, normalised) that training reads directly.",
        "  medseg preprocess Dataset004_Hippocampus --plan plan.json --out cache/hippo\n",
    )
    preprocess.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="dataset folder")
    preprocess.add_argument("--plan", type=Path, required=True, metavar="FILE", help="plan.json")
    preprocess.add_argument("--out", type=Path, required=True, metavar="DIR", help="cache folder")
    preprocess.add_argument(
        "--set",
        type=_setting,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help='override a plan field, e.g. preprocessing.equalization="clahe"',
    )
    _add_jobs(preprocess)

    predict = _command(
        sub,
        "predict",
        "Predict label maps for images with a trained run folder.",
        "  medseg predict runs/hippo Dataset004_Hippocampus/imagesTs --out preds\n"
        "  medseg predict runs/hippo scan_0000.nii.gz --out preds\n"
        "  medseg predict runs/brain study/T1post-21069 --out preds     (a DICOM series folder)\n"
        "  medseg predict runs/brain study/all_series --series T1post --out preds\n"
        "  medseg predict runs/hippo imagesTs --out preds --tta --save-probabilities\n"
        "  medseg predict runs/hippo imagesTs --out preds --fold 0 --no-postprocess\n"
        "\na folder of DICOM files is one case, predicted as {folder name}.nii.gz on the\n"
        "series' exact voxel grid; a folder of NIfTI/PNG/... files is a folder of cases.\n"
        "Every trained fold votes (softmax average); the run's postprocessing.json (from\n"
        "medseg postprocess --auto) is applied when present\n",
    )
    predict.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="trained run folder")
    predict.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUT",
        help="image files or folders; channels by the _0000, _0001 ... suffix",
    )
    predict.add_argument("--out", type=Path, required=True, help="output folder")
    predict.add_argument(
        "--series",
        metavar="UID_OR_DESCRIPTION",
        help="in a DICOM folder with several series, the one to predict",
    )
    predict.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average over every mirrored copy (2^dim passes)",
    )
    predict.add_argument(
        "--save-probabilities",
        nargs="?",
        const="npz",
        choices=["npz", "nifti"],
        help="also write the class probabilities: {case}.npz (float16, default) or "
        "{case}_probabilities.nii.gz (3D)",
    )
    predict.add_argument(
        "--fold",
        type=int,
        action="append",
        dest="folds",
        metavar="K",
        help="use only this fold (repeat for several; default: every trained fold)",
    )
    predict.add_argument(
        "--no-postprocess",
        action="store_true",
        help="ignore the run folder's postprocessing.json",
    )
    _add_device(predict)

    postprocess = _command(
        sub,
        "postprocess",
        "Choose post-processing per label from a run's cross-validation predictions: keep "
        "the largest component, remove small components, fill holes, opening, closing, "
        "smoothing; each kept only where it raises the mean Dice.",
        "  medseg postprocess --auto runs/hippo\n"
        "  medseg postprocess --auto runs/hippo --dataset /data/Dataset004_Hippocampus\n"
        "\nwrites RUN_DIR/postprocessing.json, which medseg predict then applies\n",
    )
    postprocess.add_argument(
        "--auto",
        type=Path,
        required=True,
        metavar="RUN_DIR",
        help="run folder whose fold_*/validation predictions decide",
    )
    postprocess.add_argument(
        "--dataset",
        type=Path,
        metavar="DATASET_DIR",
        help="the training dataset (default: the one in RUN_DIR/manifest.json)",
    )
    postprocess.add_argument("--jobs", type=_positive_int, help="worker processes")

    register = _command(
        sub,
        "register",
        "Align a moving image to a fixed one (world coordinates; any shapes, spacings and "
        "orientations): rigid, affine, or deformable (diffeomorphic) after an affine stage.",
        "  medseg register fixed.nii.gz moving.nii.gz --out reg\n"
        "  medseg register ct.nii.gz mri.nii.gz --out reg --method affine --metric mi\n"
        "  medseg register atlas.nii.gz t1.nii.gz --out reg --moving-labels t1_seg.nii.gz \\\n"
        "      --fixed-labels atlas_seg.nii.gz\n"
        "  medseg register fixed.nii.gz moving.nii.gz --out reg --method learned \\\n"
        "      --model runs/reg --refine 20\n"
        "\nwrites warped.nii.gz, warped_labels.nii.gz, displacement.nii.gz (ITK/ANTs),\n"
        "affine.txt, affine.tfm, jacobian.nii.gz, metrics.json and overlay.png\n"
        "(conventions: docs/register.md)\n",
    )
    register.add_argument("fixed", type=Path, metavar="FIXED", help="the image to align to")
    register.add_argument("moving", type=Path, metavar="MOVING", help="the image to move")
    register.add_argument("--out", type=Path, required=True, metavar="DIR", help="result folder")
    register.add_argument(
        "--method",
        choices=["rigid", "affine", "deformable", "learned"],
        default="deformable",
        help="default: deformable (after an affine stage); learned needs --model",
    )
    register.add_argument(
        "--model",
        type=Path,
        metavar="RUN_DIR",
        help="for --method learned: a folder written by medseg train-registration",
    )
    register.add_argument(
        "--refine",
        type=_non_negative_int,
        default=0,
        metavar="STEPS",
        help="for --method learned: instance-optimisation steps after the network (default: 0)",
    )
    register.add_argument(
        "--metric",
        choices=["ncc", "lncc", "mi", "mse"],
        help="similarity (default: ncc for rigid/affine, lncc for deformable; mi for "
        "different modalities)",
    )
    register.add_argument("--moving-labels", type=Path, metavar="FILE", help="warped with it")
    register.add_argument(
        "--fixed-labels", type=Path, metavar="FILE", help="to score Dice/HD95 before and after"
    )
    register.add_argument(
        "--no-affine", action="store_true", help="deformable only, without the affine stage"
    )
    register.add_argument(
        "--smoothness",
        type=_non_negative_float,
        default=0.3,
        help="weight of the deformation's smoothness penalty (default: 0.3)",
    )
    _add_device(register)

    train_registration = _command(
        sub,
        "train-registration",
        "Train a network that registers two images in one forward pass (VoxelMorph-style: "
        "a U-Net predicts a stationary velocity field) on pairs of a dataset's training cases.",
        "  medseg train-registration Dataset004_Hippocampus --out runs/reg --minutes 20\n"
        "  medseg train-registration Dataset004_Hippocampus --out runs/reg --label-weight 0\n"
        "  medseg train-registration MyData --out runs/atlas_reg --atlas atlas.nii.gz \\\n"
        "      --atlas-labels atlas_seg.nii.gz --epochs 40\n"
        "  medseg register fixed.nii.gz moving.nii.gz --out reg --method learned --model runs/reg\n"
        "\npairs are two different training cases of the fold (or the atlas and a case); the\n"
        "loss is local NCC + smoothness, plus a Dice term when labels exist (--label-weight 0\n"
        "for unsupervised training). Writes model.safetensors (the best epoch by validation\n"
        "Dice), registration.json and log.csv (see docs/register.md).\n",
    )
    train_registration.add_argument(
        "dataset", type=Path, metavar="DATASET_DIR", help="dataset folder (nnU-Net v2 layout)"
    )
    train_registration.add_argument(
        "--out", type=Path, required=True, metavar="RUN_DIR", help="model folder"
    )
    train_registration.add_argument(
        "--atlas", type=Path, metavar="FILE", help="register every case to this image"
    )
    train_registration.add_argument(
        "--atlas-labels", type=Path, metavar="FILE", help="the atlas's label map (Dice term)"
    )
    budget = train_registration.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_positive_int, help="epochs of 50 steps")
    budget.add_argument(
        "--minutes", type=_positive_float, help="wall-clock budget (default: 20 minutes)"
    )
    train_registration.add_argument(
        "--label-weight",
        type=_non_negative_float,
        default=1.0,
        metavar="W",
        help="weight of the soft Dice term when labels exist (default: 1; 0 = unsupervised)",
    )
    train_registration.add_argument(
        "--smoothness",
        type=_non_negative_float,
        default=1.0,
        help="weight of the velocity field's smoothness penalty (default: 1)",
    )
    train_registration.add_argument(
        "--fold", type=int, choices=range(5), default=0, help="validation fold (default: 0)"
    )
    train_registration.add_argument(
        "--batch-size", type=_positive_int, default=2, help="pairs per step (default: 2)"
    )
    train_registration.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=1e-3,
        help="Adam's initial learning rate, decayed to 0 (default: 0.001)",
    )
    train_registration.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _add_device(train_registration)

    atlas = _command(
        sub,
        "atlas-segment",
        "Segment an image without training: register labelled atlases to it and fuse their "
        "labels (majority vote, or weighted by local similarity).",
        "  medseg atlas-segment t1.nii.gz --atlas a1.nii.gz:a1_seg.nii.gz "
        "--atlas a2.nii.gz:a2_seg.nii.gz \\\n"
        "      --atlas a3.nii.gz:a3_seg.nii.gz --out t1_seg.nii.gz --fusion weighted\n",
    )
    atlas.add_argument("image", type=Path, metavar="IMAGE", help="the image to segment")
    atlas.add_argument(
        "--atlas",
        type=_atlas_pair,
        action="append",
        required=True,
        metavar="IMG:LABELS",
        help="an atlas image and its label map (give several)",
    )
    atlas.add_argument("--out", type=Path, required=True, metavar="FILE", help="label map to write")
    atlas.add_argument(
        "--fusion", choices=["majority", "weighted"], default="majority", help="default: majority"
    )
    atlas.add_argument(
        "--method",
        choices=["affine", "deformable"],
        default="deformable",
        help="default: deformable",
    )
    _add_device(atlas)

    evaluate = _command(
        sub,
        "evaluate",
        "Score predicted label maps against references (matched by file name): overlap, "
        "volumes, surface distances in mm, lesion detection; CSV, JSON and an HTML report.",
        "  medseg evaluate preds Dataset004_Hippocampus/labelsTs --out scores\n"
        "  medseg evaluate preds refs --out scores --labels 1 2 --tolerance-mm 2\n"
        "  medseg evaluate preds refs --out scores --per-label-tolerance liver=3 2=1.5\n"
        "  medseg evaluate runs/hippo/fold_0/validation Dataset004_Hippocampus/labelsTr "
        "--only-predicted --out scores\n"
        "\nwrites metrics.csv, lesions.csv, summary.json and report.html to --out;\n"
        "definitions of every metric and of empty masks: docs/metrics.md\n",
    )
    evaluate.add_argument("pred_dir", type=Path, metavar="PRED_DIR", help="predictions")
    evaluate.add_argument("ref_dir", type=Path, metavar="REF_DIR", help="references")
    evaluate.add_argument(
        "--out", type=Path, help="write metrics.csv, lesions.csv, summary.json, report.html here"
    )
    evaluate.add_argument(
        "--labels",
        type=int,
        nargs="+",
        metavar="L",
        help="label values to score (default: dataset.json's, else every value found)",
    )
    evaluate.add_argument(
        "--tolerance-mm",
        type=_non_negative_float,
        default=1.0,
        metavar="T",
        help="surface Dice tolerance in mm (default: 1)",
    )
    evaluate.add_argument(
        "--per-label-tolerance",
        type=_label_tolerance,
        nargs="+",
        default=[],
        metavar="LABEL=T",
        help="surface Dice tolerance of one label (value or name), e.g. liver=3 2=1.5",
    )
    evaluate.add_argument(
        "--lesion-iou",
        type=_fraction,
        default=0.1,
        metavar="X",
        help="a predicted and a reference lesion match above this IoU (default: 0.1)",
    )
    missing = evaluate.add_mutually_exclusive_group()
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
    evaluate.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="parallel processes (default: one per core)",
    )
    evaluate.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="images to draw the report's overlays on (default: the imagesTr/imagesTs "
        "beside a labelsTr/labelsTs REF_DIR, if any)",
    )
    return parser


def _print_summary(summary: dict, what: str = "") -> None:
    table = Table(title=f"{what}Scores over {summary['cases']} case(s) (means)")
    table.add_column("label")
    table.add_column("value", justify="right")
    columns = {"dice": "Dice", "nsd": "NSD", "hd95": "HD95 mm", "assd": "ASSD mm"}
    for heading in columns.values():
        table.add_column(heading, justify="right")
    table.add_column("cases", justify="right")
    table.add_column("undefined", justify="right")

    def cell(value: float | None, digits: int = 4) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    for name, row in summary["labels"].items():
        stats = row.get("metrics", {})
        means = [cell(stats[m]["mean"], 4 if m in ("dice", "nsd") else 2) for m in columns]
        table.add_row(name, str(row["label"]), *means, str(row["cases"]), str(row["undefined"]))
    if summary["mean_dice"] is not None:
        blanks = [""] * (len(columns) - 1)
        table.add_row("[bold]mean", "", f"[bold]{summary['mean_dice']:.4f}", *blanks, "", "")
    _out.print(table)


def _run(args: argparse.Namespace) -> int:
    # Imports are deferred so that --help and --version answer at once.
    if args.command == "demo":
        from medseg.demo import run_demo

        result = run_demo(
            args.out, args.dim, args.minutes, args.epochs, args.seed, args.device, args.quiet
        )
        _print_summary(result.evaluation.summary)
        _out.print(f"dataset      {result.dataset_dir}")
        _out.print(f"run folder   {result.run_dir}  (best epoch {result.training.best_epoch})")
        _out.print(f"predictions  {result.predictions_dir}")
        _out.print(f"report       {result.evaluation_dir / 'report.html'}")
        _out.print(f"scores       {result.evaluation_dir / 'metrics.csv'}, summary.json")
        _out.print(f"overlays     {result.overlays[0].parent}")
        return EXIT_OK
    if args.command == "train":
        from medseg.train import cross_validation_complete, train_folds

        if args.fine_tune_lr is not None and args.init_from is None:
            raise ConfigError("--fine-tune-lr needs --init-from")
        overrides = {
            "batch_size": args.batch_size,
            "patch_size": args.patch_size,
            "learning_rate": args.fine_tune_lr or args.learning_rate,
            "optimizer": args.optimizer,
            "iterations_per_epoch": args.iterations_per_epoch,
        }
        results = train_folds(
            args.dataset,
            args.out,
            folds=None if args.fold == "all" else [args.fold],
            dim=args.dim,
            model=args.model,
            epochs=args.epochs,
            minutes=args.minutes,
            seed=args.seed,
            device=args.device,
            quiet=args.quiet,
            plan_file=args.plan,
            settings=dict(args.set),
            cache_dir=args.cache,
            memory_gb=args.memory_gb,
            resume=args.resume,
            init_from=args.init_from,
            freeze_encoder=args.freeze_encoder,
            deterministic=args.deterministic,
            **{k: v for k, v in overrides.items() if v is not None},
        )
        for result in results:
            if result.validation is not None:
                heading = f"{result.fold_dir.name} validation (50% overlap, best weights): "
                _print_summary(result.validation.summary, heading)
            _out.print(
                f"trained {result.epochs} epoch(s) in {result.seconds:.0f} s; best smoothed "
                f"validation Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}; "
                f"weights in {result.fold_dir}"
            )
        if cross_validation_complete(args.out):
            summary = json.loads((args.out / "cross_validation" / "summary.json").read_text())
            _print_summary(summary, "Cross-validation (every case, by the fold that held it out): ")
        _out.print(f"validation predictions and scores in {args.out}/fold_*/validation")
        return EXIT_OK
    if args.command == "predict":
        from medseg.infer import predict_paths

        written = predict_paths(
            args.run_dir,
            args.inputs,
            args.out,
            args.device,
            args.quiet,
            series=args.series,
            tta=args.tta,
            save_probabilities=args.save_probabilities,
            postprocess=not args.no_postprocess,
            folds=args.folds,
        )
        _out.print(f"wrote {len(written)} label map(s) to {args.out}")
        return EXIT_OK
    if args.command == "postprocess":
        from medseg.postprocess import (
            POSTPROCESSING_FILE,
            auto_postprocess,
            postprocessing_table,
        )

        choice = auto_postprocess(args.auto, args.dataset, jobs=args.jobs, quiet=args.quiet)
        _out.print(postprocessing_table(choice))
        _out.print(f"wrote {args.auto / POSTPROCESSING_FILE}")
        return EXIT_OK
    if args.command == "fingerprint":
        from medseg.datasets import open_dataset
        from medseg.preprocess import compute_fingerprint

        dataset = open_dataset(args.dataset)
        fp = compute_fingerprint(dataset, jobs=args.jobs, quiet=args.quiet)
        fp.save(args.out)
        _out.print(
            f"{len(fp.cases)} cases, median shape {fp.median_shape}, median spacing "
            f"{[round(v, 3) for v in fp.median_spacing]}, cropped {fp.median_cropped_shape}"
        )
        _out.print(f"wrote {args.out}")
        return EXIT_OK
    if args.command == "plan":
        from medseg.datasets import open_dataset
        from medseg.preprocess import compute_fingerprint
        from medseg.train import apply_overrides, make_plan, resolve_device

        dataset = open_dataset(args.dataset)
        fp = compute_fingerprint(dataset, jobs=args.jobs, quiet=args.quiet)
        made = make_plan(
            fp,
            dataset.spec,
            dim=args.dim,
            model=args.model,
            device=resolve_device(args.device),
            budget_minutes=args.budget_minutes,
            memory_gb=args.memory_gb,
            quiet=args.quiet,
        )
        made = apply_overrides(made, dict(args.set))
        if args.budget_minutes is not None:
            made = made.model_copy(update={"minutes": args.budget_minutes, "epochs": None})
        made.save_file(args.out)
        for decision in made.decisions:
            _out.print(f"[bold]{decision.setting}[/bold] = {decision.value}")
            _out.print(f"    {decision.reason}")
        _out.print(f"wrote {args.out}")
        return EXIT_OK
    if args.command == "preprocess":
        from medseg.datasets import open_dataset
        from medseg.preprocess import preprocess_dataset
        from medseg.train import Plan, apply_overrides

        made = apply_overrides(Plan.read(args.plan), dict(args.set))
        if made.preprocessing is None:
            raise ConfigError(f"{args.plan}: the plan has no preprocessing section")
        dataset = open_dataset(args.dataset)
        cases = preprocess_dataset(
            dataset, made.preprocessing, args.out, jobs=args.jobs, quiet=args.quiet
        )
        _out.print(f"{len(cases)} cases preprocessed in {args.out}")
        return EXIT_OK
    if args.command == "register":
        from medseg.io import read_image
        from medseg.register.register import check_inputs, register_images, write_registration
        from medseg.train import resolve_device

        fixed, moving = read_image(args.fixed), read_image(args.moving)
        labels = {}
        moving_labels = fixed_labels = None
        if args.moving_labels:
            moving_labels = read_image(args.moving_labels)
            labels[str(args.moving_labels)] = (moving_labels, moving)
        if args.fixed_labels:
            fixed_labels = read_image(args.fixed_labels)
            labels[str(args.fixed_labels)] = (fixed_labels, fixed)
        check_inputs(fixed, moving, (str(args.fixed), str(args.moving)), labels)
        model = None
        if args.method == "learned":
            from medseg.register.learned import load_learned_model

            if args.model is None:
                raise ConfigError("--method learned needs --model RUN_DIR")
            model = load_learned_model(args.model, resolve_device(args.device))
        elif args.model is not None or args.refine:
            raise ConfigError("--model and --refine go with --method learned")
        result = register_images(
            fixed,
            moving,
            args.method,
            args.metric,
            moving_labels,
            fixed_labels,
            affine_first=not args.no_affine,
            smoothness=args.smoothness,
            device=resolve_device(args.device),
            model=model,
            refine_steps=args.refine,
        )
        written = write_registration(result, fixed, moving, args.out, fixed_labels, moving_labels)
        m = result.metrics
        _out.print(
            f"{m['method']} ({m['metric']}) in {m['seconds']} s: similarity "
            f"{m['similarity_before']:.4f} -> {m['similarity_after']:.4f}, "
            f"folding {m['folding_percent']:.3f} %"
        )
        for value, after in m.get("labels_after", {}).items():  # type: ignore[union-attr]
            before = m["labels_before"][value]  # type: ignore[index]
            _out.print(f"label {value}: Dice {before['dice']:.4f} -> {after['dice']:.4f}")
        _out.print(f"wrote {len(written)} files to {args.out}")
        return EXIT_OK
    if args.command == "train-registration":
        from medseg.register.training import train_registration
        from medseg.train import resolve_device

        if args.atlas_labels and not args.atlas:
            raise ConfigError("--atlas-labels needs --atlas")
        result = train_registration(
            args.dataset,
            args.out,
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
            device=resolve_device(args.device),
            quiet=args.quiet,
        )
        best = result.config.training.get("best_validation", {})
        line = f"trained {len(result.history)} epoch(s) in {result.history[-1]['seconds']} s"
        if isinstance(best, dict) and "dice_after" in best:
            line += f"; validation Dice {best['dice_before']:.3f} -> {best['dice_after']:.3f}"
        _out.print(f"{line}; model in {args.out}")
        return EXIT_OK
    if args.command == "atlas-segment":
        from medseg.io import read_image, write_image
        from medseg.register.atlas import atlas_segment
        from medseg.register.register import check_inputs
        from medseg.train import resolve_device

        image = read_image(args.image)
        atlases = []
        for image_path, labels_path in args.atlas:
            atlas_image, atlas_labels = read_image(image_path), read_image(labels_path)
            check_inputs(
                image,
                atlas_image,
                (str(args.image), str(image_path)),
                {str(labels_path): (atlas_labels, atlas_image)},
            )
            atlases.append((atlas_image, atlas_labels))
        result = atlas_segment(
            image, atlases, args.method, args.fusion, device=resolve_device(args.device)
        )
        write_image(result.labels, args.out)
        _out.print(f"fused {len(atlases)} atlas(es) by {args.fusion} vote; wrote {args.out}")
        return EXIT_OK
    if args.command == "evaluate":
        from medseg.metrics import EvaluationSettings, evaluate_folders, write_evaluation
        from medseg.report import find_images_dir, write_report

        settings = EvaluationSettings(
            tolerance_mm=args.tolerance_mm,
            tolerances=dict(args.per_label_tolerance),
            lesion_iou=args.lesion_iou,
        )
        evaluation = evaluate_folders(
            args.pred_dir,
            args.ref_dir,
            args.labels,
            only_predicted=args.only_predicted,
            missing_as_empty=args.missing_as_empty,
            settings=settings,
            jobs=args.jobs,
            quiet=args.quiet,
        )
        for warning in evaluation.warnings:
            print(f"medseg: warning: {warning}", file=sys.stderr)
        _print_summary(evaluation.summary)
        if args.out:
            paths = write_evaluation(evaluation, args.out)
            images = args.images or find_images_dir(args.ref_dir)
            paths.append(write_report(evaluation, args.out, images))
            _out.print("wrote " + ", ".join(str(p) for p in paths))
        return EXIT_OK
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER
    try:
        return _run(args)
    except MedsegError as exc:
        if args.debug:
            traceback.print_exc()
        for problem in getattr(exc, "problems", []):
            print(f"medseg: error: {problem}", file=sys.stderr)
        print(f"medseg: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("medseg: interrupted; the latest checkpoint is kept", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one line
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"medseg: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
                file=sys.stderr,
            )
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
