"""DICOM series reading on a real MR study, pydicom's sample files and synthetic series made
by editing copies of the real files."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medseg.errors import ImageReadError
from medseg.io import is_dicom_folder, read_dicom_file, read_dicom_series, read_image, same_grid

SERIES = ("T1post", "T1prereg", "FLAIRreg", "T2reg", "MaskTumor")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def series_dirs(dicom_study_dir: Path) -> dict[str, Path]:
    """The study's series folders by short name (``13-T1post-21069`` -> ``T1post``)."""
    folders = {p.name.split("-")[1]: p for p in dicom_study_dir.iterdir() if p.is_dir()}
    if not set(SERIES) <= set(folders):
        pytest.skip(f"{dicom_study_dir} lacks some of {SERIES}")
    return folders


def _normal(ds: Dataset) -> np.ndarray:
    orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])


def _by_position(folder: Path) -> list[Path]:
    """The folder's files sorted along the slice normal (the test's own, plain sort)."""
    headers = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in folder.glob("*.dcm")}
    return sorted(
        headers,
        key=lambda p: float(np.dot(headers[p].ImagePositionPatient, _normal(headers[p]))),
    )


def _edited_copy(
    source: Path, target: Path, edit: Callable[[int, Dataset], None] | None = None
) -> Path:
    """Copy a series into ``target``, calling ``edit(k, dataset)`` on the k-th slice by position."""
    target.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(_by_position(source)):
        if edit is None:
            shutil.copy(path, target / path.name)
            continue
        ds = pydicom.dcmread(path)
        edit(k, ds)
        ds.save_as(target / path.name)
    return target


def _itk_series(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK's reading of a series folder as ``(x, y, z)`` array and RAS affine."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    affine = np.eye(4)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    affine[:3, :3] = direction * np.asarray(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0), LPS_TO_RAS @ affine


def _assert_refused(path: Path, match: str, **kwargs: object) -> str:
    with pytest.raises(ImageReadError, match=match) as info:
        if kwargs or path.is_dir():
            read_dicom_series(path, **kwargs)  # type: ignore[arg-type]
        else:
            read_image(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


# --- the real study ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERIES)
def test_series_matches_simpleitk(series_dirs: dict[str, Path], name: str) -> None:
    image = read_image(series_dirs[name])
    array, affine = _itk_series(series_dirs[name])
    assert image.array.shape == (1, 280, 320, 22)
    assert np.issubdtype(image.array.dtype, np.integer)
    assert np.array_equal(image.array[0], array)
    assert np.allclose(image.affine, affine, atol=1e-4)
    assert np.allclose(image.spacing, (0.6875, 0.6875, 6.5), rtol=1e-6)


def test_each_slice_lands_where_its_file_says(series_dirs: dict[str, Path]) -> None:
    """Independently of any sort: every file's pixels sit at the voxel its position maps to."""
    folder = series_dirs["T2reg"]
    image = read_dicom_series(folder)
    inverse = np.linalg.inv(image.affine)
    seen = set()
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ras = LPS_TO_RAS[:3, :3] @ np.asarray(ds.ImagePositionPatient, dtype=float)
        i, j, k = inverse[:3, :3] @ ras + inverse[:3, 3]
        assert abs(i) < 1e-3 and abs(j) < 1e-3 and abs(k - round(k)) < 1e-3
        assert np.array_equal(image.array[0, :, :, round(k)], ds.pixel_array.T)
        seen.add(round(k))
    assert seen == set(range(22))


def test_file_names_do_not_matter(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    """Files renamed in reverse spatial order, with extra non-DICOM files, read the same."""
    original = read_dicom_series(series_dirs["FLAIRreg"])
    ordered = _by_position(series_dirs["FLAIRreg"])
    for k, path in enumerate(reversed(ordered)):
        shutil.copy(path, tmp_path / f"IM{k:04d}")
    (tmp_path / "SOURCE.md").write_text("# notes\n")
    (tmp_path / "DICOMDIR.txt").write_bytes(b"\0" * 300)
    again = read_image(tmp_path)
    assert np.array_equal(again.array, original.array)
    assert np.allclose(again.affine, original.affine, atol=1e-9)


def test_instance_numbers_do_not_matter(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    def edit(k: int, ds: Dataset) -> None:
        ds.InstanceNumber = (7 * k) % 22 + 1  # a scrambled numbering

    folder = _edited_copy(series_dirs["T1post"], tmp_path / "renumbered", edit)
    original = read_dicom_series(series_dirs["T1post"])
    assert np.array_equal(read_dicom_series(folder).array, original.array)


def test_mask_series_is_a_label_map_on_the_t1post_grid(series_dirs: dict[str, Path]) -> None:
    mask = read_image(series_dirs["MaskTumor"])
    t1post = read_image(series_dirs["T1post"])
    assert set(np.unique(mask.array).tolist()) == {0, 1}
    assert np.issubdtype(mask.array.dtype, np.integer)
    assert same_grid(mask, t1post, atol=1e-4)


def test_is_dicom_folder(series_dirs: dict[str, Path], dicom_study_dir: Path) -> None:
    assert is_dicom_folder(series_dirs["T1post"])
    assert not is_dicom_folder(dicom_study_dir)  # only subfolders
    assert not is_dicom_folder(next(series_dirs["T1post"].glob("*.dcm")))  # a file


def test_a_study_folder_of_subfolders_is_not_a_series(dicom_study_dir: Path) -> None:
    with pytest.raises(ImageReadError, match="without DICOM files"):
        read_image(dicom_study_dir)
    _assert_refused(dicom_study_dir, "no DICOM image files", series=None)


# --- several series in one folder ------------------------------------------------------------


@pytest.fixture
def mixed_dir(series_dirs: dict[str, Path], tmp_path: Path) -> Path:
    """T1post, T1prereg and T2reg files side by side in one folder."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("T1post", "T1prereg", "T2reg"):
        for path in series_dirs[name].glob("*.dcm"):
            shutil.copy(path, folder / f"{name}_{path.name}")
    return folder


def test_several_series_are_listed_not_guessed(mixed_dir: Path) -> None:
    message = _assert_refused(mixed_dir, "3 DICOM series")
    for description in ("'T1post'", "'T1pre_reg'", "'T2_reg'"):
        assert description in message
    assert message.count("(22 files)") == 3
    uid = pydicom.dcmread(next(mixed_dir.glob("T2reg_*"))).SeriesInstanceUID
    assert uid in message


def test_series_chosen_by_uid_description_or_substring(
    mixed_dir: Path, series_dirs: dict[str, Path]
) -> None:
    expected = read_dicom_series(series_dirs["T2reg"])
    uid = pydicom.dcmread(next(mixed_dir.glob("T2reg_*"))).SeriesInstanceUID
    for choice in (uid, "T2_reg", "t2"):
        chosen = read_dicom_series(mixed_dir, series=choice)
        assert np.array_equal(chosen.array, expected.array)
        assert np.allclose(chosen.affine, expected.affine)
    assert read_dicom_series(mixed_dir, series="T1post").array.dtype == np.uint16


@pytest.mark.parametrize(("choice", "problem"), [("T1", "matches several"), ("DWI", "none")])
def test_series_choice_must_be_unique(mixed_dir: Path, choice: str, problem: str) -> None:
    _assert_refused(mixed_dir, problem, series=choice)


# --- what is refused -------------------------------------------------------------------------


def test_missing_slice(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = _edited_copy(series_dirs["T1post"], tmp_path / "gap")
    (folder / _by_position(series_dirs["T1post"])[10].name).unlink()
    message = _assert_refused(folder, "missing slice")
    assert "13.000 mm" in message and "6.500 mm" in message


def test_missing_edge_slices_are_not_detectable(
    series_dirs: dict[str, Path], tmp_path: Path
) -> None:
    folder = _edited_copy(series_dirs["T1post"], tmp_path / "edge")
    (folder / _by_position(series_dirs["T1post"])[0].name).unlink()
    assert read_dicom_series(folder).spatial_shape == (280, 320, 21)


def _move_along_normal(distance: Callable[[int], float]) -> Callable[[int, Dataset], None]:
    def edit(k: int, ds: Dataset) -> None:
        shift = distance(k) * _normal(ds)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in np.add(ds.ImagePositionPatient, shift)]

    return edit


def test_non_uniform_spacing(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    # slices from the 12th on move 0.3 mm: one gap of 6.8 mm among gaps of 6.5 mm
    edit = _move_along_normal(lambda k: 0.3 if k >= 11 else 0.0)
    folder = _edited_copy(series_dirs["T1prereg"], tmp_path / "uneven", edit)
    _assert_refused(folder, "non-uniform slice spacing")


def test_spacing_within_tolerance_is_accepted(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    edit = _move_along_normal(lambda k: 0.001 if k == 5 else 0.0)  # 0.015 % of 6.5 mm
    folder = _edited_copy(series_dirs["T1prereg"], tmp_path / "jitter", edit)
    assert read_dicom_series(folder).spatial_shape == (280, 320, 22)


def test_gantry_tilt(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    def edit(k: int, ds: Dataset) -> None:  # each slice 1 mm further along the column direction
        column = np.asarray(ds.ImageOrientationPatient, dtype=float)[3:]
        position = np.add(ds.ImagePositionPatient, k * 1.0 * column)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]

    folder = _edited_copy(series_dirs["T2reg"], tmp_path / "tilt", edit)
    message = _assert_refused(folder, "gantry tilt")
    assert "8.7" in message  # atan(1 / 6.5) = 8.75 degrees


def test_duplicate_position(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = _edited_copy(series_dirs["T2reg"], tmp_path / "duplicate")
    ds = pydicom.dcmread(_by_position(series_dirs["T2reg"])[7])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(folder / "again.dcm")
    message = _assert_refused(folder, "two slices at one position")
    assert "again.dcm" in message


def test_differing_orientation(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    def edit(k: int, ds: Dataset) -> None:
        if k == 4:
            angle = np.radians(3.0)
            ds.ImageOrientationPatient = [
                np.cos(angle),
                np.sin(angle),
                0,
                -np.sin(angle),
                np.cos(angle),
                0,
            ]

    folder = _edited_copy(series_dirs["T2reg"], tmp_path / "rotated", edit)
    _assert_refused(folder, "differ in orientation")


def test_differing_pixel_spacing(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    def edit(k: int, ds: Dataset) -> None:
        if k == 9:
            ds.PixelSpacing = [0.7, 0.7]

    folder = _edited_copy(series_dirs["T2reg"], tmp_path / "spacing", edit)
    _assert_refused(folder, "differ in pixel spacing")


def test_differing_matrix(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    def edit(k: int, ds: Dataset) -> None:
        if k == 3:
            cropped = np.ascontiguousarray(ds.pixel_array[:-16])
            ds.PixelData, ds.Rows = cropped.tobytes(), cropped.shape[0]

    folder = _edited_copy(series_dirs["T2reg"], tmp_path / "matrix", edit)
    _assert_refused(folder, "differ in rows x columns")


def test_zero_pixel_spacing(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PixelSpacing = [0, 0.3125]
    ds.save_as(tmp_path / "zero.dcm")
    _assert_refused(tmp_path / "zero.dcm", "zero or negative spacing")


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")
def test_nan_position(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.ImagePositionPatient = ["nan", "0", "0"]
    ds.save_as(tmp_path / "nan.dcm")
    _assert_refused(tmp_path / "nan.dcm", "NaN or infinite")


def test_truncated_file_in_a_series(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    folder = _edited_copy(series_dirs["T1post"], tmp_path / "truncated")
    victim = folder / _by_position(series_dirs["T1post"])[5].name
    victim.write_bytes(victim.read_bytes()[:60_000])
    with pytest.raises(ImageReadError, match="holds 60000: truncated or corrupt") as info:
        read_image(folder)
    assert str(victim) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "content", [b"", b"garbage" * 100, b"\0" * 128 + b"DICM" + b"\x02\x00\x10"]
)
def test_broken_single_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.dcm"
    path.write_bytes(content)
    _assert_refused(path, "DICOM")


def test_pydicoms_truncated_sample() -> None:
    _assert_refused(Path(get_testdata_file("MR_truncated.dcm")), "DICOM")


def test_folder_without_dicom_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    _assert_refused(tmp_path, "no DICOM image files", series=None)


# --- single files, rescale, multi-frame ------------------------------------------------------


def test_ct_small_comes_out_in_hounsfield_units() -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    image = read_image(path)
    assert image.array.dtype == np.float32
    assert image.array.shape == (1, 128, 128, 1)
    expected = (ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).T
    assert np.array_equal(image.array[0, :, :, 0], expected.astype(np.float32))
    assert np.allclose(image.spacing, (0.661468, 0.661468, 5.0))
    lps_origin = np.asarray(ds.ImagePositionPatient, dtype=float)
    assert np.allclose(image.affine[:3, 3], lps_origin * [-1, -1, 1])


def test_mr_small_keeps_its_integers() -> None:
    path = get_testdata_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom_file(path)
    assert image.array.dtype == ds.pixel_array.dtype
    assert np.array_equal(image.array[0, :, :, 0], ds.pixel_array.T)
    assert np.allclose(image.spacing, (0.3125, 0.3125, 0.8))  # SliceThickness: no spacing tag


def test_one_slice_prefers_spacing_between_slices(tmp_path: Path) -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.SpacingBetweenSlices = "1.5"
    ds.save_as(tmp_path / "IM0001")  # no suffix: found by the DICM marker
    assert np.isclose(read_image(tmp_path / "IM0001").spacing[2], 1.5)


def test_rescale_per_slice_gives_float32(series_dirs: dict[str, Path], tmp_path: Path) -> None:
    def edit(k: int, ds: Dataset) -> None:
        ds.RescaleSlope, ds.RescaleIntercept = str(1 + k % 3), str(-10 * k)

    folder = _edited_copy(series_dirs["T2reg"], tmp_path / "rescaled", edit)
    raw = read_dicom_series(series_dirs["T2reg"]).array
    image = read_dicom_series(folder)
    assert image.array.dtype == np.float32
    for k in range(22):
        expected = raw[..., k].astype(np.float64) * (1 + k % 3) - 10 * k
        assert np.array_equal(image.array[..., k], expected.astype(np.float32))


def _enhanced_multiframe(folder: Path, target: Path, slope: float, intercept: float) -> Path:
    """One enhanced multi-frame file made of a series' slices, frames in a shuffled order."""
    ordered = [pydicom.dcmread(p) for p in _by_position(folder)]
    order = np.random.default_rng(3).permutation(len(ordered))
    first = ordered[0]
    ds = pydicom.dcmread(_by_position(folder)[0])
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, keyword)
    ds.RescaleSlope, ds.RescaleIntercept = "7", "7"  # top level: must lose to the groups
    ds.NumberOfFrames = len(ordered)

    def item(**attributes: object) -> Sequence:
        entry = Dataset()
        for keyword, value in attributes.items():
            setattr(entry, keyword, value)
        return Sequence([entry])

    shared = Dataset()
    shared.PlaneOrientationSequence = item(ImageOrientationPatient=first.ImageOrientationPatient)
    shared.PixelMeasuresSequence = item(PixelSpacing=first.PixelSpacing, SliceThickness="5")
    shared.PixelValueTransformationSequence = item(
        RescaleSlope=str(slope), RescaleIntercept=str(intercept), RescaleType="US"
    )
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames = []
    for k in order:
        frame = Dataset()
        frame.PlanePositionSequence = item(ImagePositionPatient=ordered[k].ImagePositionPatient)
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = b"".join(ordered[k].pixel_array.tobytes() for k in order)
    ds.save_as(target)
    return target


def test_enhanced_multiframe_equals_the_series(
    series_dirs: dict[str, Path], tmp_path: Path
) -> None:
    series = read_dicom_series(series_dirs["FLAIRreg"])
    path = _enhanced_multiframe(series_dirs["FLAIRreg"], tmp_path / "enhanced.dcm", 1.0, 0.0)
    image = read_image(path)
    assert image.array.dtype == series.array.dtype
    assert np.array_equal(image.array, series.array)
    assert np.allclose(image.affine, series.affine, atol=1e-6)
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(path, folder / "frames")
    assert np.array_equal(read_image(folder).array, series.array)


def test_enhanced_multiframe_rescale_comes_from_its_groups(
    series_dirs: dict[str, Path], tmp_path: Path
) -> None:
    series = read_dicom_series(series_dirs["FLAIRreg"])
    path = _enhanced_multiframe(series_dirs["FLAIRreg"], tmp_path / "scaled.dcm", 0.5, -3.0)
    image = read_image(path)
    assert image.array.dtype == np.float32
    assert np.array_equal(image.array, (series.array * 0.5 - 3.0).astype(np.float32))


def test_multiframe_segmentation_with_one_frame() -> None:
    """pydicom's liver_1frame.dcm: geometry only in the functional groups."""
    image = read_image(get_testdata_file("liver_1frame.dcm"))
    assert image.array.shape == (1, 512, 512, 1)
    assert np.allclose(image.affine[:3, 3], (235.2, 226.8, -128.69))
    assert np.allclose(image.spacing, (0.810547, 0.810547, 1.0))
