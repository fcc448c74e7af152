"""How commands print: one console, and the score table several commands end with."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)

_COLUMNS = {"dice": "Dice", "nsd": "NSD", "hd95": "HD95 mm", "assd": "ASSD mm"}


def _cell(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_summary(summary: dict, what: str = "") -> None:
    """The per-label means of an evaluation summary (summary.json) as a table."""
    table = Table(title=f"{what}Scores over {summary['cases']} case(s) (means)")
    table.add_column("label")
    table.add_column("value", justify="right")
    for heading in _COLUMNS.values():
        table.add_column(heading, justify="right")
    table.add_column("cases", justify="right")
    table.add_column("undefined", justify="right")
    for name, row in summary["labels"].items():
        stats = row.get("metrics", {})
        means = [_cell(stats[m]["mean"], 4 if m in ("dice", "nsd") else 2) for m in _COLUMNS]
        table.add_row(name, str(row["label"]), *means, str(row["cases"]), str(row["undefined"]))
    if summary["mean_dice"] is not None:
        blanks = [""] * (len(_COLUMNS) - 1)
        table.add_row("[bold]mean", "", f"[bold]{summary['mean_dice']:.4f}", *blanks, "", "")
    console.print(table)
