"""`medseg predict --lesions`: one row per connected component of each predicted label."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from medseg.infer import predict_paths
from medseg.infer.lesions import COLUMNS, lesion_rows
from medseg.io import Image
from medseg.runs import Plan


def test_each_component_of_each_label_is_a_row_with_its_confidence(coarse_run):
    plan = Plan.load(coarse_run)
    value, name = plan.label_values[1], plan.label_names[1]
    labels = np.zeros((1, 20, 20, 10), np.uint8)
    labels[0, 2:5, 2:5, 2:4] = value  # two separate components of the first label
    labels[0, 12:16, 12:16, 5:8] = value
    probabilities = np.zeros((len(plan.label_values), 20, 20, 10))
    probabilities[1][labels[0] == value] = 0.8
    probabilities[1, 13, 13, 6] = 0.97
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    rows = lesion_rows("case7", Image(labels, affine), probabilities, plan)
    assert [r["label"] for r in rows] == [name, name] and [r["lesion"] for r in rows] == [1, 2]
    first, second = rows
    assert (first["centroid_x_mm"], first["centroid_z_mm"]) == (6.0, 12.5)
    assert first["volume_ml"] == pytest.approx(18 * 20 / 1000) and first["bbox_first"] == "2 2 2"
    assert second["confidence_max"] == pytest.approx(0.97)
    assert second["confidence_mean"] == pytest.approx((47 * 0.8 + 0.97) / 48)


def test_predict_writes_the_list_beside_the_label_maps(coarse_run, tmp_path):
    images = coarse_run.parent / "ds" / "imagesTs"
    written = predict_paths(coarse_run, [images], tmp_path / "out", quiet=True, lesions=True)
    assert written[-1] == tmp_path / "out" / "lesions.csv"
    with written[-1].open() as stream:
        assert next(csv.reader(stream)) == COLUMNS
