"""Checking what a client uploads before a job is queued.

The upload's file name is used for one thing only: its ending tells the format (``.nii``,
``.nii.gz``, ``.nrrd``, ``.mha``, ``.png`` or ``.zip`` of one DICOM series). The file is
stored under a name medseg makes (``input.nii.gz`` …); a zip's members are written as
``dicom/00000.dcm`` …, never under their own names. A zip is refused when it holds more than
`Limits.zip_entries` members, more than `Limits.unpacked_bytes` uncompressed, a member
compressed more than `Limits.zip_ratio` times, an absolute or ``..`` path, or a link.
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

#: The formats a job accepts: ending -> (kind, the stored file's name).
FORMATS = {
    ".nii.gz": ("nifti", "input.nii.gz"),
    ".nii": ("nifti", "input.nii"),
    ".nrrd": ("nrrd", "input.nrrd"),
    ".mha": ("mha", "input.mha"),
    ".png": ("png", "input.png"),
    ".zip": ("dicom", "input.zip"),
}


class UploadError(ValueError):
    """An upload the service refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """Upload limits (``medseg serve --max-upload-mb`` sets the first)."""

    upload_bytes: int = 1024 * 2**20
    zip_entries: int = 5000
    unpacked_bytes: int = 4096 * 2**20
    zip_ratio: float = 200.0


def input_format(filename: str | None) -> tuple[str, str]:
    """The kind and stored name for an upload called ``filename``.

    Examples
    --------
    >>> input_format("Case 7.NII.GZ")
    ('nifti', 'input.nii.gz')
    """
    lower = (filename or "").lower()
    for ending, found in FORMATS.items():
        if lower.endswith(ending):
            return found
    known = ", ".join(FORMATS)
    raise UploadError(f"the file must be one of {known} (a zip holds one DICOM series)", 415)


def unpack_dicom_zip(archive: Path, folder: Path, limits: Limits) -> int:
    """Check ``archive`` against ``limits`` and write its files as ``folder/NNNNN.dcm``;
    returns how many. Raises `UploadError` before writing anything when a check fails."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir()]
            _check_members(members, limits)
            folder.mkdir(parents=True, exist_ok=True)
            for number, member in enumerate(members):
                _copy_member(zipped, member, folder / f"{number:05d}.dcm", limits)
    except (zipfile.BadZipFile, EOFError, NotImplementedError) as exc:
        raise UploadError(f"not a readable zip archive ({exc})") from None
    if not members:
        raise UploadError("the zip archive holds no files")
    return len(members)


def _check_members(members: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(members) > limits.zip_entries:
        raise UploadError(
            f"the zip archive holds {len(members)} files (at most {limits.zip_entries})", 413
        )
    total = sum(m.file_size for m in members)
    if total > limits.unpacked_bytes:
        raise UploadError(
            f"the zip archive unpacks to {total} bytes (at most {limits.unpacked_bytes})", 413
        )
    for member in members:
        path = PurePosixPath(member.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts or ":" in member.filename:
            raise UploadError("the zip archive names a path outside itself")
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UploadError("the zip archive holds a link")
        if member.file_size > limits.zip_ratio * max(member.compress_size, 1):
            raise UploadError(
                f"a zip member is compressed more than {limits.zip_ratio:g} times", 413
            )


def _copy_member(
    zipped: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limits: Limits
) -> None:
    """Copy one member, stopping if it unpacks to more than it declared (a lying header)."""
    written = 0
    with zipped.open(member) as source, open(target, "wb") as sink:
        while chunk := source.read(2**20):
            written += len(chunk)
            if written > member.file_size or written > limits.unpacked_bytes:
                raise UploadError("a zip member unpacks to more than it declares", 413)
            sink.write(chunk)
