"""``medseg predict``: label maps for new images with a trained run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console
from medseg.errors import ConfigError

EXAMPLES = """\
  medseg predict runs/hippo Dataset004_Hippocampus/imagesTs --out preds
  medseg predict runs/hippo scan_0000.nii.gz --out preds
  medseg predict runs/brain study/T1post-21069 --out preds     (a DICOM series folder)
  medseg predict runs/brain study/all_series --series T1post --out preds
  medseg predict runs/hippo imagesTs --out preds --tta --save-probabilities
  medseg predict runs/hippo imagesTs --out preds --fold 0 --no-postprocess
  medseg predict runs/ct ct_series/ --out preds --format nifti,dicom-seg
  medseg predict runs/ct ct_series/ --out preds --format rtstruct
  medseg predict runs/hippo /data/cohort --out preds --jobs 2     (again: resumes)

a folder of DICOM files is one case, predicted as {folder name}.nii.gz on the
series' exact voxel grid (and {folder name}_seg.dcm with --format dicom-seg); a
folder of NIfTI/PNG/... files is a folder of cases.
Every trained fold votes (softmax average); the run's postprocessing.json (from
medseg postprocess --auto) is applied when present. OUT/predictions.json records the
settings and each case (done or failed, seconds, input checksums, files): the same command
run again skips the cases already done, and a case that fails never stops the others
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "predict",
        "segment",
        "Predict label maps for images with a trained run folder.",
        EXAMPLES,
        run,
    )
    parser.add_argument(
        "run_dir",
        type=arguments.run_folder,
        metavar="RUN_DIR",
        help="trained run folder (a path, or one under $MEDSEG_RESULTS / $nnUNet_results)",
    )
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="INPUT",
        help="image files or folders; channels by the _0000, _0001 ... suffix",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--series",
        metavar="UID_OR_DESCRIPTION",
        help="in a DICOM folder with several series, the one to predict",
    )
    parser.add_argument(
        "--format",
        default="nifti",
        metavar="FORMATS",
        help="nifti (the label map: NIfTI for a DICOM series, else the input's format), "
        "dicom-seg (a DICOM Segmentation {case}_seg.dcm referencing the series), rtstruct "
        "(an RT Structure Set {case}_rtstruct.dcm of contours); the DICOM ones need a DICOM "
        "series input; several comma-separated, e.g. nifti,dicom-seg (default: nifti)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="test-time augmentation: average over every mirrored copy (2^dim passes)",
    )
    parser.add_argument(
        "--save-probabilities",
        nargs="?",
        const="npz",
        choices=["npz", "nifti"],
        help="also write the class probabilities: {case}.npz (float16, default) or "
        "{case}_probabilities.nii.gz (3D)",
    )
    parser.add_argument(
        "--fold",
        type=arguments.fold_model,
        action="append",
        dest="folds",
        metavar="K",
        help="use only this fold's model, a number or all, or a further model such as 0_1 "
        "(repeat for several; default: every model of the run folder)",
    )
    parser.add_argument(
        "--no-postprocess",
        action="store_true",
        help="ignore the run folder's postprocessing.json",
    )
    parser.add_argument(
        "--lesions", action="store_true",
        help="also write lesions.csv: each connected component of each label with its "
        "centroid (mm), box, volume and confidence (for detection, FROC in medseg evaluate)",
    )  # fmt: skip
    parser.add_argument(
        "--uncertainty", action="store_true",
        help="also write {case}_uncertainty.nii.gz (entropy of the averaged probabilities) and "
        "quality.csv (per-case scores; an ok/review flag once medseg calibrate has run)",
    )  # fmt: skip
    arguments.add_jobs(parser, "worker processes sharing the cases, one thread each (default 1)")
    arguments.add_device(parser)
    parser.add_argument(
        "--engine", choices=("torch", "onnxruntime"), default="torch",
        help="run the networks with PyTorch (default) or with onnxruntime on the run's ONNX "
        "export (medseg export RUN_DIR first; CPU)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
        help="what the networks compute in: auto (default) is bfloat16 on a CPU that computes "
        "it natively (AMX or AVX-512 BF16: ~2.5x faster here, labels equal but for ~0.003%% of "
        "voxels), float16 on CUDA, else float32",
    )  # fmt: skip
    parser.add_argument(
        "--compile", action="store_true",
        help="run the networks through torch.compile: ~20 s to compile, then ~1.25x faster "
        "per window here; for large volumes and long cohorts (needs a C++ compiler on CPU)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from medseg.infer import predict_paths
    from medseg.runs.classifier_plan import is_classifier_run

    if is_classifier_run(args.run_dir):
        return _classify(args)

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
        formats=args.format,
        lesions=args.lesions,
        uncertainty=args.uncertainty,
        jobs=args.jobs or 1,
        engine=args.engine,
        compile_networks=args.compile,
        precision=args.precision,
    )
    console.print(f"wrote {len(written)} file(s) to {args.out}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    from medseg.infer.classify import predict_classes

    segmentation_only = {
        "--tta": args.tta, "--save-probabilities": args.save_probabilities,
        "--series": args.series, "--fold": args.folds, "--lesions": args.lesions,
        "--uncertainty": args.uncertainty, "--jobs": args.jobs, "--compile": args.compile,
        "--precision": args.precision != "auto",
    }  # fmt: skip
    given = [name for name, value in segmentation_only.items() if value]
    if given or args.format not in (None, "nifti"):
        option = given[0] if given else "--format"
        raise ConfigError(f"{option} applies to segmentation runs; {args.run_dir} is a classifier")
    target = predict_classes(args.run_dir, args.inputs, args.out, args.device, args.quiet)
    console.print(f"wrote {target}")
    return 0
