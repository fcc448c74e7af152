"""Compressed DICOM in: every transfer syntax pydicom's bundled test files use, each checked
against the uncompressed (or losslessly compressed) twin pydicom ships, else against an
independent decoder (GDCM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.errors import ImageReadError
from medseg.io import read_dicom_file, read_image
from medseg.io.dicom import decode_pixels

FILES = Path(pydicom.__file__).parent / "data" / "test_files"

#: (twin, compressed): decoded voxel for voxel equal, on the same grid.
LOSSLESS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("rtdose_1frame.dcm", "rtdose_rle_1frame.dcm"),  # 32-bit RLE
    ("SC_rgb_rle.dcm", "SC_rgb_jpeg_gdcm.dcm"),  # JPEG lossless, process 14 SV1, RGB
    ("SC_rgb_rle.dcm", "SC_rgb_gdcm_KY.dcm"),  # JPEG 2000, RGB
    ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm"),
]

#: (twin, lossy): the same picture within lossy-compression error. A colour transform
#: missed or applied twice moves the mean by tens of grey values.
LOSSY = [
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cr.dcm"),  # JPEG baseline, RGB
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm"),  # baseline, YBR_FULL
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm"),  # baseline, YBR_FULL_422
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm"),
    ("SC_rgb_rle.dcm", "SC_rgb_dcmtk_+eb+cy+s4.dcm"),
    ("SC_rgb_rle.dcm", "SC_rgb_jpeg_dcmtk.dcm"),
    ("SC_rgb_rle.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm"),
    ("SC_rgb_rle.dcm", "SC_ybr_full_422_uncompressed.dcm"),  # subsampled chroma, native
    ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_jpeg.dcm"),  # 3x3: odd sizes
    ("SC_rgb_jpeg_dcmd.dcm", "SC_rgb_jpeg.dcm"),
    ("SC_rgb_jpeg_dcmd.dcm", "SC_jpeg_no_color_transform.dcm"),  # APP14: no colour transform
]

#: JPEG-LS near-lossless: every pixel within NEAR (2 in these files) of the source.
NEAR_LOSSLESS = [
    ("SC_rgb_rle.dcm", "SC_rgb_jls_lossy_line.dcm"),
    ("SC_rgb_rle.dcm", "SC_rgb_jls_lossy_sample.dcm"),
]

#: No twin shipped: checked against GDCM, a decoder independent of pylibjpeg.
NO_TWIN = [
    "JPEG2000.dcm",
    "693_J2KI.dcm",
    "J2K_pixelrep_mismatch.dcm",  # the J2K stream's signedness disagrees with the header
    "GDCMJ2K_TextGBR.dcm",
    "examples_jpeg2k.dcm",  # YBR_RCT
    "JPEGLSNearLossless_08.dcm",
    "JPEGLSNearLossless_16.dcm",
]


def _read(name: str):
    return read_dicom_file(FILES / name)


@pytest.mark.parametrize(("twin", "compressed"), LOSSLESS)
def test_lossless_files_equal_their_twin_voxel_for_voxel(twin, compressed):
    ours, reference = _read(compressed), _read(twin)
    assert ours.array.dtype == reference.array.dtype
    np.testing.assert_array_equal(ours.array, reference.array)
    np.testing.assert_array_equal(ours.affine, reference.affine)


@pytest.mark.parametrize(("twin", "compressed"), LOSSY)
def test_lossy_files_show_their_twins_picture(twin, compressed):
    ours, reference = _read(compressed), _read(twin)
    assert ours.array.shape == reference.array.shape == (3, *ours.array.shape[1:3], 1)
    error = np.abs(ours.array.astype(np.float64) - reference.array)
    assert error.mean() < 3.0, f"mean error {error.mean():.2f} grey values"
    np.testing.assert_array_equal(ours.affine, reference.affine)


@pytest.mark.parametrize(("twin", "compressed"), NEAR_LOSSLESS)
def test_near_lossless_jpeg_ls_stays_within_its_bound(twin, compressed):
    error = np.abs(_read(compressed).array.astype(np.int64) - _read(twin).array)
    assert error.max() <= 2


@pytest.mark.parametrize("name", NO_TWIN)
def test_files_without_a_twin_agree_with_gdcm(name):
    pytest.importorskip("gdcm", reason="python-gdcm (a test extra) is the independent decoder")
    reference = pydicom.dcmread(FILES / name)
    reference.pixel_array_options(decoding_plugin="gdcm")
    np.testing.assert_array_equal(decode_pixels(FILES / name), reference.pixel_array)
    image = read_image(FILES / name)  # and through the generic reader, on a grid
    assert image.array.shape[1:3] == reference.pixel_array.shape[:2][::-1]


def test_12_bit_jpeg_extended_decodes():
    # no twin and no second decoder (GDCM refuses 12-bit JPEG extended): checked for what
    # the header promises
    extended = _read("JPGExtended.dcm").array
    assert extended.shape == (1, 256, 1024, 1) and extended.dtype == np.uint16
    assert 0 <= extended.min() < extended.max() < 2**12


def test_deflated_files_equal_their_twin(tmp_path):
    # pydicom ships one deflated file (image_dfl.dcm) without a twin: deflate MR_small here
    dataset = pydicom.dcmread(FILES / "MR_small.dcm")
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    dataset.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    assert (tmp_path / "deflated.dcm").stat().st_size < (FILES / "MR_small.dcm").stat().st_size
    deflated = read_dicom_file(tmp_path / "deflated.dcm")
    np.testing.assert_array_equal(deflated.array, _read("MR_small.dcm").array)
    assert _read("image_dfl.dcm").array.shape == (1, 512, 512, 1)


def test_compressed_data_reads_the_same_whatever_else_is_installed():
    # GDCM's JPEG decoder differs from libjpeg's by up to 2 grey values on this file; medseg
    # asks for pylibjpeg first, so installing GDCM changes nothing
    pytest.importorskip("gdcm", reason="python-gdcm (a test extra) is the other decoder")
    name = FILES / "SC_rgb_dcmtk_+eb+cy+n1.dcm"
    decoded = {}
    for plugin in ("pylibjpeg", "gdcm"):
        dataset = pydicom.dcmread(name)
        dataset.pixel_array_options(decoding_plugin=plugin)
        decoded[plugin] = dataset.pixel_array
    assert not np.array_equal(decoded["pylibjpeg"], decoded["gdcm"])
    np.testing.assert_array_equal(decode_pixels(name), decoded["pylibjpeg"])


@pytest.mark.parametrize(
    "name",
    [
        "JPEG-lossy.dcm",  # a broken 12-bit JPEG stream (JPGExtended.dcm is its fixed copy)
        "JPEG2000-embedded-sequence-delimiter.dcm",  # 4 bytes of the J2K stream overwritten
        "MR_truncated.dcm",
    ],
)
def test_undecodable_pixel_data_is_a_one_line_error_naming_the_file(name):
    with pytest.raises(ImageReadError) as caught:
        read_dicom_file(FILES / name)
    message = str(caught.value)
    assert message.startswith(str(FILES / name)) and "\n" not in message
    assert "cannot decode the DICOM pixel data" in message
