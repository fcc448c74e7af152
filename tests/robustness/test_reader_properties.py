"""Property: whatever bytes a file of a supported format holds, reading it either gives an
`Image` or raises medseg's own error — never another exception. Each case starts from a
valid small file, overwrites a few bytes and may cut it short (hypothesis, derandomised so
that the suite is deterministic; bench/fuzz.py does the long, coverage-guided search)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from medseg.errors import MedsegError
from medseg.io import Image, read_image, write_image

FORMATS = (".nii", ".nii.gz", ".nrrd", ".mha", ".png", ".tif", ".dcm")
MUTATIONS = st.tuples(
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    st.floats(0.05, 1.0),
)


def _valid_bytes(suffix: str, folder: Path) -> bytes:
    if suffix == ".dcm":
        return Path(get_testdata_file("CT_small.dcm")).read_bytes()
    shape = (1, 9, 7) if suffix == ".png" else (1, 6, 5, 4)
    array = (np.arange(np.prod(shape)).reshape(shape) % 97).astype(np.uint8)
    path = folder / f"valid{suffix}"
    write_image(Image(array, np.diag([0.5, 0.7, 2.0, 1.0])), path)
    return path.read_bytes()


@pytest.mark.parametrize("suffix", FORMATS)
def test_any_bytes_read_as_an_image_or_a_medseg_error(suffix: str, tmp_path: Path) -> None:
    valid = _valid_bytes(suffix, tmp_path)
    folder = tmp_path / "input"
    folder.mkdir()
    target = folder / f"case{suffix}"

    @settings(
        max_examples=40,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(MUTATIONS)
    def read_mutated(mutation: tuple[list[tuple[float, int]], float]) -> None:
        edits, keep = mutation
        data = bytearray(valid)
        for where, value in edits:
            data[int(where * len(data))] = value
        target.write_bytes(bytes(data[: max(1, int(keep * len(data)))]))
        try:
            image = read_image(folder if suffix == ".dcm" else target)
        except MedsegError:
            return
        assert isinstance(image, Image)

    read_mutated()
