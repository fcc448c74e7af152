"""Benchmark: one network's windows through PyTorch, onnxruntime float32 and onnxruntime int8.

For each network size (Hippocampus's plan: patch 40 x 56 x 40, features 16-128; and a
larger CT-style one: patch 96 x 96 x 96, features 32-256), the same seeded weights are
exported with ``medseg.export`` (``torch.onnx``, opset 18) and quantised with
``medseg.export.quantize_onnx`` (QDQ, per-channel int8 weights, uint8 activations,
calibrated on 4 smooth random windows). Each engine runs the same batch of windows with
--threads threads; the best of --repeats runs is kept. Printed: milliseconds per window,
the ratio to PyTorch, onnxruntime float32's largest logit difference to PyTorch, and the
share of voxels where int8's most likely class is PyTorch's (random weights: a harsh test,
a trained network's margins are wider; ``medseg export --quantize int8`` reports Dice on
real validation cases).

Usage: python bench/export.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

NETWORKS = {
    "hippocampus": ((40, 56, 40), [16, 32, 64, 128], 2, 3),
    "ct": ((96, 96, 96), [32, 64, 128, 256], 2, 14),
}


def smooth_windows(count: int, batch: int, patch: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """``count`` batches of smooth, unit-variance random windows."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        coarse = torch.from_numpy(rng.standard_normal((batch, 1, *[p // 8 for p in patch])))
        fine = torch.nn.functional.interpolate(coarse.float(), size=patch, mode="trilinear")
        out.append((fine / fine.std()).numpy())
    return out


def best_seconds(run, repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(name: str, threads: int, repeats: int, folder: Path) -> None:
    from medseg.export.onnx import OnnxNetwork
    from medseg.export.quantize import quantize_onnx
    from medseg.nn import build_network

    patch, features, batch, labels = NETWORKS[name]
    strides = [[1, 1, 1]] + [[2, 2, 2]] * (len(features) - 1)
    torch.manual_seed(0)
    network = build_network("unet", 1, labels, 3, features, strides, [[3, 3, 3]] * len(features),
                            deep_supervision=False).eval()  # fmt: skip
    example = torch.from_numpy(smooth_windows(1, batch, patch, 1)[0])
    float_path, int8_path = folder / f"{name}.onnx", folder / f"{name}_int8.onnx"
    torch.onnx.export(network, (example,), float_path, input_names=["image"],
                      output_names=["logits"], opset_version=18, dynamo=True,
                      external_data=False, verbose=False,
                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))  # fmt: skip
    quantize_onnx(float_path, int8_path, smooth_windows(4, 1, patch, 2))
    engines = {"pytorch": network, "onnxruntime": OnnxNetwork(float_path, threads),
               "onnxruntime int8": OnnxNetwork(int8_path, threads)}  # fmt: skip
    torch.set_num_threads(threads)
    outputs, seconds = {}, {}
    with torch.no_grad():
        for engine, model in engines.items():
            seconds[engine] = best_seconds(lambda m=model: m(example), repeats)
            outputs[engine] = model(example)
    reference = outputs["pytorch"]
    print(f"{name}: patch {patch}, features {features[0]}-{features[-1]}, batch {batch}, "
          f"{threads} threads")  # fmt: skip
    for engine, value in seconds.items():
        ratio = seconds["pytorch"] / value
        line = f"  {engine:17s} {1000 * value / batch:8.1f} ms/window  x{ratio:4.2f}"
        if engine == "onnxruntime":
            line += f"  max logit difference {(outputs[engine] - reference).abs().max():.1e}"
        if engine == "onnxruntime int8":
            same = (outputs[engine].argmax(1) == reference.argmax(1)).float().mean()
            line += f"  same most likely class in {100 * float(same):.1f} % of voxels"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--networks", nargs="+", choices=sorted(NETWORKS), default=list(NETWORKS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.networks:
            measure(name, args.threads, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
