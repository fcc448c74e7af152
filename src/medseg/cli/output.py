"""How commands print: one console, and the score table several commands end with."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from medseg.metrics.compare import Comparison

console = Console(highlight=False, soft_wrap=True)

_COLUMNS = {"dice": "Dice", "nsd": "NSD", "hd95": "HD95 mm", "assd": "ASSD mm"}


def _cell(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


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


def print_comparison(comparison: Comparison) -> None:
    """Paired differences B − A per label for Dice, NSD and HD95, with their CIs."""
    from medseg.report.page import p_value  # the report package loads matplotlib

    a, b = comparison.names
    table = Table(title=f"B − A over the cases both define (A = {a}, B = {b})")
    for heading in ("label", "metric", "n", "mean A", "mean B", "B − A", "95% CI", "Wilcoxon p"):
        table.add_column(heading, justify="left" if heading in ("label", "metric") else "right")
    for row in comparison.rows:
        if row["metric"] not in _COLUMNS or row["metric"] == "assd":
            continue
        ci = f"{_cell(row['ci95_low'])} – {_cell(row['ci95_high'])}"
        cells = [_cell(row[k]) for k in ("mean_a", "mean_b", "mean_difference")]
        table.add_row(
            str(row["label_name"]),
            _COLUMNS[str(row["metric"])],
            str(row["n"]),
            *cells,
            ci,
            p_value(row["wilcoxon_p"]),
        )
    console.print(table)
