"""``medseg anonymize``: de-identify a folder of DICOM files (PS3.15 Basic Profile)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console
from medseg.errors import ConfigError

EXAMPLES = """\
  medseg anonymize export/ anon/ --key-file ~/secrets/study.key
  medseg anonymize export/ anon/ --key-file study.key --mapping pseudonyms.csv --shift-dates
  medseg anonymize export/ anon/ --key-file study.key --keep ROIName --keep SeriesDescription

applies DICOM PS3.15's Basic Application Level Confidentiality Profile to every DICOM file
under the input folder: identifying attributes removed, emptied or replaced, private
attributes removed (a few numeric ones kept, see docs/dicom.md), UIDs replaced by new ones
made from the key (the same key gives the same UIDs, so SEG and RTSTRUCT references still
resolve), Patient's Name and ID replaced by a pseudonym; pixel data untouched. Files go to
OUT_DIR/PSEUDONYM/STUDY/SERIES/INSTANCE.dcm; OUT_DIR/anonymize_report.json lists the files
that may show text burned into the pixels. Rerunning finishes a killed run.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "anonymize",
        "prepare",
        "De-identify DICOM files (PS3.15 Basic Profile) before they leave the hospital.",
        EXAMPLES,
        run,
    )
    parser.add_argument("in_dir", type=Path, metavar="IN_DIR", help="folder of DICOM files")
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="where they go")
    parser.add_argument(
        "--key-file", type=Path, metavar="FILE",
        help="the secret behind new UIDs, pseudonyms and date shifts; created if missing "
        "(default: a new key for this run only)",
    )  # fmt: skip
    parser.add_argument(
        "--mapping", type=Path, metavar="CSV",
        help="patient_id,pseudonym rows to use; new patients are added (keep it private)",
    )  # fmt: skip
    parser.add_argument(
        "--shift-dates", action="store_true",
        help="move dates back by one offset per patient instead of removing them",
    )  # fmt: skip
    parser.add_argument(
        "--keep", action="append", default=[], metavar="KEYWORD",
        help="keep this attribute of the profile as it is (repeatable), e.g. ROIName",
    )  # fmt: skip
    parser.add_argument(
        "--keep-private", action="append", default=[], metavar="GGGG,CREATOR,EE",
        help="also keep this private attribute (group, private creator, element offset)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from medseg.privacy.anonymize import anonymize_folder
    from medseg.privacy.deidentify import DEFAULT_KEEP_PRIVATE, DeidOptions

    private = DEFAULT_KEEP_PRIVATE | {_private_tag(text) for text in args.keep_private}
    options = DeidOptions(args.shift_dates, frozenset(args.keep), frozenset(private))
    result = anonymize_folder(
        args.in_dir, args.out_dir, options, args.key_file, args.mapping, quiet=args.quiet
    )
    if result.new_key:
        console.print(
            f"new key in {args.key_file}: keep it secret and reuse it for this study"
            if args.key_file
            else "no --key-file: UIDs and pseudonyms are new ones that no later run repeats"
        )
    for line in result.duplicates:
        console.print(line)
    console.print(
        f"de-identified {result.written} files into {result.out_dir} ({result.already_there} "
        f"already there, {result.skipped} skipped: not DICOM files, DICOMDIRs or links)"
    )
    if result.burned_in:
        console.print(
            f"{len(result.burned_in)} files may show identifying text in their pixels: "
            f"see {result.report}"
        )
    for line in result.failures:
        print(f"medseg: error: {line}", file=sys.stderr)
    if result.failures:
        count = len(result.failures)
        print(f"medseg: error: {count} file(s) could not be de-identified (above); the others "
              "are done", file=sys.stderr)  # fmt: skip
        return 2
    return 0


def _private_tag(text: str) -> tuple[int, str, int]:
    try:
        group, creator, offset = (part.strip() for part in text.split(","))
        parsed = (int(group, 16), creator, int(offset, 16))
    except ValueError:
        parsed = None
    if parsed is None or parsed[0] % 2 == 0 or not 0 <= parsed[2] <= 0xFF or not creator:
        raise ConfigError(
            f"--keep-private {text}: want GGGG,CREATOR,EE with an odd group, e.g. "
            "'0019,SIEMENS MR HEADER,0C'"
        )
    return parsed
