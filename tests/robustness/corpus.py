"""A malformed-input corpus, generated (nothing binary is stored): every reader and command
meets inputs that lie about their size, name files outside their folder, are truncated, are
of another format than their name says, or hold values out of range.

Each case is a function registered with `case`: it writes its inputs into its own empty
folder and returns the command line to run and the text the one-line error must name (the
culprit: a file name, or the setting at fault). `CONTROLS` are valid inputs that must work.
The classes follow docs/security.md; see tests/robustness/test_corpus.py for what is asserted.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from medseg.io import Image, write_image

SHAPE = (24, 24, 8)
SPACING = (0.8, 0.8, 2.5)


@dataclass(frozen=True)
class Base:
    """Valid material the cases start from: a dataset and a run folder trained on nothing."""

    dataset: Path
    run: Path

    @property
    def image(self) -> Path:
        return sorted((self.dataset / "imagesTr").glob("*.nii.gz"))[0]

    @property
    def label(self) -> Path:
        return sorted((self.dataset / "labelsTr").glob("*.nii.gz"))[0]


Maker = Callable[[Path, Base], tuple[list[str], str]]
CASES: dict[str, Maker] = {}
CONTROLS: dict[str, Maker] = {}


def case(name: str, control: bool = False) -> Callable[[Maker], Maker]:
    """Register a corpus case (``control``: a valid input that must succeed)."""

    def register(maker: Maker) -> Maker:
        (CONTROLS if control else CASES)[name] = maker
        return maker

    return register


# --- commands ------------------------------------------------------------------------------


def predict(d: Path, base: Base, *inputs: Path, run: Path | None = None) -> list[str]:
    return ["predict", str(run or base.run), *map(str, inputs), "--out", str(d / "out")]


def evaluate(d: Path, pred: Path, ref: Path) -> list[str]:
    return ["evaluate", str(pred), str(ref), "--out", str(d / "out")]


def register_pair(d: Path, fixed: Path, moving: Path, out: Path | None = None) -> list[str]:
    return [
        "register",
        str(fixed),
        str(moving),
        "--out",
        str(out or d / "out"),
        "--method",
        "rigid",
    ]


def atlas(
    d: Path, image: Path, atlas_image: Path, labels: Path, out: Path | None = None
) -> list[str]:
    out = out or d / "out.nii.gz"
    return [
        "atlas-segment",
        str(image),
        "--atlas",
        f"{atlas_image}:{labels}",
        "--out",
        str(out),
        "--method",
        "affine",
    ]


def train(d: Path, dataset: Path, *extra: str) -> list[str]:
    return ["train", str(dataset), "--out", str(d / "out"), "--epochs", "1", *extra]


# --- writers -------------------------------------------------------------------------------


def nifti_header(shape: tuple[int, ...], dtype: object = np.float32) -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.diag([*SPACING, 1.0]), code=1)
    header.set_qform(np.diag([*SPACING, 1.0]), code=1)
    return header


def header_only(path: Path, header: nib.Nifti1Header, extra: bytes = b"") -> Path:
    """A NIfTI file of just a header (and ``extra`` bytes), whatever its declared size."""
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4 + extra
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def volume(path: Path, array: np.ndarray | None = None, affine: np.ndarray | None = None) -> Path:
    array = np.zeros(SHAPE, np.float32) if array is None else array
    affine = np.diag([*SPACING, 1.0]) if affine is None else affine
    write_image(Image(array[None], affine), path)
    return path


def edit_nifti(path: Path, source: Path, edit: Callable[[nib.Nifti1Header], None]) -> Path:
    """A copy of ``source`` with its header edited in place (no validation by nibabel)."""
    image = nib.load(str(source))
    data = np.asanyarray(image.dataobj)
    header = image.header.copy()
    edit(header)
    raw = header.binaryblock + b"\0" * 4 + data.astype(header.get_data_dtype()).tobytes("F")
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def dicom_slices(folder: Path, count: int = 3) -> list[Path]:
    """A small valid CT series (pydicom's CT_small at ``count`` positions)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.ImagePositionPatient = [0.0, 0.0, 5.0 * k]
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{k + 1}"
        ds.InstanceNumber = k + 1
        path = folder / f"slice{k}.dcm"
        ds.save_as(path)
        paths.append(path)
    return paths


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_declaring(path: Path, width: int, height: int, idat: bytes) -> Path:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path


def copy_run(d: Path, base: Base, edit: Callable[[dict], object] | None = None) -> Path:
    """A copy of the base run folder, its plan.json edited by ``edit`` (in place)."""
    run = d / "run"
    (run / "fold_0").mkdir(parents=True)
    for path in base.run.rglob("*"):
        if path.is_file():
            target = run / path.relative_to(base.run)
            target.write_bytes(path.read_bytes())
    if edit is not None:
        plan = json.loads((run / "plan.json").read_text())
        edit(plan)
        (run / "plan.json").write_text(json.dumps(plan))
    return run


def copy_dataset(d: Path, base: Base) -> Path:
    """A copy of the base dataset to spoil."""
    dataset = d / base.dataset.name
    for path in base.dataset.rglob("*"):
        if path.is_file():
            target = dataset / path.relative_to(base.dataset)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return dataset


def edit_dataset_json(dataset: Path, edit: Callable[[dict], object]) -> Path:
    spec = json.loads((dataset / "dataset.json").read_text())
    edit(spec)
    (dataset / "dataset.json").write_text(json.dumps(spec))
    return dataset / "dataset.json"


def deep_json(depth: int = 200_000) -> str:
    return "[" * depth + "]" * depth


def set_path(mapping: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for name in parents:
        mapping = mapping[name]
    mapping[last] = value


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path
