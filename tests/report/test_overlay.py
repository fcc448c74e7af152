import numpy as np
from PIL import Image as PILImage

from medseg.report import save_overlay
from medseg.report.overlay import most_informative_slice


def _colour_pixels(path, rgb):
    pixels = np.asarray(PILImage.open(path).convert("RGB")).astype(int)
    return int((np.abs(pixels - np.array(rgb)).sum(-1) < 60).sum())


def test_overlay_shows_reference_and_prediction_contours(tmp_path):
    image = np.random.default_rng(0).normal(size=(40, 40, 6)).astype(np.float32)
    reference = np.zeros((40, 40, 6), np.uint8)
    reference[10:30, 10:30, 3] = 1
    prediction = np.zeros_like(reference)
    prediction[14:34, 12:32, 3] = 2
    path = save_overlay(image, reference, prediction, tmp_path / "o.png", title="case")
    assert path.is_file()
    assert _colour_pixels(path, (0x00, 0xD0, 0x00)) > 20  # green reference contour
    assert _colour_pixels(path, (0xFF, 0x30, 0x30)) > 20  # red predicted contour
    assert not list(tmp_path.glob(".*"))


def test_overlay_of_a_2d_image_without_reference(tmp_path):
    image = np.zeros((30, 20), np.float32)
    prediction = np.zeros((30, 20), np.uint8)
    prediction[5:15, 5:15] = 1
    path = save_overlay(image, None, prediction, tmp_path / "o.png")
    assert _colour_pixels(path, (0xFF, 0x30, 0x30)) > 10
    assert _colour_pixels(path, (0x00, 0xD0, 0x00)) == 0


def test_most_informative_slice_has_the_most_foreground():
    label = np.zeros((8, 8, 5), np.uint8)
    label[:, :, 1] = 1
    label[:2, :2, 3] = 1
    assert most_informative_slice(label) == 1
