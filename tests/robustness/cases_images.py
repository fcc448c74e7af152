"""Corpus cases for the image readers: NIfTI, NRRD/NHDR, MHA/MHD, PNG, TIFF, JPEG."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
from corpus import (
    SHAPE,
    Base,
    atlas,
    case,
    edit_nifti,
    evaluate,
    fifo,
    header_only,
    nifti_header,
    png_declaring,
    predict,
    random_bytes,
    register_pair,
    volume,
)
from PIL import Image as PILImage

# --- NIfTI: sizes declared, not held ---------------------------------------------------------


@case("nifti-gz-declares-8e9-voxels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = header_only(d / "big.nii.gz", nifti_header((2000, 2000, 2000)))
    return predict(d, base, path), "big.nii.gz"


@case("nifti-declares-32767-cubed")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = header_only(d / "huge.nii", nifti_header((32767, 32767, 32767), np.int16))
    return predict(d, base, path), "huge.nii"


@case("nifti-declares-more-than-it-holds")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = header_only(d / "short.nii", nifti_header((64, 64, 64)), b"\0" * 1000)
    return predict(d, base, path), "short.nii"


@case("nifti-gz-stream-cut-in-half")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    whole = volume(d / "whole.nii.gz", np.random.default_rng(0).random(SHAPE, np.float32))
    path = d / "cut.nii.gz"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return predict(d, base, path), "cut.nii.gz"


@case("nifti-complex-voxels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = header_only(d / "complex.nii", nifti_header(SHAPE, np.complex64), b"\0" * 8 * 4608)
    return predict(d, base, path), "complex.nii"


@case("nifti-rgb24-into-a-grey-model")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    rgb = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
    path = header_only(d / "rgb.nii", nifti_header(SHAPE, rgb), b"\0" * 3 * 4608)
    return predict(d, base, path), "rgb.nii"


@case("nifti-singular-affine")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    def singular(header: object) -> None:
        affine = np.eye(4)
        affine[:3, 1] = affine[:3, 0]
        header.set_sform(affine, code=1)
        header["qform_code"] = 0

    path = edit_nifti(d / "singular.nii.gz", base.image, singular)
    return predict(d, base, path), "singular.nii.gz"


@case("nifti-nan-affine")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    def nan(header: object) -> None:
        header["srow_x"] = [np.nan, 0, 0, 0]
        header["qform_code"] = 0

    path = edit_nifti(d / "nan_affine.nii.gz", base.image, nan)
    return predict(d, base, path), "nan_affine.nii.gz"


@case("nifti-zero-spacing")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    def zero(header: object) -> None:
        header["srow_z"] = [0, 0, 0, 0]
        header["qform_code"] = 0

    path = edit_nifti(d / "flat.nii.gz", base.image, zero)
    return predict(d, base, path), "flat.nii.gz"


@case("nifti-empty-dimension")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = header_only(d / "empty_dim.nii", nifti_header((0, 24, 8)))
    return predict(d, base, path), "empty_dim.nii"


@case("nifti-6d")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = header_only(d / "six.nii", nifti_header((2, 2, 2, 2, 2, 2)), b"\0" * 256)
    return predict(d, base, path), "six.nii"


@case("nifti-random-bytes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, random_bytes(d / "noise.nii.gz")), "noise.nii.gz"


@case("nifti-gzip-of-random-bytes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "gz_noise.nii.gz"
    path.write_bytes(gzip.compress(np.random.default_rng(1).bytes(2048)))
    return predict(d, base, path), "gz_noise.nii.gz"


@case("nifti-empty-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "empty.nii"
    path.write_bytes(b"")
    return predict(d, base, path), "empty.nii"


@case("nifti-text-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "notes.nii"
    path.write_text("these are notes, not an image\n" * 20)
    return predict(d, base, path), "notes.nii"


# --- files that are not files ----------------------------------------------------------------


@case("fifo-named-as-nifti")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, fifo(d / "pipe.nii.gz")), "pipe.nii.gz"


@case("symlink-loop")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    os.symlink(d / "b.nii.gz", d / "a.nii.gz")
    os.symlink(d / "a.nii.gz", d / "b.nii.gz")
    return predict(d, base, d / "a.nii.gz"), "a.nii.gz"


@case("broken-symlink")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    os.symlink(d / "gone.nii.gz", d / "link.nii.gz")
    return predict(d, base, d / "link.nii.gz"), "link.nii.gz"


@case("device-as-image")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    os.symlink("/dev/zero", d / "zero.nii")
    return predict(d, base, d / "zero.nii"), "zero.nii"


@case("folder-named-as-nifti")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "folder.nii.gz").mkdir()
    return register_pair(d, base.image, d / "folder.nii.gz"), "folder.nii.gz"


# --- NRRD and MetaImage: detached headers --------------------------------------------------

NRRD_HEAD = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nendian: little\nencoding: raw\n"
MHD_HEAD = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"


def secret(d: Path) -> Path:
    """A file outside the case's image folder that no header may reach."""
    path = d / "secret.raw"
    path.write_bytes(bytes(range(64)))
    (d / "images").mkdir()
    return path


@case("nhdr-data-file-in-parent-folder")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    secret(d)
    path = d / "images" / "scan.nhdr"
    path.write_text(NRRD_HEAD + "data file: ../secret.raw\n\n")
    return predict(d, base, path), "scan.nhdr"


@case("nhdr-data-file-absolute")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    outside = secret(d)
    path = d / "images" / "scan.nhdr"
    path.write_text(NRRD_HEAD + f"data file: {outside}\n\n")
    return predict(d, base, path), "scan.nhdr"


@case("nhdr-data-file-symlink-out")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    outside = secret(d)
    os.symlink(outside, d / "images" / "inside.raw")
    path = d / "images" / "scan.nhdr"
    path.write_text(NRRD_HEAD + "data file: inside.raw\n\n")
    return predict(d, base, path), "scan.nhdr"


@case("nhdr-data-file-is-fifo")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "images").mkdir()
    fifo(d / "images" / "pipe.raw")
    path = d / "images" / "scan.nhdr"
    path.write_text(NRRD_HEAD + "data file: pipe.raw\n\n")
    return predict(d, base, path), "scan.nhdr"


@case("mhd-data-file-absolute")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    outside = secret(d)
    path = d / "images" / "scan.mhd"
    path.write_text(MHD_HEAD + f"ElementDataFile = {outside}\n")
    return predict(d, base, path), "scan.mhd"


@case("mhd-data-file-in-parent-folder")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    secret(d)
    path = d / "images" / "scan.mhd"
    path.write_text(MHD_HEAD + "ElementDataFile = ../secret.raw\n")
    return predict(d, base, path), "scan.mhd"


@case("mhd-data-file-list")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "images").mkdir()
    (d / "images" / "a.raw").write_bytes(bytes(16))
    path = d / "images" / "scan.mhd"
    path.write_text(MHD_HEAD + "ElementDataFile = LIST\na.raw\na.raw\na.raw\na.raw\n")
    return predict(d, base, path), "scan.mhd"


@case("mhd-data-file-missing")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "scan.mhd"
    path.write_text(MHD_HEAD + "ElementDataFile = nowhere.raw\n")
    return predict(d, base, path), "scan.mhd"


@case("mhd-declares-more-than-its-data-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "data.raw").write_bytes(bytes(64))
    path = d / "scan.mhd"
    path.write_text(MHD_HEAD.replace("4 4 4", "400 400 400") + "ElementDataFile = data.raw\n")
    return predict(d, base, path), "scan.mhd"


@case("mha-declares-8e9-voxels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "big.mha"
    head = MHD_HEAD.replace("4 4 4", "2000 2000 2000") + "ElementDataFile = LOCAL\n"
    path.write_bytes(head.encode() + bytes(64))
    return predict(d, base, path), "big.mha"


@case("nrrd-gzip-declares-8e9-voxels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "big.nrrd"
    head = NRRD_HEAD.replace("4 4 4", "2000 2000 2000").replace("raw", "gzip") + "\n"
    path.write_bytes(head.encode() + gzip.compress(bytes(1000)))
    return predict(d, base, path), "big.nrrd"


@case("nrrd-negative-spacing")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "neg.nrrd"
    path.write_bytes((NRRD_HEAD + "spacings: 1 -1 1\n\n").encode() + bytes(64))
    return predict(d, base, path), "neg.nrrd"


@case("mha-nan-offset")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "nan.mha"
    path.write_bytes(
        (MHD_HEAD + "Offset = nan 0 0\nElementDataFile = LOCAL\n").encode() + bytes(64)
    )
    return predict(d, base, path), "nan.mha"


@case("nrrd-unreadable-sizes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "words.nrrd"
    path.write_bytes(NRRD_HEAD.replace("4 4 4", "a b c").encode() + b"\n" + bytes(64))
    return predict(d, base, path), "words.nrrd"


@case("mha-random-bytes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, random_bytes(d / "noise.mha")), "noise.mha"


# --- PNG, TIFF, JPEG ----------------------------------------------------------------------------


@case("png-decompression-bomb")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = png_declaring(d / "bomb.png", 100_000, 100_000, zlib.compress(bytes(1000)))
    return predict(d, base, path), "bomb.png"


@case("png-declares-more-than-it-holds")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = png_declaring(d / "liar.png", 6000, 6000, zlib.compress(bytes(100)))
    return predict(d, base, path), "liar.png"


@case("png-holding-jpeg-bytes-as-labels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "pred").mkdir()
    (d / "ref").mkdir()
    grey = np.random.default_rng(0).integers(0, 3, (32, 32), dtype=np.uint8)
    PILImage.fromarray(grey).save(d / "pred" / "case.png")
    PILImage.fromarray(grey).save(d / "ref" / "case.png", format="JPEG")
    return evaluate(d, d / "pred", d / "ref"), "case.png"


@case("png-truncated")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    whole = d / "whole.png"
    PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(whole)
    path = d / "cut.png"
    path.write_bytes(whole.read_bytes()[:200])
    whole.unlink()
    return predict(d, base, path), "cut.png"


@case("png-random-bytes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, random_bytes(d / "noise.png")), "noise.png"


@case("jpeg-of-text")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "photo.jpg"
    path.write_text("not a photo")
    return predict(d, base, path), "photo.jpg"


@case("tiff-pages-of-different-sizes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "stack.tif"
    with tifffile.TiffWriter(path) as tif:
        for rows in (16, 16, 12):
            tif.write(np.zeros((rows, 16), np.uint8))
    return predict(d, base, path), "stack.tif"


@case("tiff-pages-in-a-loop")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "loop.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))  # classic little-endian TIFF
    data = bytearray(path.read_bytes())
    first = struct.unpack("<I", data[4:8])[0]
    following = first + 2 + 12 * struct.unpack("<H", data[first : first + 2])[0]
    data[following : following + 4] = struct.pack("<I", first)  # the page is its own next
    path.write_bytes(bytes(data))
    return predict(d, base, path), "loop.tif"


@case("tiff-random-bytes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, random_bytes(d / "noise.tif")), "noise.tif"


# --- register and atlas-segment inputs -----------------------------------------------------


@case("register-moving-truncated")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "moving.nii.gz"
    path.write_bytes(base.image.read_bytes()[:100])
    return register_pair(d, base.image, path), "moving.nii.gz"


@case("register-fixed-labels-of-floats")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    labels = volume(d / "float_labels.nii.gz", np.full(SHAPE, 0.5, np.float32))
    argv = register_pair(d, base.image, base.image) + ["--fixed-labels", str(labels)]
    argv += ["--moving-labels", str(base.label)]
    return argv, "float_labels.nii.gz"


@case("atlas-labels-of-floats")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    labels = volume(d / "float_labels.nii.gz", np.full(SHAPE, 0.5, np.float32))
    return atlas(d, base.image, base.image, labels), "float_labels.nii.gz"


@case("atlas-image-is-fifo")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return atlas(d, fifo(d / "pipe.nii.gz"), base.image, base.label), "pipe.nii.gz"


# --- controls: valid inputs of the same kinds must work ------------------------------------


@case("valid-nifti", control=True)
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, base.image), ""


@case("valid-nhdr-with-its-data-file-beside-it", control=True)
def _(d: Path, base: Base) -> tuple[list[str], str]:
    data = np.asarray(np.random.default_rng(0).random(SHAPE) * 100, np.int16)
    volume(d / "scan.nhdr", data)
    return predict(d, base, d / "scan.nhdr"), ""


@case("valid-symlink-to-an-image", control=True)
def _(d: Path, base: Base) -> tuple[list[str], str]:
    os.symlink(base.image, d / "linked.nii.gz")
    return predict(d, base, d / "linked.nii.gz"), ""
