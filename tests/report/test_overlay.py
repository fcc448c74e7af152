import matplotlib.text
import numpy as np
import pytest
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


def _planes_case():
    reference = np.zeros((30, 24, 12), np.uint8)
    reference[8:20, 6:18, 3:9] = 1
    reference[22:26, 4:8, 5:7] = 2
    prediction = reference.copy()
    prediction[8:12] = 0  # label 1 under-segmented on one side
    return reference, prediction


def test_planes_figure_names_the_planes_of_a_ras_image():
    from medseg.report import planes_figure

    reference, prediction = _planes_case()
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    fig = planes_figure(np.zeros(reference.shape, np.float32), reference, prediction, affine,
                        {1: "hippocampus", 2: "cyst"})  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes]
    # through the median wrong voxel: the wrong voxels span x 8-11, y 6-17, z 3-8
    assert titles == ["axial 5", "coronal 11", "sagittal 9"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["hippocampus", "cyst", "reference", "prediction"]
    # the scale bar is in millimetres and the voxels keep their aspect (x 0.8 mm, z 2.5 mm)
    texts = [t.get_text() for ax in fig.axes for t in ax.findobj(matplotlib.text.Text)]
    assert any(t.endswith(" mm") for t in texts)
    sagittal = fig.axes[2].images[0]
    assert tuple(sagittal.get_extent()) == pytest.approx((0.0, 24 * 0.8, 0.0, 12 * 2.5))


def test_planes_figure_draws_each_label_in_its_palette_colour(tmp_path):
    from medseg.report import planes_figure
    from medseg.report.overlay import PALETTE, label_colour

    assert len(set(PALETTE)) == len(PALETTE) == 60
    assert label_colour(1) == PALETTE[0] and label_colour(61) == PALETTE[0]
    reference, prediction = _planes_case()
    image = np.random.default_rng(0).normal(size=reference.shape).astype(np.float32)
    fig = planes_figure(image, reference, prediction, np.eye(4), {1: "a", 2: "b"})
    fig.savefig(tmp_path / "p.png", dpi=100)
    for label in (1, 2):
        rgb = [int(label_colour(label)[i : i + 2], 16) for i in (1, 3, 5)]
        assert _colour_pixels(tmp_path / "p.png", rgb) > 10, f"label {label}"


def test_planes_figure_of_a_2d_image_has_one_panel():
    from medseg.report import planes_figure

    reference = np.zeros((20, 30), np.uint8)
    reference[5:15, 5:25] = 1
    fig = planes_figure(np.zeros((20, 30), np.float32), reference, reference, np.eye(4), {1: "x"})
    assert len(fig.axes) == 1
    assert tuple(fig.axes[0].images[0].get_extent()) == (0.0, 30.0, 0.0, 20.0)
