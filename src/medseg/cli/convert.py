"""``medseg convert``: build an nnU-Net dataset folder from data in another layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg convert dicom studies/ --out Dataset101_Liver
  medseg convert dicom /pacs_export --out Dataset102_Prostate --name Prostate

studies/ holds one folder per study; inside each (at any depth) the image series and the
DICOM-SEG or RTSTRUCT files that reference them. Every SEG/RTSTRUCT becomes one case
(imagesTr/case_NNN_0000.nii.gz, labelsTr/case_NNN.nii.gz on the series' grid); labels are
numbered by segment/ROI name across all studies; cases.csv says where each case came from.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "convert",
        "prepare",
        "Build an nnU-Net dataset folder from DICOM studies with SEG or RTSTRUCT labels.",
        EXAMPLES,
        run,
    )
    parser.add_argument("source", choices=["dicom"], help="what to convert from")
    parser.add_argument("studies", type=Path, metavar="STUDIES_DIR", help="folder of studies")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DATASET_DIR", help="new dataset folder"
    )
    parser.add_argument("--name", help="the dataset's name in dataset.json (default: --out's)")


def run(args: argparse.Namespace) -> int:
    from medseg.datasets.from_dicom import convert_dicom_studies

    out = convert_dicom_studies(args.studies, args.out, args.name, quiet=args.quiet)
    console.print(f"wrote the dataset {out} (cases.csv lists where each case came from)")
    return 0
