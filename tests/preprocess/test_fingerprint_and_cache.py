"""The dataset fingerprint and the preprocessed cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import open_dataset
from medseg.errors import ConfigError, MedsegError
from medseg.preprocess import (
    ChannelNormalization,
    Fingerprint,
    Preprocessing,
    cache_is_current,
    compute_fingerprint,
    preprocess_dataset,
)

PREP = Preprocessing(
    target_spacing=[1.6, 1.6, 2.5], normalization=[ChannelNormalization(scheme="zscore_nonzero")]
)


def test_fingerprint_of_the_phantom(phantom3d: Path, tmp_path: Path) -> None:
    fp = compute_fingerprint(open_dataset(phantom3d), quiet=True)
    assert len(fp.cases) == 3 and fp.data_dim == 3
    assert fp.median_shape == [24, 24, 8]
    assert fp.median_spacing == pytest.approx([0.8, 0.8, 2.5])
    assert fp.cases[0].orientation == "RAS"
    channel = fp.channels[0]
    assert channel.name == "CT" and not channel.integer_0_255
    stats = channel.foreground
    assert stats is not None and stats.p0_5 <= stats.mean <= stats.p99_5
    assert set(fp.class_frequency) <= {"1", "2", "3"}
    assert sum(fp.class_frequency.values()) == pytest.approx(1.0)
    for case in fp.cases:
        assert all(c <= s for c, s in zip(case.cropped_shape, case.shape))
        for value, voxels in case.class_voxels.items():
            assert case.class_volume_ml[value] == pytest.approx(voxels * 0.8 * 0.8 * 2.5 / 1000)
    saved = fp.save(tmp_path / "fingerprint.json")
    assert Fingerprint.load(saved) == fp


def test_a_broken_fingerprint_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "fingerprint.json"
    path.write_text('{"version": 1,', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid JSON") as info:
        Fingerprint.load(path)
    assert str(info.value).startswith(f"{path}: ")
    with pytest.raises(ConfigError, match="file not found"):
        Fingerprint.load(tmp_path / "absent.json")


def test_fingerprint_of_real_8_bit_images(isbi_dir: Path) -> None:
    fp = compute_fingerprint(open_dataset(isbi_dir), quiet=True)
    assert fp.channels[0].integer_0_255
    assert fp.median_shape == [512, 512] and fp.data_dim == 2


def test_cache_is_built_reused_and_rebuilt(phantom3d: Path, tmp_path: Path) -> None:
    dataset = open_dataset(phantom3d)
    folder = tmp_path / "cache"
    cases = preprocess_dataset(dataset, PREP, folder, quiet=True)
    assert [c.case_id for c in cases] == [c.case_id for c in dataset.training]
    image, label = cases[0].load()
    assert isinstance(image, np.memmap) and image.dtype == np.float32
    assert image.shape[1:] == label.shape == tuple(cases[0].geometry.shape)
    assert set(np.unique(label)) <= {0, 1, 2, 3}  # label values, never new ones
    assert cache_is_current(folder, dataset, PREP)
    stamp = (folder / f"{cases[0].case_id}_image.npy").stat().st_mtime_ns
    preprocess_dataset(dataset, PREP, folder, quiet=True)  # reused: nothing rewritten
    assert (folder / f"{cases[0].case_id}_image.npy").stat().st_mtime_ns == stamp
    # another plan, or a changed source file, makes it stale
    other = PREP.model_copy(update={"target_spacing": [0.8, 0.8, 2.5]})
    assert not cache_is_current(folder, dataset, other)
    source = dataset.training[0].image_paths[0]
    os.utime(source, (source.stat().st_atime, source.stat().st_mtime + 10))
    assert not cache_is_current(folder, dataset, PREP)
    preprocess_dataset(dataset, PREP, folder, quiet=True)
    assert cache_is_current(folder, dataset, PREP)
    settings = json.loads((folder / "preprocessing.json").read_text())
    assert settings["preprocessing"]["target_spacing"] == [1.6, 1.6, 2.5]


def test_a_bad_case_leaves_no_partial_cache(phantom3d: Path, tmp_path: Path) -> None:
    label = phantom3d / "labelsTr" / "phantom_002.nii.gz"
    label.write_bytes(label.read_bytes()[:100])  # truncated
    folder = tmp_path / "cache"
    with pytest.raises(MedsegError, match="phantom_002"):
        preprocess_dataset(open_dataset(phantom3d), PREP, folder, quiet=True)
    assert not folder.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".cache")]
    assert leftovers == [], "no staging folder left behind"
