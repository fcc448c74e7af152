"""Small CSV tables (class tables, prediction lists, mappings): read with a size bound and the
one-line error of every medseg message, written atomically."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from medseg.errors import MedsegError, located
from medseg.io.atomic import write_text_atomic
from medseg.io.limits import check_input_file

#: A table larger than this is refused before it is read.
MAX_CSV_BYTES = 256 * 2**20


def read_csv_rows(path: str | Path, error: type[MedsegError]) -> list[list[str]]:
    """The rows of a UTF-8 CSV file (a byte-order mark is allowed); a missing, oversized,
    unreadable or non-UTF-8 file raises ``error`` naming it.

    Examples
    --------
    >>> import tempfile
    >>> from medseg.errors import DatasetError
    >>> path = Path(tempfile.mkdtemp()) / "labels.csv"
    >>> _ = path.write_text("case,class\\na,normal\\n", encoding="utf-8")
    >>> read_csv_rows(path, DatasetError)
    [['case', 'class'], ['a', 'normal']]
    """
    path = Path(path)
    if not path.exists():
        raise error(located(path, "not found"))
    if check_input_file(path, error).stat().st_size > MAX_CSV_BYTES:
        raise error(located(path, f"larger than {MAX_CSV_BYTES // 2**20} MiB"))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise error(located(path, "not UTF-8 text")) from None
    except OSError as exc:
        raise error(located(path, f"cannot be read ({exc.strerror or exc})")) from None
    return list(csv.reader(io.StringIO(text)))


def write_csv_atomic(
    path: str | Path, columns: Sequence[str], rows: Sequence[Mapping[str, object]]
) -> Path:
    """Write ``rows`` (mappings from column name to value) under a ``columns`` header,
    atomically; returns the path."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(Path(path), text.getvalue())
    return Path(path)
