"""Mirroring is planned from where the labels lie: never along an axis where two labels keep
their order (Hippocampus: anterior and posterior), along every axis for one label (ISBI)."""

import json

from medseg.datasets import open_dataset
from medseg.preprocess import compute_fingerprint
from medseg.train.mirroring import mirror_decision


def _first_cases(source, target, count):
    for folder in ("imagesTr", "labelsTr"):
        (target / folder).mkdir(parents=True)
    for label in sorted((source / "labelsTr").iterdir())[:count]:
        (target / "labelsTr" / label.name).symlink_to(label)
        image = label.name.replace(".nii.gz", "_0000.nii.gz").replace(".png", "_0000.png")
        (target / "imagesTr" / image).symlink_to(source / "imagesTr" / image)
    spec = json.loads((source / "dataset.json").read_text())
    (target / "dataset.json").write_text(json.dumps({**spec, "numTraining": count}))
    return open_dataset(target)


def test_hippocampus_labels_keep_their_order_so_nothing_is_mirrored(hippocampus_dir, tmp_path):
    fingerprint = compute_fingerprint(_first_cases(hippocampus_dir, tmp_path, 20), jobs=1)
    axes, decision = mirror_decision(fingerprint, slice_axis=None)
    assert axes == [] and "no axis is mirrored" in decision.reason
    # a 2D network slicing along axis 0 numbers its axes without it
    assert mirror_decision(fingerprint, slice_axis=0)[0] == []


def test_one_label_may_be_mirrored_along_every_axis(isbi_dir, tmp_path):
    fingerprint = compute_fingerprint(_first_cases(isbi_dir, tmp_path, 4), jobs=1)
    axes, decision = mirror_decision(fingerprint, slice_axis=None)
    assert axes == [0, 1] and "every axis" in decision.reason
