"""Dataset folders in the nnU-Net v2 / MSD layout, splits, and the built-in phantom."""

from medseg.datasets.folder import (
    Case,
    DatasetFolder,
    group_image_files,
    open_dataset,
    read_case_image,
    read_label,
    read_training_case,
)
from medseg.datasets.schema import DatasetSpec, load_dataset_spec
from medseg.datasets.splits import kfold_splits, read_splits, train_val_split

__all__ = [
    "Case",
    "DatasetFolder",
    "DatasetSpec",
    "group_image_files",
    "kfold_splits",
    "read_splits",
    "load_dataset_spec",
    "open_dataset",
    "read_case_image",
    "read_label",
    "read_training_case",
    "train_val_split",
]
