"""A classification dataset folder from a MedMNIST ``.npz`` file (``medseg convert medmnist``).

MedMNIST v2 files hold ``{train,val,test}_images`` (N, H, W), (N, H, W, 3) or (N, D, H, W)
as uint8 and ``{train,val,test}_labels`` (N, 1). The official split is kept: train and val
cases go to ``imagesTr`` with ``splits_final.json`` naming them (one fixed fold), test cases to
``imagesTs`` with ``labelsTs.csv``. 2D images become PNG (grey or RGB), 3D ones NIfTI with
1 mm voxels. Cases are named ``{split}_{NNNNN}`` by their index in the file.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from medseg.errors import DatasetError, located
from medseg.io import Image, write_image
from medseg.io.atomic import atomic_folder, write_text_atomic
from medseg.io.limits import check_input_file
from medseg.progress import make_progress

SPLITS = ("train", "val", "test")

#: The most array bytes a MedMNIST file may declare (the largest official 3D set at 64³ holds
#: about 2 GB); checked before anything is inflated.
MAX_BYTES = 16 * 2**30


def convert_medmnist(
    npz: str | Path,
    out: str | Path,
    class_names: list[str] | None = None,
    name: str | None = None,
    quiet: bool = False,
) -> Path:
    """Build the classification dataset folder ``out`` from a MedMNIST ``npz`` file; written
    whole or not at all. ``class_names`` name the classes 0..K-1 (default ``class_0`` ...).

    Examples
    --------
    >>> convert_medmnist("pneumoniamnist.npz", "Dataset201_Pneumonia",
    ...                  ["normal", "pneumonia"])  # doctest: +SKIP
    """
    npz, out = Path(npz), Path(out)
    arrays = _load(npz)
    count = 1 + max(int(arrays[f"{split}_labels"].max(initial=0)) for split in SPLITS)
    names = class_names or [f"class_{k}" for k in range(count)]
    if len(names) < count or len(set(names)) != len(names) or any("," in n for n in names):
        raise DatasetError(
            located(
                npz,
                f"labels 0..{count - 1} need {count} distinct class names without "
                f"commas, got {names}",
            )  # fmt: skip
        )
    missing = sorted(set(range(len(names))) - set(np.unique(arrays["train_labels"]).tolist()))
    if missing:
        absent = [names[k] for k in missing]
        raise DatasetError(located(npz, f"no training case of class {absent}"))
    if out.exists() and any(out.iterdir()):
        raise DatasetError(located(out, "exists and is not empty"))
    three_d = arrays["train_images"].ndim == 4 and arrays["train_images"].shape[-1] != 3
    ending = ".nii.gz" if three_d else ".png"
    with atomic_folder(out) as staging, make_progress(quiet) as progress:
        tables: dict[str, list[tuple[str, str]]] = {}
        for split in SPLITS:
            folder = staging / ("imagesTs" if split == "test" else "imagesTr")
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"][:, 0]
            rows = tables.setdefault(split, [])
            for k in progress.track(range(len(images)), description=f"writing {split}"):
                case = f"{split}_{k:05d}"
                write_image(_image(images[k], three_d), folder / f"{case}_0000{ending}")
                rows.append((case, names[int(labels[k])]))
        _write_folder_files(staging, tables, names, name or out.name, ending, arrays)
    return out


def _load(npz: Path) -> dict[str, np.ndarray]:
    check_input_file(npz, DatasetError)
    try:
        _check_declared_sizes(npz)
        with np.load(npz, allow_pickle=False) as data:
            wanted = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")]
            absent = [key for key in wanted if key not in data.files]
            if absent:
                raise DatasetError(located(npz, f"not a MedMNIST file: no {absent[0]}"))
            arrays = {key: data[key] for key in wanted}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(located(npz, f"not a readable .npz file ({exc})")) from None
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise DatasetError(located(npz, f"{split}_images: want uint8 (N, H, W[, D or 3])"))
        if labels.shape != (len(images), 1) or not np.issubdtype(labels.dtype, np.integer):
            problem = f"{split}_labels: want one integer class per image, got {labels.shape}"
            raise DatasetError(located(npz, problem + " (multi-label sets are not supported)"))
        if labels.size and labels.min() < 0:
            raise DatasetError(located(npz, f"{split}_labels: negative class"))
    return arrays


def _check_declared_sizes(npz: Path) -> None:
    """Every array's declared size within bounds before any is inflated (a zip bomb)."""
    with zipfile.ZipFile(npz) as archive:
        total = 0
        for member in archive.infolist():
            with archive.open(member) as stream:
                major, _ = np.lib.format.read_magic(stream)
                reader = np.lib.format.read_array_header_1_0
                if major != 1:
                    reader = np.lib.format.read_array_header_2_0
                shape, _, dtype = reader(stream)
            total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if total > MAX_BYTES:
        raise DatasetError(located(npz, f"declares {total} bytes of arrays (limit {MAX_BYTES})"))


def _image(pixels: np.ndarray, three_d: bool) -> Image:
    """One case as an `Image`: (rows, columns[, 3]) -> (C, rows, columns); 3D -> (1, D, H, W)."""
    if pixels.ndim == 3 and not three_d:  # RGB
        return Image(np.moveaxis(pixels, -1, 0), np.eye(4))
    return Image(pixels[None], np.eye(4))


def _write_folder_files(
    folder: Path, tables: dict, names: list[str], title: str, ending: str, arrays: dict
) -> None:
    rgb = arrays["train_images"].ndim == 4 and not ending.endswith(".nii.gz")
    channels = {"0": "red", "1": "green", "2": "blue"} if rgb else {"0": "intensity"}
    spec = {
        "name": title,
        "channel_names": channels,
        "classes": {class_name: k for k, class_name in enumerate(names)},
        "numTraining": len(tables["train"]) + len(tables["val"]),
        "file_ending": ending,
        "source": "MedMNIST v2 (official train/val/test split: splits_final.json, imagesTs)",
    }
    write_text_atomic(folder / "dataset.json", json.dumps(spec, indent=2) + "\n")
    write_text_atomic(folder / "labels.csv", _csv(tables["train"] + tables["val"]))
    write_text_atomic(folder / "labelsTs.csv", _csv(tables["test"]))
    split = [{"train": [c for c, _ in tables["train"]], "val": [c for c, _ in tables["val"]]}]
    write_text_atomic(folder / "splits_final.json", json.dumps(split) + "\n")


def _csv(rows: list[tuple[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["case", "class"])
    writer.writerows(rows)
    return buffer.getvalue()
