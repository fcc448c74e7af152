"""Progress bars and status lines on standard error (rich).

Bars show only on a terminal; elsewhere (logs, CI) long jobs print one plain line per step,
and ``quiet`` silences both.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


def console() -> Console:
    """The shared stderr console."""
    return _console


def make_progress(quiet: bool = False, counts: bool = True) -> Progress:
    """A progress display with description, bar, counts, elapsed time, ETA and a status field."""
    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    if counts:
        columns.append(MofNCompleteColumn())
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    columns.append(TextColumn("{task.fields[status]}"))
    return Progress(*columns, console=_console, disable=quiet or not _console.is_terminal)


def log_line(message: str, quiet: bool = False) -> None:
    """A plain status line when no live progress bar is shown (not a terminal)."""
    if not quiet and not _console.is_terminal:
        _console.print(message, highlight=False, soft_wrap=True)
