"""Benchmark: whole-volume sliding-window inference, medseg against MONAI, on a CT-sized grid.

The same U-Net (by default Hippocampus's plan: patch 40 x 56 x 40, features 16-128, with
--labels output classes), the same weights (seed 0), window, 50 % overlap and Gaussian
weighting (sigma = patch / 8), on the same random normalised volume of --shape voxels:

- medseg: ``medseg.nn.predict_volume`` (softmax probabilities, windows batched);
- MONAI: ``monai.inferers.sliding_window_inference`` with the softmax of the same network as
  its predictor (``mode="gaussian"``, ``sigma_scale=0.125``, the same window batch).

Each side runs in a fresh child process (one after the other), which reports its seconds
and the rise of its peak resident memory and saves its probabilities; the parent compares
the two outputs (largest probability difference, share of voxels with the same most likely
class: the window positions differ slightly between the two libraries), counts the
network's FLOPs per window batch with ``torch.utils.flop_counter.FlopCounterMode`` and times
a large batched ``conv3d`` as this machine's convolution ceiling, then prints the achieved
GFLOP/s of both against it.

Usage: python bench/inference.py [--shape 512 512 300] [--labels 14] [--threads 2]
       (--shape 256 256 150 for a quick run)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PATCH = (40, 56, 40)
FEATURES = [16, 32, 64, 128]
STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]
KERNELS = [[3, 3, 3]] * 4
SW_BATCH = 4


def build_network(labels: int) -> torch.nn.Module:
    """The benchmark's U-Net with seeded weights, in evaluation mode."""
    from medseg.nn import build_network as build

    torch.manual_seed(0)
    network = build("unet", 1, labels, 3, FEATURES, STRIDES, KERNELS, deep_supervision=False)
    return network.eval()


def volume(shape: tuple[int, ...]) -> torch.Tensor:
    """A smooth random normalised volume ``(1, *shape)``, the same in every process."""
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal([max(2, s // 8) for s in shape]).astype(np.float32)
    fine = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None, None], size=shape, mode="trilinear"
    )
    return fine[0]


def run_side(side: str, shape: tuple[int, ...], labels: int, out: Path) -> None:
    """One side's prediction, timed and measured, in this (child) process."""
    sys.path.insert(0, str(Path(__file__).parent))
    from peak_memory import PeakSampler

    network = build_network(labels)
    image = volume(shape)
    sampler = PeakSampler()
    start = time.perf_counter()
    with torch.no_grad():
        if side == "medseg":
            from medseg.nn import predict_volume

            probabilities = predict_volume(network, image, PATCH, SW_BATCH)
        else:
            from monai.inferers import sliding_window_inference

            probabilities = sliding_window_inference(
                image[None], PATCH, SW_BATCH, lambda w: torch.softmax(network(w), 1),
                overlap=0.5, mode="gaussian", sigma_scale=0.125,
            )[0]  # fmt: skip
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    np.save(out / f"{side}.npy", probabilities.numpy().astype(np.float16))
    (out / f"{side}.json").write_text(json.dumps({"seconds": seconds, "peak_mib": peak}))


def network_flops(labels: int) -> float:
    """FLOPs of one forward pass of a batch of SW_BATCH windows."""
    from torch.utils.flop_counter import FlopCounterMode

    network = build_network(labels)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(SW_BATCH, 1, *PATCH))
    return float(counter.get_total_flops())


def conv_ceiling(threads: int) -> float:
    """GFLOP/s of a large batched 3 x 3 x 3 conv3d (32 -> 32 channels) on this CPU."""
    torch.set_num_threads(threads)
    conv = torch.nn.Conv3d(32, 32, 3, padding=1).eval()
    x = torch.randn(4, 32, 48, 48, 48)
    flops = 2 * 32 * 32 * 27 * x.shape[0] * 48**3
    with torch.no_grad():
        conv(x)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def window_count(shape: tuple[int, ...]) -> int:
    """Windows medseg's sliding window places on ``shape``."""
    from medseg.nn.sliding_window import window_starts

    return int(np.prod([len(window_starts(max(s, p), p, 0.5)) for s, p in zip(shape, PATCH)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--labels", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--side", choices=("medseg", "monai"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    if args.side:
        run_side(args.side, shape, args.labels, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for side in ("medseg", "monai"):
            command = [sys.executable, __file__, "--side", side, "--out", tmp, "--shape",
                       *map(str, shape), "--labels", str(args.labels), "--threads",
                       str(args.threads)]  # fmt: skip
            subprocess.run(command, check=True)
            results[side] = json.loads((Path(tmp) / f"{side}.json").read_text())
        ours = np.load(Path(tmp) / "medseg.npy").astype(np.float32)
        theirs = np.load(Path(tmp) / "monai.npy").astype(np.float32)
    flops_per_batch = network_flops(args.labels)
    windows = window_count(shape)
    network_gflop = flops_per_batch / SW_BATCH * windows / 1e9
    ceiling = conv_ceiling(args.threads)
    print(f"volume {shape}, {args.labels} classes, patch {PATCH}, {windows} windows, "
          f"{args.threads} threads; network {network_gflop:.0f} GFLOP; conv3d ceiling "
          f"{ceiling:.1f} GFLOP/s")  # fmt: skip
    for side, result in results.items():
        rate = network_gflop / result["seconds"]
        print(f"{side:7s} {result['seconds']:8.1f} s  peak +{result['peak_mib']:7.0f} MiB  "
              f"{rate:6.1f} GFLOP/s ({100 * rate / ceiling:4.1f} % of the ceiling)")  # fmt: skip
    speed = results["monai"]["seconds"] / results["medseg"]["seconds"]
    same = float((ours.argmax(0) == theirs.argmax(0)).mean())
    print(f"medseg / MONAI throughput: {speed:.2f}x; largest probability difference "
          f"{np.abs(ours - theirs).max():.3g}; same most likely class in {100 * same:.3f} % "
          f"of voxels")  # fmt: skip


if __name__ == "__main__":
    main()
