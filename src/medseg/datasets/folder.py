"""The nnU-Net v2 raw dataset folder: finding cases, reading and checking them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medseg.datasets.schema import DatasetSpec, load_dataset_spec
from medseg.errors import DatasetError, located
from medseg.io import Image, image_suffix, read_image, same_grid

_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Case:
    """One case: its channel files in channel order and, for training cases, its label file."""

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None = None


@dataclass(frozen=True)
class DatasetFolder:
    """A validated dataset folder: ``dataset.json``, training cases and optional test cases."""

    root: Path
    spec: DatasetSpec
    training: tuple[Case, ...]
    test: tuple[Case, ...]

    def case(self, case_id: str) -> Case:
        """The training case with this identifier."""
        for case in self.training:
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)


#: Header formats whose voxels live in a separate data file (.raw, .zraw, .raw.gz ...).
_DETACHED_HEADERS = (".mhd", ".nhdr")


def visible_files(folder: Path) -> list[Path]:
    """The files of ``folder`` that are not hidden (``.name``), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def group_image_files(
    paths: Iterable[Path], ending: str | None = None, channel_suffixes: bool = True
) -> list[Case]:
    """Group image files into cases by their ``_CCCC`` channel suffix.

    ``brain_0000.nii.gz`` and ``brain_0001.nii.gz`` form case ``brain`` with two channel
    files; a file without the suffix is a case of its own (all its channels in one file, as
    in MSD's 4D NIfTI or an RGB PNG). Without ``channel_suffixes`` every file is a case of
    its own (MSD's layout). Files of other types are skipped when ``ending`` is None and
    rejected otherwise.

    Examples
    --------
    >>> cases = group_image_files([Path("a_0000.png"), Path("a_0001.png"), Path("b.png")])
    >>> [(c.case_id, len(c.image_paths)) for c in cases]
    [('a', 2), ('b', 1)]
    """
    channels: dict[str, dict[int, Path]] = {}
    for path in paths:
        suffix = image_suffix(path)
        if suffix is None and ending in _DETACHED_HEADERS:
            continue  # the data file beside a .mhd/.nhdr header
        if ending is not None and not path.name.endswith(ending):
            raise DatasetError(located(path, f"file does not end with '{ending}'"))
        if suffix is None:
            continue
        stem = path.name[: -len(suffix)]
        match = _CHANNEL.match(stem) if channel_suffixes else None
        case_id, channel = (match["case"], int(match["channel"])) if match else (stem, 0)
        files = channels.setdefault(case_id, {})
        if channel in files:
            raise DatasetError(located(path, f"channel {channel} of case '{case_id}' given twice"))
        files[channel] = path
    cases = []
    for case_id in sorted(channels):
        files = channels[case_id]
        missing = sorted(set(range(max(files) + 1)) - set(files))
        if missing:
            expected = files[max(files)].parent / f"{case_id}_{missing[0]:04d}"
            raise DatasetError(located(expected, f"missing channel {missing[0]} of '{case_id}'"))
        cases.append(Case(case_id, tuple(files[c] for c in sorted(files))))
    return cases


def check_channel_files(cases: Sequence[Case]) -> None:
    """Every case must have as many channel files as the others (a missing last channel)."""
    counts = [len(c.image_paths) for c in cases]
    expected = max(counts)
    for case in cases:
        if len(case.image_paths) < expected:
            missing = len(case.image_paths)
            where = case.image_paths[0].parent / f"{case.case_id}_{missing:04d}"
            raise DatasetError(
                located(
                    where,
                    f"missing channel {missing} of '{case.case_id}' "
                    f"(other cases have {expected} channel files)",
                )
            )


#: Environment variables naming folders of datasets, looked in in this order.
RAW_VARIABLES = ("MEDSEG_RAW", "nnUNet_raw")
_DATASET_NAME = re.compile(r"Dataset(\d{3})_[A-Za-z0-9._-]+")


def find_dataset_folder(name: str | Path) -> Path:
    """The dataset folder ``name`` means: a path as given when it exists; else a dataset ID
    (``4``, ``004``) or name (``Dataset004_Hippocampus``) looked up, as nnU-Net does, in the
    folders of ``$MEDSEG_RAW`` and ``$nnUNet_raw``. Anything else comes back as given (the
    caller then says it is not found); `DatasetError` when an ID matches several folders.

    Examples
    --------
    >>> find_dataset_folder("no/such/folder")
    PosixPath('no/such/folder')
    """
    path = Path(name)
    text = str(name)
    if path.exists() or not (text.isdigit() and len(text) <= 3 or _DATASET_NAME.fullmatch(text)):
        return path
    roots = [Path(os.environ[v]) for v in RAW_VARIABLES if os.environ.get(v)]
    for raw in roots:
        if not text.isdigit():
            if (raw / text).is_dir():
                return raw / text
            continue
        found = sorted(p for p in raw.glob(f"Dataset{int(text):03d}_*") if p.is_dir())
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise DatasetError(located(raw, f"dataset {text} is ambiguous: {names}"))
        if found:
            return found[0]
    if not roots:
        problem = "not a folder, and neither MEDSEG_RAW nor nnUNet_raw is set to look it up in"
        raise DatasetError(located(path, problem))
    where = ", ".join(f"${v}" for v in RAW_VARIABLES if os.environ.get(v))
    raise DatasetError(located(path, f"no such dataset folder here or in {where}"))


def open_dataset(root: str | Path) -> DatasetFolder:
    """Open and check an nnU-Net v2 raw dataset folder (no image is read yet); ``root`` may
    also be a dataset ID or name under ``$nnUNet_raw`` (`find_dataset_folder`).

    Raises `DatasetError` for a missing or malformed ``dataset.json``, an empty ``imagesTr``,
    an image without a label or a label without an image, a missing channel file, or a case
    count that differs from ``numTraining``.
    """
    root = find_dataset_folder(root)
    if not root.is_dir():
        raise DatasetError(located(root, "dataset folder not found"))
    spec = load_dataset_spec(root / "dataset.json")
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise DatasetError(located(folder, "folder not found"))
    image_files = visible_files(images_dir)
    if not image_files:
        raise DatasetError(located(images_dir, "folder is empty"))
    cases = group_image_files(image_files, spec.file_ending, not spec.single_file_cases)
    check_channel_files(cases)
    label_files = visible_files(labels_dir)
    if spec.file_ending in _DETACHED_HEADERS:  # skip the data files beside the headers
        label_files = [p for p in label_files if image_suffix(p) is not None]
    labels = {p.name[: -len(spec.file_ending)]: p for p in label_files}
    for name, path in labels.items():
        if not path.name.endswith(spec.file_ending):
            raise DatasetError(located(path, f"file does not end with '{spec.file_ending}'"))
        if name not in {c.case_id for c in cases}:
            raise DatasetError(located(path, "label has no image in imagesTr"))
    training = []
    for case in cases:
        if case.case_id not in labels:
            raise DatasetError(located(case.image_paths[0], "image has no label in labelsTr"))
        training.append(Case(case.case_id, case.image_paths, labels[case.case_id]))
    if len(training) != spec.num_training:
        raise DatasetError(
            located(
                root / "dataset.json",
                f"numTraining is {spec.num_training} but imagesTr holds {len(training)} cases",
            )
        )
    test: list[Case] = []
    if (root / "imagesTs").is_dir():
        test = group_image_files(
            visible_files(root / "imagesTs"), spec.file_ending, not spec.single_file_cases
        )
    return DatasetFolder(root, spec, tuple(training), tuple(test))


def read_case_image(case: Case, num_channels: int | None = None) -> Image:
    """Read and stack a case's channel files; all must share one voxel grid."""
    images = [read_image(p) for p in case.image_paths]
    first = images[0]
    for path, image in zip(case.image_paths[1:], images[1:], strict=True):
        if not same_grid(first, image):
            raise DatasetError(
                located(path, f"channel grid differs from {case.image_paths[0].name}")
            )
    for path, image in zip(case.image_paths, images, strict=True):
        if not np.isfinite(image.array).all():
            raise DatasetError(located(path, "holds NaN or infinite intensities"))
    array = np.concatenate([np.asarray(im.array, dtype=np.float32) for im in images])
    if num_channels is not None and array.shape[0] != num_channels:
        raise DatasetError(
            located(case.image_paths[0], f"{array.shape[0]} channels, expected {num_channels}")
        )
    return Image(array, first.affine)


def read_label(path: Path, reference: Image, allowed: Iterable[int]) -> np.ndarray:
    """Read a label map, check it matches ``reference``'s grid and holds only ``allowed`` values.

    Returns the label as a ``uint8``/``uint16`` array of the spatial shape.
    """
    label = read_image(path)
    if label.channels != 1:
        raise DatasetError(located(path, f"label has {label.channels} channels, expected 1"))
    if label.spatial_shape != reference.spatial_shape:
        raise DatasetError(
            located(
                path, f"shape {label.spatial_shape} differs from image {reference.spatial_shape}"
            )
        )
    if not same_grid(label, reference):
        raise DatasetError(located(path, "affine differs from its image's affine"))
    data = label.array[0]
    if not np.issubdtype(data.dtype, np.integer) and not (
        np.all(np.isfinite(data)) and np.all(data == np.round(data))
    ):
        raise DatasetError(located(path, "label map holds non-integer values"))
    values = np.unique(data).astype(np.int64)
    undeclared = sorted(set(values.tolist()) - set(allowed))
    if undeclared:
        raise DatasetError(located(path, f"label values {undeclared} are not in dataset.json"))
    dtype = np.uint8 if values.max(initial=0) < 256 else np.uint16
    return data.astype(dtype)


def read_training_case(case: Case, spec: DatasetSpec) -> tuple[Image, np.ndarray]:
    """Read a training case's image and label and check that they belong together."""
    if case.label_path is None:
        raise DatasetError(located(case.image_paths[0], "case has no label"))
    image = read_case_image(case, spec.num_channels)
    label = read_label(case.label_path, image, spec.stored_values)
    return image, label
