"""``medseg convert``: build a dataset folder from data in another layout (DICOM studies with
SEG/RTSTRUCT labels, MedMNIST files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console
from medseg.errors import ConfigError

EXAMPLES = """\
  medseg convert dicom studies/ --out Dataset101_Liver
  medseg convert dicom /pacs_export --out Dataset102_Prostate --name Prostate
  medseg convert medmnist pneumoniamnist.npz --out Dataset201_Pneumonia --classes normal,pneumonia

dicom: studies/ holds one folder per study; inside each (at any depth) the image series and
the DICOM-SEG or RTSTRUCT files that reference them. Every SEG/RTSTRUCT becomes one case
(imagesTr/case_NNN_0000.nii.gz, labelsTr/case_NNN.nii.gz on the series' grid); labels are
numbered by segment/ROI name across all studies; cases.csv says where each case came from.

medmnist: a MedMNIST v2 .npz file becomes a classification dataset (docs/classify.md):
train and val images in imagesTr with labels.csv and the official split in
splits_final.json, test images in imagesTs with labelsTs.csv; PNG for 2D, NIfTI for 3D.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "convert",
        "prepare",
        "Build a dataset folder from DICOM studies with SEG/RTSTRUCT or a MedMNIST file.",
        EXAMPLES,
        run,
    )
    parser.add_argument("source", choices=["dicom", "medmnist"], help="what to convert from")
    parser.add_argument(
        "input", type=Path, metavar="STUDIES_DIR|FILE.npz",
        help="a folder of DICOM studies, or a MedMNIST .npz file",
    )  # fmt: skip
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DATASET_DIR", help="new dataset folder"
    )
    parser.add_argument("--name", help="the dataset's name in dataset.json (default: --out's)")
    parser.add_argument(
        "--classes", metavar="A,B,...",
        help="medmnist: names of classes 0, 1, ... (default: class_0, class_1, ...)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.source == "medmnist":
        from medseg.datasets.from_medmnist import convert_medmnist

        names = [n.strip() for n in args.classes.split(",")] if args.classes else None
        out = convert_medmnist(args.input, args.out, names, args.name, quiet=args.quiet)
        console.print(f"wrote the classification dataset {out}")
        return 0
    if args.classes:
        raise ConfigError("--classes applies to medmnist only")
    from medseg.datasets.from_dicom import convert_dicom_studies

    out = convert_dicom_studies(args.input, args.out, args.name, quiet=args.quiet)
    console.print(f"wrote the dataset {out} (cases.csv lists where each case came from)")
    return 0
