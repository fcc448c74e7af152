"""Errors that medseg raises for problems the user can fix.

Every message names the file (or folder) and the problem in one line; the CLI prints it and
exits with code 2. Anything else that escapes is a bug (exit code 1).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class MedsegError(Exception):
    """Base class of all user-facing errors."""


class ImageReadError(MedsegError):
    """A file could not be read as an image (unknown format, truncated, unreadable)."""


class ImageWriteError(MedsegError):
    """An image could not be written (unsupported format or data)."""


class OutputError(MedsegError):
    """An output place cannot be written: an existing file where a folder is wanted, no
    permission, a full disk."""


class DatasetError(MedsegError):
    """A dataset folder or its dataset.json is missing, malformed or inconsistent."""


class RunFolderError(MedsegError):
    """A run folder is missing, incomplete or holds no trained model."""


class ConfigError(MedsegError):
    """An option or configuration value is invalid."""


class InputProblems(MedsegError):
    """Several inputs are wrong at once (e.g. cases of an evaluation): one line each.

    The CLI prints every line of ``problems``, then the message, and exits with code 2.
    """

    def __init__(self, problems: list[str], message: str) -> None:
        super().__init__(message)
        self.problems = problems


def located(path: str | Path, problem: str) -> str:
    """Return a one-line message ``"{path}: {problem}"`` (whitespace in ``problem`` collapsed)."""
    return f"{path}: {' '.join(str(problem).split())}"


def first_invalid_field(exc: ValidationError, whole: str) -> str:
    """The first problem pydantic found in a settings document, as ``field.path: message``
    (``whole`` names the document when the problem is not in one field).

    Examples
    --------
    >>> from pydantic import BaseModel
    >>> class Settings(BaseModel):
    ...     size: int
    >>> try:
    ...     Settings.model_validate({"size": "big"})
    ... except ValidationError as exc:
    ...     print(first_invalid_field(exc, "settings"))
    size: Input should be a valid integer, unable to parse string as an integer
    """
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or whole
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"
