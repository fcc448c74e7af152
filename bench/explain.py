"""Benchmark: seconds per Grad-CAM map of a 3D case — medseg's hooks against captum's
LayerGradCam on the same trained network, layer, input and target, in one process; and the
whole `medseg explain` of one case (every label, NIfTI + PNGs + feature views).

Usage: python bench/explain.py RUN_DIR IMAGE [--repeats 5]
       (e.g. a Hippocampus run and one of its test images)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from captum.attr import LayerGradCam

    from medseg.explain.explain import explain_cases
    from medseg.explain.gradcam import find_layer, grad_cam
    from medseg.infer.predict import load_trained_model
    from medseg.io import read_image
    from medseg.preprocess import preprocess_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("image", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = load_trained_model(args.run_dir, "cpu", folds=None)
    network = model.networks[0]
    plan = model.config
    array, _ = preprocess_image(read_image(args.image), plan.preprocessing, args.image)
    inputs = torch.from_numpy(array)[None]
    layer = find_layer(network, f"encoder.{len(plan.features) - 1}")
    label = 1

    def target(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, label].flatten(1).sum(1)

    def summed(x: torch.Tensor) -> torch.Tensor:
        return network(x).flatten(2).sum(2)

    ours, theirs = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        mine = grad_cam(network, layer, inputs, target)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = LayerGradCam(summed, layer).attribute(
            inputs, target=label, relu_attributions=True
        )
        theirs.append(time.perf_counter() - start)
    difference = float((mine - reference[:, 0]).detach().abs().max())
    print(f"input {tuple(inputs.shape)} (preprocessed), layer encoder.{len(plan.features) - 1}")
    mine_ms, their_ms = np.median(ours) * 1000, np.median(theirs) * 1000
    print(f"medseg grad_cam     {mine_ms:8.1f} ms per map (median of {args.repeats})")
    print(f"captum LayerGradCam {their_ms:8.1f} ms per map")
    print(f"ratio captum / medseg {their_ms / mine_ms:.2f}; max |difference| {difference:.2e}")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        written = explain_cases(args.run_dir, [args.image], out, device="cpu", quiet=True)
        seconds = time.perf_counter() - start
    maps = sum(p.name.endswith(".nii.gz") for p in written)
    print(f"medseg explain, one case: {seconds:.2f} s for {maps} maps over {len(model.networks)} "
          f"fold network(s), with NIfTI, PNG overlays and feature views")  # fmt: skip


if __name__ == "__main__":
    main()
