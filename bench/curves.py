"""Validation Dice against steps and against minutes, from finished training runs.

Reads each run's ``fold_K/log.csv`` (written by ``medseg train --fold K``: the validation
cases scored every epoch with the moving weights) and draws two panels, validation Dice
(the mean over labels, or one label's with ``--label``) against optimiser steps and against
training minutes, one line per run, with a dashed line at ``--reference`` (a published
figure); prints the Dice at every 500 steps so the numbers can be quoted.

Usage: python bench/curves.py NAME=RUN_DIR [NAME=RUN_DIR ...] --out curves.png [--fold 0]
       [--ylim 0.8 0.91] [--label Posterior] [--reference 0.89]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_log(run: Path, fold: int) -> list[dict[str, float]]:
    """The rows of a fold's log.csv that hold a validation score, as numbers (a column left
    empty is missing from its row)."""
    with (run / f"fold_{fold}" / "log.csv").open() as handle:
        rows = [
            {key: float(value) for key, value in row.items() if value}
            for row in csv.DictReader(handle)
        ]
    # a time budget validates some epochs only; the others log "nan"
    return [row for row in rows if not math.isnan(row.get("val_dice_mean", math.nan))]


def every(rows: list[dict[str, float]], steps: int, column: str) -> list[tuple[int, float]]:
    """(step, ``column``) at each multiple of ``steps`` that was logged."""
    return [
        (int(row["iterations"]), row[column]) for row in rows if int(row["iterations"]) % steps == 0
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--ylim", type=float, nargs=2, help="Dice axis range, e.g. 0.8 0.91")
    parser.add_argument("--label", help="one label's Dice (its name in log.csv), not the mean")
    parser.add_argument("--reference", type=float, help="a dashed line at this Dice")
    args = parser.parse_args()
    column = f"val_dice_{args.label or 'mean'}"
    what = f"{args.label} validation Dice" if args.label else "mean validation Dice"
    figure, (by_steps, by_minutes) = plt.subplots(1, 2, figsize=(11, 4), dpi=150)
    for item in args.runs:
        name, _, folder = item.partition("=")
        rows = read_log(Path(folder), args.fold)
        steps = [row["iterations"] for row in rows]
        minutes = [row["seconds"] / 60 for row in rows]
        dice = [row[column] for row in rows]
        by_steps.plot(steps, dice, label=name)
        by_minutes.plot(minutes, dice, label=name)
        table = ", ".join(f"{step}: {value:.3f}" for step, value in every(rows, 500, column))
        print(f"{name} ({int(steps[-1])} steps, {minutes[-1]:.1f} min): {table}")
    by_steps.set_xlabel("optimiser steps")
    by_minutes.set_xlabel("training minutes")
    for axes in (by_steps, by_minutes):
        axes.set_ylabel(what)
        if args.reference is not None:
            axes.axhline(args.reference, color="grey", linestyle="--", linewidth=1)
        if args.ylim:
            axes.set_ylim(*args.ylim)
        axes.grid(alpha=0.3)
    by_steps.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
