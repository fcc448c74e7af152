"""Probe: how far each augmentation moves training patches from what a network knows.

A run trained *without* augmentation predicts its own training patches, augmented by one
transform group at a time (the arms of bench/augment_ablation.py, or one transform on every
patch); the mean Dice against the equally transformed labels says how different a problem
the transform poses. A transform that keeps Dice near the unaugmented value adds little to
learn; one that collapses it (a view the network never saw, such as a mirrored anatomy)
makes the training learn that view as well. No training: inference only, a few seconds.

Usage: python bench/augment_probe.py RUN_DIR [--patches 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from augment_ablation import INTENSITY, SPATIAL, arm_settings  # noqa: E402

ARMS = ["none", "all", "mirror", "rotation+scaling", "gamma", "noise", "blur",
        "low_resolution", "brightness+contrast"]  # fmt: skip
ALWAYS = ["rotation", "scaling"]  # also each alone on every patch


def _always(name: str) -> dict[str, object]:
    """Settings with only ``name`` on, at probability 1."""
    off = {f"augmentation.{n}.probability": 0.0 for n in SPATIAL + INTENSITY if n != name}
    return {"augmentation.enabled": True, **off, f"augmentation.{name}.probability": 1.0}


def probe(run: Path, settings: dict[str, object], patches: int, seed: int) -> float:
    """Mean Dice of the run's network on its training patches augmented by ``settings``."""
    from medseg.augment import Augmenter, padded_patch_size
    from medseg.nn.checkpoint import load_weights
    from medseg.runs import Plan, apply_overrides
    from medseg.runs.plan import network_for
    from medseg.train.sampler import PatchSampler, TrainingCase

    plan = apply_overrides(Plan.load(run), settings)
    network = network_for(plan)
    load_weights(network, run / "fold_all" / "model_best.safetensors")
    network.eval()
    lookup = np.zeros(max(plan.label_values) + 1, np.int64)
    lookup[plan.label_values] = np.arange(len(plan.label_values))
    images = sorted((run / "preprocessed").glob("*_image.npy"))
    cases = [
        TrainingCase(p.name, np.load(p), lookup[np.load(str(p).replace("_image", "_label"))])
        for p in images
    ]
    spacing = [1.0] * plan.dim
    sampler = PatchSampler(
        cases, padded_patch_size(plan.patch_size, plan.augmentation, spacing),
        np.random.default_rng(seed), plan.foreground_fraction,
    )  # fmt: skip
    augmenter = Augmenter(plan.augmentation, plan.dim, seed=seed, spacing=spacing)
    scores = []
    with torch.no_grad():
        for _ in range(patches // 16):
            image, target = augmenter(*sampler.sample(16), output_size=plan.patch_size)
            output = network(image)
            prediction = (output[0] if isinstance(output, (list, tuple)) else output).argmax(1)
            for k in range(1, plan.num_classes):
                a, b = prediction == k, target == k
                both = (a.sum((1, 2)) + b.sum((1, 2))).float()
                dice = torch.where(both > 0, 2 * (a & b).sum((1, 2)) / both.clamp(min=1), 1.0)
                scores += dice.tolist()
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a 2D run folder trained without augmentation")
    parser.add_argument("--patches", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for arm in ARMS:
        print(f"{arm:24s} {probe(args.run, arm_settings(arm), args.patches, args.seed):.3f}")
    for name in ALWAYS:
        value = probe(args.run, _always(name), args.patches, args.seed)
        print(f"{name + ' on every patch':24s} {value:.3f}")


if __name__ == "__main__":
    main()
