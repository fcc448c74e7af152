"""Reading a JSON settings file (dataset.json, plan.json, postprocessing.json, ...) with the
one-line error every medseg message follows: the file, then the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, overload

from medseg.errors import MedsegError, located
from medseg.io.limits import check_input_file

#: A settings file larger than this is refused before it is read.
MAX_JSON_BYTES = 64 * 2**20


@overload
def read_json_file(
    path: str | Path, error: type[MedsegError], *, expect_object: Literal[True]
) -> dict[str, Any]: ...


@overload
def read_json_file(
    path: str | Path, error: type[MedsegError], *, expect_object: bool = False
) -> Any: ...


def read_json_file(
    path: str | Path, error: type[MedsegError], *, expect_object: bool = False
) -> Any:
    """The content of a UTF-8 JSON file; any problem raises ``error`` naming the file.

    Parameters
    ----------
    path
        The file to read.
    error
        The `MedsegError` subclass to raise: the caller knows what the file is to the user
        (a dataset's, a run folder's, an option's), so it chooses.
    expect_object
        Also refuse a file whose top level is not a JSON object (``{...}``).

    Returns
    -------
    Any
        What ``json.loads`` makes of the text; a ``dict`` with ``expect_object``.

    Raises
    ------
    MedsegError
        ``error("{path}: file not found")`` (or a FIFO, device, link loop, a file over
        `MAX_JSON_BYTES`), ``"{path}: cannot be read (...)"``,
        ``"{path}: not valid JSON (...)"`` (also for text that is not UTF-8) or
        ``"{path}: expected a JSON object"``.

    Examples
    --------
    >>> import tempfile
    >>> from medseg.errors import ConfigError
    >>> path = Path(tempfile.mkdtemp()) / "settings.json"
    >>> _ = path.write_text('{"batch_size": 2}', encoding="utf-8")
    >>> read_json_file(path, ConfigError, expect_object=True)
    {'batch_size': 2}
    >>> _ = path.write_text("[1, 2", encoding="utf-8")
    >>> read_json_file(path, ConfigError)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    medseg.errors.ConfigError: .../settings.json: not valid JSON (Expecting ',' delimiter: ...)
    """
    try:
        if check_input_file(path, error).stat().st_size > MAX_JSON_BYTES:
            raise error(located(path, f"larger than {MAX_JSON_BYTES // 2**20} MiB"))
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        # reported as bad JSON, which must be UTF-8 (RFC 8259), with where the bad byte is
        raise error(located(path, f"not valid JSON ({exc})")) from None
    except OSError as exc:
        raise error(located(path, f"cannot be read ({exc.strerror or exc})")) from None
    try:
        content = json.loads(text)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers longer than Python converts;
        # RecursionError arrays or objects nested thousands deep
        raise error(located(path, f"not valid JSON ({exc})")) from None
    if expect_object and not isinstance(content, dict):
        raise error(located(path, "expected a JSON object"))
    return content
