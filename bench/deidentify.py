"""Benchmark: DICOM de-identification, files per second — medseg against dicognito and deid on
the same files, in one process.

The input is every DICOM file of the shared data (the real MR study and the CT/SEG/RTSTRUCT
folder, ~130 files), copied ``--copies`` times with new UIDs so that each run has a few hundred
files. Each tool reads every file, de-identifies it and writes it to its own output folder:

- medseg: ``medseg.privacy.anonymize.anonymize_folder`` (walk, read, Basic Profile, atomic
  write, report);
- dicognito: ``Anonymizer().anonymize(dataset)`` per file (its defaults), then ``save_as``;
- deid: ``replace_identifiers`` with its default recipe and ``remove_private=True``, one call
  per folder (it names outputs by input file name).

Usage: python bench/deidentify.py [--copies 3] [--repeats 3] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import pydicom


def make_input(data: Path, folder: Path, copies: int) -> list[Path]:
    """Every Part 10 file of the shared DICOM folders, ``copies`` times with new UIDs."""
    sources = []
    for name in ("dicom_mr_study", "dicom_seg_rtstruct"):
        files = sorted(p for p in (data / name).rglob("*") if p.is_file())
        sources += [p for p in files if p.read_bytes()[128:132] == b"DICM"]
    written = []
    for copy in range(copies):
        for number, source in enumerate(sources):
            dataset = pydicom.dcmread(source)
            dataset.SOPInstanceUID = pydicom.uid.generate_uid()
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            target = folder / f"copy{copy}" / source.parent.name / f"{number:04d}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            dataset.save_as(target)
            written.append(target)
    return written


def run_medseg(source: Path, out: Path, files: list[Path]) -> int:
    from medseg.privacy.anonymize import anonymize_folder

    result = anonymize_folder(source, out, quiet=True)
    return result.written


def run_dicognito(source: Path, out: Path, files: list[Path]) -> int:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    for number, path in enumerate(files):
        dataset = pydicom.dcmread(path)
        anonymizer.anonymize(dataset)
        dataset.save_as(out / f"{number:05d}.dcm")
    return len(files)


def run_deid(source: Path, out: Path, files: list[Path]) -> int:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    recipe = DeidRecipe()  # deid's default recipe
    done = 0
    for folder in sorted({p.parent for p in files}):
        members = [str(p) for p in files if p.parent == folder]
        target = out / folder.relative_to(source)
        target.mkdir(parents=True, exist_ok=True)
        replace_identifiers(
            dicom_files=members, deid=recipe, save=True, output_folder=str(target),
            remove_private=True, overwrite=True,
        )  # fmt: skip
        done += len(members)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in"
        files = make_input(args.data, source, args.copies)
        print(f"{len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB, "
              f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        rates = {}
        tools = (("medseg", run_medseg), ("dicognito", run_dicognito), ("deid", run_deid))
        for name, run in tools:
            best = float("inf")
            for repeat in range(args.repeats):
                out = Path(tmp) / f"{name}{repeat}"
                out.mkdir()
                start = time.perf_counter()
                done = run(source, out, files)
                best = min(best, time.perf_counter() - start)
                assert done == len(files), (name, done)
            rates[name] = len(files) / best
            print(f"{name:10s} {best:7.2f} s  {rates[name]:7.1f} files/s")
        fastest = max(("dicognito", "deid"), key=rates.get)
        print(f"medseg / fastest peer ({fastest}): {rates['medseg'] / rates[fastest]:.2f}x")


if __name__ == "__main__":
    main()
