"""Every DICOM file of a folder, de-identified into another folder (``medseg anonymize``).

Output files are named by what de-identification made, never by input names or values:
``OUT/{pseudonym}/{new study UID}/{new series UID}/{new SOP instance UID}.dcm``. Each is
written atomically; a rerun with the same key skips the files already there, so a killed run
is finished by running it again. ``anonymize_report.json`` in OUT counts the files, lists the
ones that need a look for text burned into the pixels, and names inputs only by number.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from medseg import __version__
from medseg.errors import ConfigError, ImageReadError, MedsegError, located
from medseg.io.atomic import atomic_path, remove_stale_temporaries, write_text_atomic
from medseg.io.dicom import has_dicom_preamble
from medseg.io.dicom_frames import PYDICOM_ERRORS
from medseg.io.limits import check_input_file
from medseg.io.outputs import prepare_output_folder
from medseg.privacy.deidentify import Deidentifier, DeidOptions
from medseg.privacy.pseudonyms import PSEUDONYM, Pseudonyms, Secret, load_key
from medseg.progress import make_progress

REPORT_NAME = "anonymize_report.json"

#: Bounds on the walk and on one file (pydicom reads a file whole).
MAX_FILES = 1_000_000
MAX_FILE_BYTES = 4 * 2**30

#: Secondary Capture Image Storage and its multi-frame variants: screenshots, scanned
#: documents, often with text in the pixels.
SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

_UID_NAME = re.compile(r"^[0-9][0-9.]{0,63}$")


@dataclass
class AnonymizeResult:
    """What `anonymize_folder` did."""

    out_dir: Path
    new_key: bool
    written: int = 0
    already_there: int = 0
    skipped: int = 0  # not DICOM Part 10 files, DICOMDIRs, links
    duplicates: list[str] = field(default_factory=list)  # one line each, naming the input
    failures: list[str] = field(default_factory=list)  # one line each, naming the input
    burned_in: list[dict[str, str]] = field(default_factory=list)  # output file, reason

    @property
    def report(self) -> Path:
        return self.out_dir / REPORT_NAME


def anonymize_folder(
    in_dir: str | Path,
    out_dir: str | Path,
    options: DeidOptions | None = None,
    key_file: str | Path | None = None,
    mapping: str | Path | None = None,
    quiet: bool = False,
) -> AnonymizeResult:
    """De-identify every DICOM file under ``in_dir`` into ``out_dir``.

    ``key_file`` holds the secret that makes UIDs, pseudonyms and date shifts repeatable
    (created if missing; without one, a new key is used for this run only). ``mapping`` is
    the user's ``patient_id,pseudonym`` CSV file (new patients are added). One bad file never
    stops the rest: it is listed in the result's ``failures``.

    Examples
    --------
    >>> import tempfile
    >>> empty, out = Path(tempfile.mkdtemp()), Path(tempfile.mkdtemp()) / "anon"
    >>> anonymize_folder(empty, out, quiet=True).written
    0
    """
    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    key_path = Path(key_file).resolve() if key_file is not None else None
    mapping_path = Path(mapping).resolve() if mapping is not None else None
    _check_places(in_dir, out_dir, [key_path, mapping_path])
    key, new_key = load_key(key_path)
    secret = Secret(key)
    deidentify = Deidentifier(secret, Pseudonyms(secret, mapping_path), options or DeidOptions())
    files = _walk(in_dir)
    prepare_output_folder(out_dir)
    run = _Run(out_dir, deidentify, AnonymizeResult(out_dir, new_key))
    with make_progress(quiet) as progress:
        for number, path in enumerate(progress.track(files, description="de-identifying"), 1):
            try:
                run.anonymize(path)
            except MedsegError as exc:
                run.result.failures.append(str(exc))
                problem = str(exc).removeprefix(f"{path}: ").replace(str(path), "the file")
                run.failed.append({"input": number, "problem": problem.replace(path.name, "…")})
    _write_report(run.result, deidentify.options, run.failed)
    return run.result


def _check_places(in_dir: Path, out_dir: Path, secrets: list[Path | None]) -> None:
    if not in_dir.is_dir():
        raise ConfigError(located(in_dir, "not a folder"))
    if out_dir == in_dir or in_dir in out_dir.parents or out_dir in in_dir.parents:
        raise ConfigError(located(out_dir, "the output folder must be outside the input folder"))
    for secret in secrets:
        if secret is not None and out_dir in secret.parents:
            raise ConfigError(located(secret, "keep the key and mapping files out of the output"))


def _walk(in_dir: Path) -> list[Path]:
    """Every file under ``in_dir`` (links included, to be skipped), in name order, bounded."""
    files: list[Path] = []
    for folder, _, names in os.walk(in_dir, followlinks=False):
        files += [Path(folder) / name for name in names]
        if len(files) > MAX_FILES:
            raise ConfigError(located(in_dir, f"more than {MAX_FILES} files"))
    return sorted(files)


@dataclass
class _Run:
    """One folder's de-identification: the result so far and what it has already met."""

    out_dir: Path
    deidentify: Deidentifier
    result: AnonymizeResult
    failed: list[dict[str, object]] = field(default_factory=list)  # inputs by number only
    seen: set[Path] = field(default_factory=set)  # targets of this run
    cleaned: set[Path] = field(default_factory=set)  # folders rid of stale temporaries

    def anonymize(self, path: Path) -> None:
        """De-identify one input file (or skip it), raising `MedsegError` if it is bad."""
        dataset = _read(path)
        if dataset is None:
            self.result.skipped += 1
            return
        target = _target(path, self.out_dir, dataset, self.deidentify)
        if target in self.seen:  # the same instance exported twice, or in two syntaxes
            self.result.duplicates.append(located(path, "skipped: the same instance as before"))
            return
        self.seen.add(target)
        reason = _burned_in(dataset)
        if reason is not None:
            relative = target.relative_to(self.out_dir).as_posix()
            self.result.burned_in.append({"file": relative, "reason": reason})
        if target.exists():
            self.result.already_there += 1
            return
        if target.parent not in self.cleaned:
            remove_stale_temporaries(target.parent)
            self.cleaned.add(target.parent)
        _write(path, target, dataset, self.deidentify)
        self.result.written += 1


def _write(path: Path, target: Path, dataset: Dataset, deidentify: Deidentifier) -> None:
    try:
        deidentify(dataset)
        dataset.preamble = b"\0" * 128  # a preamble may carry another format's header
        with atomic_path(target) as tmp:
            dataset.save_as(tmp, enforce_file_format=True)
    except PYDICOM_ERRORS as exc:
        if isinstance(exc, MedsegError):
            raise
        raise ImageReadError(located(path, f"could not be de-identified ({exc})")) from None


def _read(path: Path) -> Dataset | None:
    """The whole data set, or None for a file to skip (a link, not DICOM, a DICOMDIR)."""
    if path.is_symlink() or not has_dicom_preamble(path):
        return None
    check_input_file(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ImageReadError(located(path, f"larger than {MAX_FILE_BYTES} bytes"))
    try:
        dataset = pydicom.dcmread(path)
        meta = getattr(dataset, "file_meta", None) or {}
        classes = (dataset.get("SOPClassUID"), meta.get("MediaStorageSOPClassUID"))
        if MEDIA_STORAGE_DIRECTORY in classes:
            return None  # lists the files by their old names: not copied
        for _ in dataset.iterall():  # meet pydicom's lazy parsing errors here
            pass
        short = _missing_pixel_bytes(dataset)
    except PYDICOM_ERRORS as exc:
        raise ImageReadError(located(path, f"not a readable DICOM file ({exc})")) from None
    if short:
        raise ImageReadError(located(path, f"truncated: {short} bytes of pixel data missing"))
    return dataset


def _missing_pixel_bytes(dataset: Dataset) -> int:
    """How many bytes uncompressed pixel data lacks against its declared size (pydicom reads
    a cut file without complaint)."""
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    if "PixelData" not in dataset or syntax is None or syntax.is_encapsulated:
        return 0
    bits = int(dataset.get("BitsAllocated", 0) or 0)
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    declared = int(dataset.get("Rows", 0) or 0) * int(dataset.get("Columns", 0) or 0)
    declared = (declared * samples * frames * bits + 7) // 8
    return max(0, declared - len(dataset.PixelData))


def _target(path: Path, out_dir: Path, dataset: Dataset, deidentify: Deidentifier) -> Path:
    """Where the file goes: names made by de-identification, checked before use."""
    parts = [deidentify.pseudonym(dataset)]
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        uid = str(dataset.get(keyword, "") or "")
        if not uid:
            raise ImageReadError(located(path, f"no {keyword}"))
        parts.append(uid if keyword in deidentify.options.keep else deidentify.secret.uid(uid))
    if not PSEUDONYM.match(parts[0]) or not all(_UID_NAME.match(p) for p in parts[1:]):
        raise ImageReadError(located(path, "its UIDs are not valid UIDs"))
    return out_dir.joinpath(*parts[:3], f"{parts[3]}.dcm")


def _burned_in(dataset: Dataset) -> str | None:
    """Why text may be burned into the pixels, where the header says so; else None."""
    if str(dataset.get("BurnedInAnnotation", "")).upper() == "YES":
        return "Burned In Annotation is YES"
    if str(dataset.get("Modality", "")).upper() == "US":
        return "ultrasound: scanners often write text into the image"
    if str(dataset.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_ROOT):
        return "secondary capture: screenshots and scans often show text"
    return None


def _write_report(result: AnonymizeResult, options: DeidOptions, failed: list) -> None:
    report = {
        "medseg": __version__,
        "profile": "DICOM PS3.15 Basic Application Level Confidentiality Profile",
        "options": {
            "shift_dates": options.shift_dates,
            "keep": sorted(options.keep),
            "keep_private": [f"{g:04X},{c},{e:02X}" for g, c, e in sorted(options.keep_private)],
        },
        "files": {
            "written": result.written,
            "already_there": result.already_there,
            "skipped": result.skipped,
            "duplicates": len(result.duplicates),
            "failed": len(failed),
        },
        "failed": failed,
        "burned_in": result.burned_in,
    }
    write_text_atomic(result.report, json.dumps(report, indent=1) + "\n")
