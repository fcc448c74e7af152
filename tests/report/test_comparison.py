"""`medseg evaluate PRED_A PRED_B REF_DIR`: two methods in one report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medseg.report import compare_and_report
from medseg.report.comparison import COMPARISON_COLUMNS, DIFFERENCE_PLOTS


@pytest.fixture
def two_methods(tmp_path: Path, scored_dataset) -> tuple[Path, Path, Path]:
    """A misses k layers of label 1 in case k, B misses none in even cases: B is better."""
    _, labels, worse = scored_dataset(tmp_path, cases=8, name="unet")
    _, _, better = scored_dataset(tmp_path, cases=8, missed=lambda k: k % 2 * k, name="fcn")
    return worse, better, labels


def test_comparison_tables_report_and_figures(two_methods, tmp_path: Path) -> None:
    worse, better, labels = two_methods
    comparison, written = compare_and_report(worse, better, labels, tmp_path / "out")
    out = tmp_path / "out"
    assert [p.name for p in written] == [
        "A", "B", "comparison.csv", "comparison.json", "report.html", "figures",
    ]  # fmt: skip
    assert (out / "A/report.html").is_file() and (out / "B/metrics.csv").is_file()
    with (out / "comparison.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COMPARISON_COLUMNS
    dice_1 = next(r for r in rows if r["label"] == "1" and r["metric"] == "dice")
    # cases 2, 4, 6 improve (case 0 misses nothing in both), the odd ones tie
    assert (dice_1["b_better"], dice_1["a_better"], dice_1["ties"]) == ("3", "0", "5")
    assert float(dice_1["mean_difference"]) > 0 and float(dice_1["ci95_low"]) > 0
    dice_2 = next(r for r in rows if r["label"] == "2" and r["metric"] == "dice")
    assert (dice_2["mean_difference"], dice_2["wilcoxon_p"]) == ("0.0", "1.0")
    record = json.loads((out / "comparison.json").read_text())  # strict JSON: no NaN
    assert record["names"] == ["unet", "fcn"] and "versions" in record
    page = (out / "report.html").read_text()
    assert "unet (A) against fcn (B)" in page and 'class="better"' in page
    assert 'href="A/report.html"' in page
    assert sorted(p.name for p in (out / "figures").glob("*.svg")) == sorted(
        f"difference_{m}.svg" for m in DIFFERENCE_PLOTS
    )
    assert comparison.names == ("unet", "fcn")


def test_cli_compares_three_folders_and_refuses_a_fourth(two_methods, tmp_path, run_cli) -> None:
    worse, better, labels = two_methods
    code, out, err = run_cli(["evaluate", worse, better, labels, "--out", tmp_path / "cmp"])
    assert code == 0, err
    assert "B − A" in out and (tmp_path / "cmp/report.html").is_file()
    code, _, err = run_cli(["evaluate", worse, better, labels])
    assert code == 2 and "needs --out" in err
    code, _, err = run_cli(["evaluate", worse, better, labels, labels, "--out", tmp_path / "x"])
    assert code == 2 and "at most three folders" in err


def test_renders_in_headless_chromium(two_methods, tmp_path, render_in_chromium) -> None:
    worse, better, labels = two_methods
    compare_and_report(worse, better, labels, tmp_path / "out")
    rendered = render_in_chromium(tmp_path / "out/report.html")
    assert rendered["errors"] == []
    assert len(rendered["images"]) == len(DIFFERENCE_PLOTS)
    assert all(complete and width > 100 for complete, width, _ in rendered["images"])
