"""Classification datasets: the nnU-Net folder with a ``classes`` block and a class table.

```
DatasetNNN_Name/
  dataset.json        channel_names, file_ending, numTraining, "classes": {"normal": 0, ...}
  imagesTr/           {case}_0000{ending} (one file per channel, as for segmentation)
  labels.csv          case,class (the class by name), one row per training case
  splits_final.json   optional: [{"train": [...], "val": [...]}, ...], a fixed split or folds
  imagesTs/           optional test cases
  labelsTs.csv        optional: their classes
```

The same layout as segmentation but for ``labelsTr/`` (a class per case needs no image) so
that the folder, the channel files, the checks and the splits are shared. ``splits_final.json``
uses nnU-Net's format; without it the case-wise k-fold split of `medseg.datasets.splits` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medseg.datasets.folder import (
    Case,
    check_channel_files,
    find_dataset_folder,
    group_image_files,
    visible_files,
)
from medseg.datasets.schema import ClassificationSpec, load_classification_spec
from medseg.datasets.splits import read_splits
from medseg.errors import DatasetError, located
from medseg.io.csv_file import read_csv_rows


@dataclass(frozen=True)
class ClassificationDataset:
    """A validated classification dataset folder; ``classes`` map case -> class index."""

    root: Path
    spec: ClassificationSpec
    training: tuple[Case, ...]
    classes: dict[str, int]
    test: tuple[Case, ...] = ()
    test_classes: dict[str, int] | None = None
    splits: list[tuple[list[str], list[str]]] | None = None


def open_classification_dataset(root: str | Path) -> ClassificationDataset:
    """Open and check a classification dataset folder (no image is read yet).

    `DatasetError` for a missing or malformed dataset.json, labels.csv or split file, a case
    without a class or with two, a class table naming a case that is not in imagesTr, an
    unknown class name, a class no training case has, or a wrong ``numTraining``.
    """
    root = find_dataset_folder(root)
    if not root.is_dir():
        raise DatasetError(located(root, "dataset folder not found"))
    spec = load_classification_spec(root / "dataset.json")
    training = _cases(root / "imagesTr", spec)
    if not training:
        raise DatasetError(located(root / "imagesTr", "folder is empty"))
    if len(training) != spec.num_training:
        problem = f"numTraining is {spec.num_training} but imagesTr holds {len(training)} cases"
        raise DatasetError(located(root / "dataset.json", problem))
    classes = read_class_table(root / "labels.csv", training, spec)
    missing = sorted(set(spec.classes) - {spec.class_names[k] for k in classes.values()})
    if missing:
        raise DatasetError(located(root / "labels.csv", f"no training case of class {missing}"))
    test: tuple[Case, ...] = ()
    test_classes = None
    if (root / "imagesTs").is_dir():
        test = _cases(root / "imagesTs", spec)
        if (root / "labelsTs.csv").is_file():
            test_classes = read_class_table(root / "labelsTs.csv", test, spec)
    splits = None
    if (root / "splits_final.json").is_file():
        splits = read_splits(root / "splits_final.json", [c.case_id for c in training])
    return ClassificationDataset(root, spec, training, classes, test, test_classes, splits)


def _cases(folder: Path, spec: ClassificationSpec) -> tuple[Case, ...]:
    if not folder.is_dir():
        raise DatasetError(located(folder, "folder not found"))
    cases = group_image_files(visible_files(folder), spec.file_ending)
    check_channel_files(cases)
    return tuple(cases)


def read_class_table(
    path: Path, cases: tuple[Case, ...], spec: ClassificationSpec
) -> dict[str, int]:
    """``case,class`` rows -> {case: class index}; every case exactly once."""
    rows = read_csv_rows(path, DatasetError)
    if not rows or [cell.strip() for cell in rows[0]] != ["case", "class"]:
        raise DatasetError(located(path, "the first line must be 'case,class'"))
    known = {case.case_id for case in cases}
    classes: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2:
            raise DatasetError(located(path, f"line {number}: want 'case,class'"))
        case, name = row[0].strip(), row[1].strip()
        if case not in known:
            raise DatasetError(located(path, f"line {number}: no case {case!r} in the images"))
        if name not in spec.classes:
            raise DatasetError(located(path, f"line {number}: unknown class {name!r}"))
        if case in classes:
            raise DatasetError(located(path, f"line {number}: case {case!r} has a second class"))
        classes[case] = spec.classes[name]
    unlabelled = sorted(known - set(classes))
    if unlabelled:
        problem = f"no class for {len(unlabelled)} case(s), e.g. {unlabelled[0]!r}"
        raise DatasetError(located(path, problem))
    return classes
