"""Benchmark: whole-volume sliding-window inference, medseg against MONAI, on a CT-sized grid.

The same U-Net (by default Hippocampus's plan: patch 40 x 56 x 40, features 16-128, with
--labels output classes), the same weights (seed 0), window, 50 % overlap and Gaussian
weighting (sigma = patch / 8), the same window batch (2, what ``medseg predict`` uses for
a 3D network on the CPU), on the same volume (a smooth random
z-scored one of --shape voxels, or with --image a real image, e.g. the 1 mm MNI T1):

- medseg: ``medseg.nn.predict_volume`` keeping the most likely class of each finished
  stretch of windows (what ``medseg predict`` keeps; the probabilities are blended in
  float32 in a buffer one window deep);
- MONAI: ``monai.inferers.sliding_window_inference`` with the softmax of the same network
  as its predictor and medseg's Gaussian map as its ``roi_weight_map`` (MONAI's own
  ``mode="gaussian"`` builds a slightly different discrete kernel), then the argmax;
- pipeline: medseg's whole ``predict_image`` of that volume as a 1 mm NIfTI image (plan:
  1 mm target spacing, z-score): preprocessing, prediction and the way back to its grid;
- compiled (only with ``--sides``): as medseg, the network through ``torch.compile`` as
  ``medseg predict --compile`` runs it (its time includes compiling);
- bfloat16 (only with ``--sides``): as medseg, the network under bfloat16 autocast, what
  ``medseg predict`` does by default on a CPU with native bfloat16 (AMX, AVX-512 BF16);
- monai_bfloat16 (only with ``--sides``): as MONAI, its network under the same autocast
  (what a MONAI user can do by hand), for a comparison at equal precision.

Each side runs in a fresh child process (one after the other) and reports its seconds,
the seconds spent inside the network (timed around each forward pass), the windows it
ran, and its peak resident memory (absolute, and its rise during the work). The parent
compares the class maps of medseg and MONAI, counts the network's FLOPs per window with
``torch.utils.flop_counter.FlopCounterMode``, times a large batched ``conv3d`` as this
machine's convolution ceiling, and prints the achieved GFLOP/s (network part and end to
end) against it (bfloat16 sides against a bfloat16 conv3d timed the same way).

The two libraries place windows differently on most sizes (MONAI steps by a fixed
interval and clamps the last window, medseg spreads them evenly), so their outputs differ
slightly; ``--check`` first runs both on a size where the positions coincide and prints
the largest probability difference, which must be at float32 rounding level.

Usage: python bench/inference.py [--shape 512 512 300] [--labels 14] [--threads 2] [--check]
       python bench/inference.py --image mni152/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz
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
SW_BATCH = 2  # medseg.nn.windows_per_pass for a 3D network on the CPU
CHECK_SHAPE = (100, 112, 80)  # (size - patch) a multiple of patch / 2 on every axis
SIDES = ("medseg", "monai", "pipeline", "compiled", "bfloat16", "monai_bfloat16")
HALF_SIDES = ("bfloat16", "monai_bfloat16")
DEFAULT_SIDES = ("medseg", "monai", "pipeline")


def build_network(labels: int) -> torch.nn.Module:
    """The benchmark's U-Net with seeded weights, in evaluation mode."""
    from medseg.nn import build_network as build

    torch.manual_seed(0)
    network = build("unet", 1, labels, 3, FEATURES, STRIDES, KERNELS, deep_supervision=False)
    return network.eval()


def volume(shape: tuple[int, ...], image: Path | None) -> torch.Tensor:
    """``(1, *shape)`` float32: the z-scored ``image``, or a smooth random normalised
    volume, the same in every process."""
    if image is not None:
        from medseg.io import read_image

        array = read_image(image).array.astype(np.float32)
        return torch.from_numpy((array - array.mean()) / array.std())
    rng = np.random.default_rng(0)
    coarse = rng.standard_normal([max(2, s // 8) for s in shape]).astype(np.float32)
    fine = torch.nn.functional.interpolate(
        torch.from_numpy(coarse)[None, None], size=shape, mode="trilinear"
    )[0]
    return (fine - fine.mean()) / fine.std()


class TimedNetwork:
    """The network, with the seconds spent in it and the windows it saw counted."""

    def __init__(self, network: torch.nn.Module) -> None:
        self.network, self.seconds, self.windows = network, 0.0, 0

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.network(windows)
        self.seconds += time.perf_counter() - start
        self.windows += len(windows)
        return out


def pipeline_model(network: TimedNetwork, labels: int):
    """A `TrainedModel` around ``network`` with a plan like a Hippocampus run's: 1 mm
    target spacing, z-score normalisation, the benchmark's patch and batch."""
    from medseg.infer.predict import TrainedModel
    from medseg.preprocess import ChannelNormalization, Preprocessing
    from medseg.runs import Plan

    plan = Plan(
        in_channels=1, label_values=list(range(labels)),
        label_names=["background"] + [f"organ_{k}" for k in range(1, labels)],
        channel_names=["CT"], file_ending=".nii.gz", data_dim=3, dim=3,
        median_spacing=[1.0] * 3, median_shape=list(PATCH), features=FEATURES,
        strides=STRIDES, kernel_sizes=KERNELS, patch_size=list(PATCH),
        batch_size=SW_BATCH // 2, learning_rate=0.01,
        preprocessing=Preprocessing(
            target_spacing=[1.0] * 3, normalization=[ChannelNormalization(scheme="zscore")]
        ),
    )  # fmt: skip
    return TrainedModel(Path("."), plan, [network], torch.device("cpu"))


def run_side(side: str, args: argparse.Namespace, out: Path) -> None:
    """One side's prediction, timed and measured, in this (child) process."""
    sys.path.insert(0, str(Path(__file__).parent))
    from peak_memory import PeakSampler

    network = TimedNetwork(build_network(args.labels))
    image = volume(tuple(args.shape), args.image)
    if side == "pipeline":
        from medseg.io import Image, write_image

        write_image(Image(image.numpy(), np.eye(4)), out / "volume.nii")
        del image
    sampler = PeakSampler()
    start = time.perf_counter()
    with torch.no_grad():
        classes = predict(side, network, args, out)
    seconds = time.perf_counter() - start
    rise = sampler.stop()
    np.save(out / f"{side}.npy", classes)
    result = {"seconds": seconds, "network_seconds": network.seconds, "windows": network.windows,
              "peak_mib": sampler.peak, "rise_mib": rise}  # fmt: skip
    (out / f"{side}.json").write_text(json.dumps(result))


def predict(side: str, network: TimedNetwork, args: argparse.Namespace, out: Path) -> np.ndarray:
    """``side``'s class map (uint8) of the benchmark volume (probabilities with --check)."""
    if side == "pipeline":
        from medseg.infer.predict import predict_image
        from medseg.io import read_image

        model = pipeline_model(network, args.labels)
        return predict_image(model, read_image(out / "volume.nii")).array[0]
    image = volume(tuple(args.shape), args.image)
    dtype = torch.bfloat16 if side in HALF_SIDES else torch.float32
    if side in ("medseg", "compiled", "bfloat16"):
        from medseg.nn import predict_volume

        if side == "compiled":
            network.network = torch.compile(network.network, dynamic=False)
        argmax = None if args.probabilities else lambda p: p.argmax(0, keepdim=True).byte()
        result = predict_volume(network, image, PATCH, SW_BATCH, reduce=argmax, dtype=dtype)
        return result.numpy() if args.probabilities else result[0].numpy()
    from monai.inferers import sliding_window_inference

    from medseg.nn.sliding_window import gaussian_importance_map

    def softmax(windows: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            logits = network(windows)
        return torch.softmax(logits.float(), 1)

    probabilities = sliding_window_inference(
        image[None], PATCH, SW_BATCH, softmax, overlap=0.5, mode="gaussian",
        roi_weight_map=gaussian_importance_map(PATCH, 0.125),
    )[0]  # fmt: skip
    return probabilities.numpy() if args.probabilities else probabilities.argmax(0).byte().numpy()


def window_flops(labels: int) -> float:
    """FLOPs of the network on one window."""
    from torch.utils.flop_counter import FlopCounterMode

    network = build_network(labels)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(SW_BATCH, 1, *PATCH))
    return float(counter.get_total_flops()) / SW_BATCH


def conv_ceiling(threads: int, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of a large batched 3 x 3 x 3 conv3d (32 -> 32 channels) on this CPU, under
    autocast in ``dtype``."""
    torch.set_num_threads(threads)
    conv = torch.nn.Conv3d(32, 32, 3, padding=1).eval()
    x = torch.randn(4, 32, 48, 48, 48)
    flops = 2 * 32 * 32 * 27 * x.shape[0] * 48**3
    half = dtype != torch.float32
    with torch.no_grad(), torch.autocast("cpu", dtype=dtype if half else None, enabled=half):
        conv(x)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def run_children(args: argparse.Namespace, sides: tuple[str, ...], tmp: str) -> dict:
    """Run each side in a fresh process; their reports."""
    results = {}
    for side in sides:
        command = [sys.executable, __file__, "--side", side, "--out", tmp, "--shape",
                   *map(str, args.shape), "--labels", str(args.labels), "--threads",
                   str(args.threads)]  # fmt: skip
        if args.image:
            command += ["--image", str(args.image)]
        if args.probabilities:
            command.append("--probabilities")
        subprocess.run(command, check=True)
        results[side] = json.loads((Path(tmp) / f"{side}.json").read_text())
    return results


def check_equal_positions(args: argparse.Namespace) -> None:
    """Both libraries on a size where their windows coincide: the outputs must agree."""
    check = argparse.Namespace(**{**vars(args), "shape": list(CHECK_SHAPE), "image": None,
                                  "probabilities": True})  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        run_children(check, ("medseg", "monai"), tmp)
        ours, theirs = (np.load(Path(tmp) / f"{side}.npy") for side in ("medseg", "monai"))
    same = float((ours.argmax(0) == theirs.argmax(0)).mean())
    print(f"check on {CHECK_SHAPE} (the same window positions): largest probability "
          f"difference {np.abs(ours - theirs).max():.2e}, same most likely class in "
          f"{100 * same:.4f} % of voxels")  # fmt: skip


def report(args: argparse.Namespace, results: dict, agreement: float) -> None:
    """Print each side's time, memory and GFLOP/s against the ceiling."""
    flops = window_flops(args.labels)
    ceilings = {torch.float32: conv_ceiling(args.threads)}
    if set(results) & set(HALF_SIDES):
        ceilings[torch.bfloat16] = conv_ceiling(args.threads, torch.bfloat16)
    shape = tuple(args.shape)
    print(f"volume {shape}{' (' + args.image.name + ')' if args.image else ''}, "
          f"{args.labels} classes, patch {PATCH}, {args.threads} threads; "
          f"{flops / 1e9:.2f} GFLOP per window; conv3d ceiling "
          + ", ".join(f"{v:.1f} GFLOP/s ({str(k)[6:]})" for k, v in ceilings.items()))  # fmt: skip
    for side, r in results.items():
        ceiling = ceilings[torch.bfloat16 if side in HALF_SIDES else torch.float32]
        gflop = flops * r["windows"] / 1e9
        net_rate, rate = gflop / r["network_seconds"], gflop / r["seconds"]
        print(f"{side:8s} {r['seconds']:7.1f} s ({r['network_seconds']:7.1f} s in the network, "
              f"{r['windows']} windows); peak {r['peak_mib'] / 1024:5.2f} GiB "
              f"(+{r['rise_mib'] / 1024:5.2f} GiB); network {net_rate:5.1f} GFLOP/s "
              f"({100 * net_rate / ceiling:4.1f} % of the ceiling), end to end {rate:5.1f} "
              f"GFLOP/s ({100 * rate / ceiling:4.1f} %)")  # fmt: skip
    if "compiled" in results:
        compiled = results["monai"]["seconds"] / results["compiled"]["seconds"]
        print(f"medseg compiled / MONAI throughput: {compiled:.2f}x (compiling included)")
    if "bfloat16" in results:
        half = results["monai"]["seconds"] / results["bfloat16"]["seconds"]
        print(f"medseg bfloat16 / MONAI float32 throughput: {half:.2f}x")
    if {"bfloat16", "monai_bfloat16"} <= set(results):
        both = results["monai_bfloat16"]["seconds"] / results["bfloat16"]["seconds"]
        print(f"medseg bfloat16 / MONAI bfloat16 throughput: {both:.2f}x")
    speed = results["monai"]["seconds"] / results["medseg"]["seconds"]
    print(
        f"medseg / MONAI throughput: {speed:.2f}x; same most likely class in "
        f"{100 * agreement:.3f} % of voxels (window positions differ, see --check)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--image", type=Path, help="a real image instead of a random volume")
    parser.add_argument("--labels", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="first check equal outputs")
    parser.add_argument(
        "--sides",
        nargs="+",
        choices=SIDES,
        default=list(DEFAULT_SIDES),
        help="medseg and monai always run; pipeline, compiled, bfloat16, monai_bfloat16 on request",
    )
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probabilities", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.side:
        run_side(args.side, args, args.out)
        return
    if args.image:
        args.shape = list(volume((1, 1, 1), args.image).shape[1:])
    if args.check:
        check_equal_positions(args)
    sides = tuple(dict.fromkeys(["medseg", "monai", *args.sides]))
    with tempfile.TemporaryDirectory() as tmp:
        results = run_children(args, sides, tmp)
        maps = {side: np.load(Path(tmp) / f"{side}.npy") for side in sides}
    for side in [s for s in sides if s in ("pipeline", "compiled", "bfloat16", "monai_bfloat16")]:
        reference = "monai" if side.startswith("monai") else "medseg"
        print(
            f"{side}: labels differ from {reference}'s in "
            f"{100 * float((maps[reference] != maps[side]).mean()):.4f} % of voxels"
        )
    report(args, results, float((maps["medseg"] == maps["monai"]).mean()))


if __name__ == "__main__":
    main()
