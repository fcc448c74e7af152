"""The HTML evaluation report: self-contained, complete, print-ready figures, and rendered
(sorting and filtering included) by a real browser."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from medseg.metrics import evaluate_folders, write_evaluation
from medseg.report import find_images_dir, write_report
from medseg.report.html import CASE_METRICS, worst_cases
from medseg.report.overlay import label_colour
from medseg.report.plots import PLOTTED_METRICS, PRINT_DPI


def _data_images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    ]


def _case_table_rows(page: str) -> list[list[str]]:
    table = page.split('id="cases"', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in body.split("<tr>")[1:]]


def test_report_is_self_contained_and_complete(tmp_path: Path, scored_dataset) -> None:
    images, labels, preds = scored_dataset(tmp_path)
    evaluation = evaluate_folders(preds, labels, labels=[1, 2])
    path = write_report(evaluation, tmp_path / "out", images)
    page = path.read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", page), "no external resources"
    pictures = _data_images(page)
    # one plot per metric, and the 5 worst of 7 cases
    assert len(pictures) == len(PLOTTED_METRICS) + 5
    assert all(picture.startswith(b"\x89PNG") for picture in pictures)
    # the worst cases are those with the most missed layers (label 2 is exact in all)
    worst = re.findall(r"<figcaption>(case_\d+): mean Dice", page)
    assert worst == ["case_6", "case_5", "case_4", "case_3", "case_2"]
    assert [case for case, _ in worst_cases(evaluation)] == worst
    assert "95% CI" in page and "empty both" in page
    # every case and label in the sortable table, with each metric's raw value to sort by
    rows = _case_table_rows(page)
    assert len(rows) == 7 * 2 and all(len(r) == 2 + len(CASE_METRICS) for r in rows)
    dice = {(r["case"], r["label"]): r["dice"] for r in evaluation.rows}
    assert f'data-v="{float(dice[("case_6", 1)])!r}"' in page


def test_figures_are_written_as_svg_and_print_resolution_png(tmp_path, scored_dataset) -> None:
    images, labels, preds = scored_dataset(tmp_path, cases=3)
    evaluation = evaluate_folders(preds, labels, labels=[1, 2])
    write_report(evaluation, tmp_path / "out", images)
    figures = tmp_path / "out/figures"
    assert sorted(p.name for p in figures.iterdir()) == sorted(
        f"{metric}{suffix}" for metric in PLOTTED_METRICS for suffix in (".svg", ".png")
    )
    assert (figures / "dice.svg").read_text().lstrip().startswith("<?xml")
    with PILImage.open(figures / "dice.png") as png:
        assert round(png.info["dpi"][0]) == PRINT_DPI
        assert png.size[0] >= 3.4 * PRINT_DPI


def test_worst_case_overlay_shows_the_image_and_each_label_in_its_colour(
    tmp_path: Path, scored_dataset
) -> None:
    images, labels, preds = scored_dataset(tmp_path, cases=2)
    evaluation = evaluate_folders(preds, labels, labels=[1, 2])
    page = write_report(evaluation, tmp_path / "out", images).read_text()
    overlay = _data_images(page)[len(PLOTTED_METRICS)]
    (tmp_path / "o.png").write_bytes(overlay)
    pixels = np.asarray(PILImage.open(tmp_path / "o.png").convert("RGB")).astype(int)

    def count(hex_colour: str) -> int:
        rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
        return int((np.abs(pixels - rgb).sum(-1) < 40).sum())

    assert count(label_colour(1)) > 20 and count(label_colour(2)) > 20, "both labels drawn"
    grey = (
        ((pixels.max(-1) - pixels.min(-1)) < 8) & (pixels.mean(-1) > 20) & (pixels.mean(-1) < 235)
    )
    assert grey.sum() > 500, "the case's image drawn beneath"


def test_find_images_dir(tmp_path: Path) -> None:
    (tmp_path / "labelsTs").mkdir()
    (tmp_path / "imagesTs").mkdir()
    (tmp_path / "refs").mkdir()
    assert find_images_dir(tmp_path / "labelsTs") == tmp_path / "imagesTs"
    assert find_images_dir(tmp_path / "refs") is None


SORT_AND_FILTER = """
const table = document.getElementById("cases");
const dice = Array.from(table.tHead.rows[0].cells).findIndex(c => c.textContent === "Dice");
const firstCases = () => Array.from(table.tBodies[0].rows).slice(0, 2).map(
    r => r.cells[0].textContent + "/" + r.cells[1].textContent + "/" + r.cells[dice].textContent);
table.tHead.rows[0].cells[dice].click();
const ascending = firstCases();
table.tHead.rows[0].cells[dice].click();
const descending = firstCases();
const filter = document.querySelector("input.filter");
filter.value = "case_1";
filter.dispatchEvent(new Event("input"));
const shown = Array.from(table.tBodies[0].rows).filter(r => !r.hidden).length;
return {ascending, descending, shown};
"""


def test_report_renders_sorts_and_filters_in_headless_chromium(
    tmp_path: Path, render_in_chromium, scored_dataset
) -> None:
    images, labels, preds = scored_dataset(tmp_path, cases=3)
    evaluation = evaluate_folders(preds, labels)
    write_evaluation(evaluation, tmp_path / "out")
    rendered = render_in_chromium(
        write_report(evaluation, tmp_path / "out", images), SORT_AND_FILTER
    )
    assert rendered["errors"] == []
    assert rendered["title"] == "Segmentation evaluation"
    assert len(rendered["images"]) == len(PLOTTED_METRICS) + 3
    for complete, width, alt in rendered["images"]:
        assert complete and width > 100, f"image {alt!r} did not decode"
    dice = sorted((r["dice"], r["case"], r["label_name"]) for r in evaluation.rows)
    lowest = [f"{case}/{name}/{value:.3f}" for value, case, name in dice[:2]]
    assert rendered["result"]["ascending"] == lowest
    assert all(row.endswith("/1.000") for row in rendered["result"]["descending"])
    assert rendered["result"]["shown"] == 2  # case_1's two labels
