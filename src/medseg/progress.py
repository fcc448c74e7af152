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
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

_console = Console(stderr=True)


def console() -> Console:
    """The shared stderr console."""
    return _console


class _StatusColumn(ProgressColumn):
    """The task's ``status`` field (loss, Dice ...), empty for tasks that set none."""

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get("status", "")))


def make_progress(quiet: bool = False) -> Progress:
    """A progress display with description, bar, counts, elapsed time, ETA and a status field."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        _StatusColumn(),
    ]
    return Progress(*columns, console=console(), disable=quiet or not console().is_terminal)


def log_line(message: str, quiet: bool = False) -> None:
    """A plain status line when no live progress bar is shown (not a terminal)."""
    if not quiet and not console().is_terminal:
        console().print(message, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A one-line warning on stderr, shown even with ``--quiet`` (it is not progress)."""
    console().print(f"warning: {message}", highlight=False, soft_wrap=True)
