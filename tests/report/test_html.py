"""The HTML evaluation report: self-contained, complete, and rendered by a real browser."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from medseg.io import Image, spacing_affine, write_image
from medseg.metrics import evaluate_folders, write_evaluation
from medseg.report import find_images_dir, write_report
from medseg.report.plots import PLOTTED_METRICS

AFFINE = spacing_affine((1.0, 1.0, 2.0))


def _dataset(root: Path, cases: int = 7) -> tuple[Path, Path, Path]:
    """images, labels and predictions folders in the nnU-Net layout; case k's prediction
    misses k voxel layers of the reference box, so the worst cases are the last ones."""
    images, labels, preds = root / "imagesTr", root / "labelsTr", root / "preds"
    rng = np.random.default_rng(0)
    for k in range(cases):
        reference = np.zeros((20, 20, 6), np.uint8)
        reference[4:14, 4:14, 1:5] = 1
        reference[15:18, 15:18, 2:4] = 2
        prediction = reference.copy()
        prediction[4 : 4 + k, 4:14, 1:5] = 0
        image = rng.normal(size=reference.shape).astype(np.float32) + 3 * reference
        write_image(Image(image[None], AFFINE), images / f"case_{k}_0000.nii.gz")
        write_image(Image(reference[None], AFFINE), labels / f"case_{k}.nii.gz")
        write_image(Image(prediction[None], AFFINE), preds / f"case_{k}.nii.gz")
    return images, labels, preds


def _data_images(page: str) -> list[bytes]:
    return [
        base64.b64decode(m) for m in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    ]


def test_report_is_self_contained_and_complete(tmp_path: Path) -> None:
    images, labels, preds = _dataset(tmp_path)
    evaluation = evaluate_folders(preds, labels, labels=[1, 2])
    path = write_report(evaluation, tmp_path / "out", images)
    page = path.read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:|//|file:)", page), "no external resources"
    pictures = _data_images(page)
    # one plot per metric, and the 5 worst of 7 cases for each of the 2 labels
    assert len(pictures) == len(PLOTTED_METRICS) + 2 * 5
    for picture in pictures:
        assert picture.startswith(b"\x89PNG")
    # the worst label-1 cases are those with the most missed layers
    worst = re.findall(r"<figcaption>(case_\d+): Dice", page)
    assert worst[:5] == ["case_6", "case_5", "case_4", "case_3", "case_2"]
    assert "95% CI" in page and "empty both" in page


def test_worst_case_overlay_shows_the_image_and_both_contours(tmp_path: Path) -> None:
    images, labels, preds = _dataset(tmp_path, cases=2)
    evaluation = evaluate_folders(preds, labels, labels=[1])
    page = write_report(evaluation, tmp_path / "out", images).read_text()
    overlay = _data_images(page)[len(PLOTTED_METRICS)]
    (tmp_path / "o.png").write_bytes(overlay)
    pixels = np.asarray(PILImage.open(tmp_path / "o.png").convert("RGB")).astype(int)
    green = (np.abs(pixels - [0, 208, 0]).sum(-1) < 60).sum()
    red = (np.abs(pixels - [255, 48, 48]).sum(-1) < 60).sum()
    grey = (
        ((pixels.max(-1) - pixels.min(-1)) < 8) & (pixels.mean(-1) > 20) & (pixels.mean(-1) < 235)
    )
    assert green > 20 and red > 20, "reference and prediction contours"
    assert grey.sum() > 500, "the case's image drawn beneath"


def test_find_images_dir(tmp_path: Path) -> None:
    (tmp_path / "labelsTs").mkdir()
    (tmp_path / "imagesTs").mkdir()
    (tmp_path / "refs").mkdir()
    assert find_images_dir(tmp_path / "labelsTs") == tmp_path / "imagesTs"
    assert find_images_dir(tmp_path / "refs") is None


def test_report_renders_in_headless_chromium(tmp_path: Path, render_in_chromium) -> None:
    images, labels, preds = _dataset(tmp_path, cases=3)
    evaluation = evaluate_folders(preds, labels)
    write_evaluation(evaluation, tmp_path / "out")
    rendered = render_in_chromium(write_report(evaluation, tmp_path / "out", images))
    assert rendered["errors"] == []
    assert rendered["title"] == "Segmentation evaluation"
    assert len(rendered["images"]) == len(PLOTTED_METRICS) + 2 * 3
    for complete, width, alt in rendered["images"]:
        assert complete and width > 100, f"image {alt!r} did not decode"
