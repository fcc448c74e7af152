"""A small classification dataset for the classifier, evaluation and explanation tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from medseg.io import Image, write_image


def make_dataset(root: Path, dim: int = 2, cases: int = 48, seed: int = 0) -> Path:
    """Noise images; class "spot" (a third of them) also holds a bright square somewhere."""
    rng = np.random.default_rng(seed)
    size = (24, 24) if dim == 2 else (16, 16, 16)
    ending = ".png" if dim == 2 else ".nii.gz"
    rows = []
    for split, count in (("imagesTr", cases), ("imagesTs", 12)):
        (root / split).mkdir(parents=True)
        for k in range(count):
            spot = k % 3 == 0
            pixels = rng.normal(80, 20, size)
            if spot:
                corner = rng.integers(2, 10, dim)
                pixels[tuple(slice(c, c + 5) for c in corner)] += 120
            array = np.clip(pixels, 0, 255).astype(np.uint8)[None]
            case = f"{split[-2:].lower()}{k:03d}"
            write_image(Image(array, np.eye(4)), root / split / f"{case}_0000{ending}")
            rows.append((split, case, "spot" if spot else "plain"))
    for split, table in (("imagesTr", "labels.csv"), ("imagesTs", "labelsTs.csv")):
        with open(root / table, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["case", "class"])
            writer.writerows((c, name) for s, c, name in rows if s == split)
    spec = {"channel_names": {"0": "grey"}, "classes": {"plain": 0, "spot": 1}}
    spec |= {"numTraining": cases, "file_ending": ending}
    (root / "dataset.json").write_text(json.dumps(spec))
    return root
