"""A 2D dataset made from the shared 3D Hippocampus crops, shaped like the small 2D sets users
bring (ultrasound, X-ray, dermoscopy): a few hundred 8-bit PNG images of about 200 px, one
lesion-like label (the hippocampus, anterior and posterior merged: one blob), some images
with an empty mask, speckle noise and blur.

From each case: ``--per-case`` slices through the hippocampus and, for about
``--empty-share`` of the images, one slice that holds none of it (a "normal" image). Slices
are upsampled 4x (linear for the image, nearest for the label), multiplied by Rayleigh
speckle, blurred, and scaled to 0-255. The first ``--test-cases`` cases (in a fixed random
order) go to imagesTs/labelsTs, so no subject is in both.

Usage: python bench/make_slices_dataset.py OUT_DIR [--dataset DIR] [--per-case 2]
       [--empty-share 0.18] [--test-cases 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from scipy import ndimage

DATA = Path(os.environ.get("MEDSEG_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data"))


def _slice_images(
    image: np.ndarray, label: np.ndarray, per_case: int, empty: bool, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Axial slices (last axis) through the label, and one without it if ``empty``."""
    area = (label > 0).sum((0, 1))
    inside = np.flatnonzero(area > 0.25 * area.max())
    outside = np.flatnonzero(area == 0)
    chosen = list(rng.choice(inside, size=min(per_case, len(inside)), replace=False))
    if empty and len(outside):
        chosen.append(int(rng.choice(outside)))
    return [(image[:, :, z], (label[:, :, z] > 0).astype(np.uint8)) for z in chosen]


def _ultrasound_like(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """4x upsampled, speckled, blurred and scaled to 8 bits."""
    big = ndimage.zoom(image.astype(np.float64), 4, order=1)
    low, high = np.percentile(big, [1, 99])
    big = np.clip((big - low) / max(high - low, 1e-6), 0, 1)
    speckle = rng.rayleigh(scale=0.8, size=big.shape)
    noisy = ndimage.gaussian_filter(big * speckle, sigma=1.2)
    return np.clip(noisy / np.percentile(noisy, 99.5) * 255, 0, 255).astype(np.uint8)


def main() -> None:
    from medseg.datasets import open_dataset, read_training_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--dataset", type=Path, default=DATA / "Dataset004_Hippocampus")
    parser.add_argument("--per-case", type=int, default=2)
    parser.add_argument("--empty-share", type=float, default=0.18)
    parser.add_argument("--test-cases", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    source = open_dataset(args.dataset)
    cases = [source.training[i] for i in rng.permutation(len(source.training))]
    # one empty slice for this share of images: e / (per_case + e) = share
    empty_probability = args.empty_share * args.per_case / (1 - args.empty_share)
    counts = {"Tr": [0, 0], "Ts": [0, 0]}
    for n, case in enumerate(cases):
        part = "Ts" if n < args.test_cases else "Tr"
        image, label = read_training_case(case, source.spec)
        empty = rng.random() < empty_probability
        for k, (pixels, mask) in enumerate(
            _slice_images(image.array[0], label, args.per_case, empty, rng)
        ):
            name = f"{case.case_id}_s{k}"
            for folder in (f"images{part}", f"labels{part}"):
                (args.out / folder).mkdir(parents=True, exist_ok=True)
            big_mask = np.kron(mask, np.ones((4, 4), np.uint8))
            PILImage.fromarray(_ultrasound_like(pixels, rng)).save(
                args.out / f"images{part}" / f"{name}_0000.png"
            )
            PILImage.fromarray(big_mask).save(args.out / f"labels{part}" / f"{name}.png")
            counts[part][int(not mask.any())] += 1
    spec = {
        "channel_names": {"0": "ultrasound-like"},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": sum(counts["Tr"]),
        "file_ending": ".png",
    }
    (args.out / "dataset.json").write_text(json.dumps(spec, indent=1) + "\n")
    for part, (with_label, without) in counts.items():
        total = with_label + without
        print(f"{part}: {total} images, {without} with an empty mask ({without / total:.0%})")


if __name__ == "__main__":
    main()
