"""The input contract every reader enforces before it allocates or follows a name.

- An input is a regular file (or a folder where a DICOM series is read): FIFOs, devices and
  sockets are refused before they are opened, and a symbolic-link loop is named as one.
- A file that names another file (a detached NRRD or MetaImage header) may only name a regular
  file inside its own folder.
- What a file declares (dimensions, frames, voxel type) is checked before anything is
  allocated: against a voxel limit, and against the bytes the file can hold.

The voxel limit is `DEFAULT_MAX_VOXELS` voxels per image (all channels); the environment
variable ``MEDSEG_MAX_VOXELS`` changes it (docs/security.md).
"""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import ImageReadError, MedsegError, located

#: Voxels one image may hold, all channels counted: 1.07e9, 4 GiB as float32 (a 512 x 512
#: CT of 4,000 slices). ``MEDSEG_MAX_VOXELS`` overrides it.
DEFAULT_MAX_VOXELS = 2**30
MAX_VOXELS_VARIABLE = "MEDSEG_MAX_VOXELS"
#: The most deflate (gzip, zlib) can expand: about 1032 to 1; a file claiming more is lying.
DEFLATE_MAX_RATIO = 1032


def max_voxels() -> int:
    """The voxel limit in force: ``MEDSEG_MAX_VOXELS`` if set, else `DEFAULT_MAX_VOXELS`.

    Examples
    --------
    >>> max_voxels() >= 1
    True
    """
    text = os.environ.get(MAX_VOXELS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        value = 0
    if value < 1:
        raise ImageReadError(f"{MAX_VOXELS_VARIABLE}={text!r}: expected a positive voxel count")
    return value


def check_input_file(path: str | Path, error: type[MedsegError] = ImageReadError) -> Path:
    """``path`` if it is a regular file (links followed); else ``error`` naming it.

    Examples
    --------
    >>> check_input_file(__file__).suffix
    '.py'
    >>> check_input_file("/dev/null")
    Traceback (most recent call last):
    ...
    medseg.errors.ImageReadError: /dev/null: not a regular file (a device, FIFO or socket)
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except ValueError:  # a NUL byte in the name
        raise error(located(repr(str(path)), "not a valid file name")) from None
    except OSError as exc:
        raise error(located(path, _stat_problem(path, exc))) from None
    if stat.S_ISDIR(mode):
        raise error(located(path, "a folder, expected a file"))
    if not stat.S_ISREG(mode):
        raise error(located(path, "not a regular file (a device, FIFO or socket)"))
    return path


def _stat_problem(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic-link loop"
    if exc.errno == errno.ENOENT:
        return "a broken symbolic link" if path.is_symlink() else "file not found"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return f"cannot be read ({exc.strerror or exc})"


def check_named_file(header: Path, name: str) -> Path:
    """The file a header names, if it is a regular file inside the header's own folder.

    Absolute names, ``..`` steps and links that lead out of the folder are refused, so a
    header can never make medseg read another file on the machine.

    Examples
    --------
    >>> check_named_file(Path("scan.nhdr"), "/etc/passwd")
    Traceback (most recent call last):
    ...
    medseg.errors.ImageReadError: scan.nhdr: the header names a data file outside its own \
folder: '/etc/passwd'
    """
    folder = header.parent.resolve()
    named = Path(name)
    outside = located(header, f"the header names a data file outside its own folder: {name!r}")
    if named.is_absolute():
        raise ImageReadError(outside)
    if "\0" in name:
        raise ImageReadError(located(header, f"the data file name is not valid: {name!r}"))
    try:
        target = (folder / named).resolve()
        if not target.is_relative_to(folder):
            raise ImageReadError(outside)
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        missing = located(header, f"the data file it names is missing: {name!r}")
        raise ImageReadError(missing) from None
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long ...
        problem = f"the data file it names cannot be used ({_reason(exc)}): {name!r}"
        raise ImageReadError(located(header, problem)) from None
    if not stat.S_ISREG(mode):
        raise ImageReadError(located(header, f"the data file it names is not a file: {name!r}"))
    return target


def _reason(exc: Exception) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "a symbolic-link loop"
    return getattr(exc, "strerror", None) or str(exc)


def check_declared_size(
    path: Path,
    shape: Sequence[int],
    itemsize: int,
    available_bytes: int,
    expansion: float = 1.0,
) -> None:
    """Refuse a declared image before allocating it: too many voxels for the limit, or more
    bytes than ``available_bytes`` of stored data can hold when expanded ``expansion`` times
    at most (1 for raw data, `DEFLATE_MAX_RATIO` for gzip; ``math.inf`` skips that test).

    Examples
    --------
    >>> check_declared_size(Path("x.nii.gz"), (2000, 2000, 2000), 4, 53, DEFLATE_MAX_RATIO)
    Traceback (most recent call last):
    ...
    medseg.errors.ImageReadError: x.nii.gz: declares 2000 x 2000 x 2000 voxels (8e+09), more \
than the limit of 1.07e+09 (set MEDSEG_MAX_VOXELS to raise it)
    >>> check_declared_size(Path("x.nii"), (64, 64, 64), 4, 1000)
    Traceback (most recent call last):
    ...
    medseg.errors.ImageReadError: x.nii: declares 64 x 64 x 64 voxels of 4 bytes (1048576 \
bytes) but holds 1000: truncated or corrupt
    """
    if any(int(n) < 1 for n in shape):
        raise ImageReadError(located(path, f"declares an empty or negative size {tuple(shape)}"))
    voxels = math.prod(int(n) for n in shape)
    described = " x ".join(str(int(n)) for n in shape)
    limit = max_voxels()
    if voxels > limit:
        raise ImageReadError(
            located(
                path,
                f"declares {described} voxels ({voxels:.3g}), more than the limit of "
                f"{limit:.3g} (set {MAX_VOXELS_VARIABLE} to raise it)",
            )
        )
    needed = voxels * itemsize
    if needed > available_bytes * expansion:
        raise ImageReadError(
            located(
                path,
                f"declares {described} voxels of {itemsize} bytes ({needed} bytes) but holds "
                f"{available_bytes}: truncated or corrupt",
            )
        )
