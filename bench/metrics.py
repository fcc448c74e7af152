"""Benchmark: medseg's full per-case metric set against MONAI's distance metrics.

One CT-sized 3D case (256 x 256 x 200 voxels of 0.8 x 0.8 x 1.5 mm) holds three organ-like
labels (about 1100, 150 and 100 ml) with lumpy surfaces; the prediction deforms each surface
by a smooth random field (a few mm) and adds a small false-positive blob far from the liver.

Timed in this one process on the same arrays, best of --repeats:
- medseg: ``score_case`` -- Dice, IoU, precision, recall, specificity, accuracy, F1,
  TP/FP/FN/TN, volumes, HD, HD95, ASSD, NSD and lesion detection for every label;
  single-threaded, and with the KD-tree queries on every core;
- MONAI: ``compute_hausdorff_distance`` (95th percentile) + ``compute_average_surface_distance``
  + ``compute_surface_dice`` (the issue's comparison), and separately a second
  ``compute_hausdorff_distance`` call for the maximum HD, which medseg's set also holds.
  MONAI's one-hot tensors are built before its clock starts.

Peak memory: each side runs once in a fresh child process that loads the same arrays; the
rise of the peak resident set size (ru_maxrss) over the level after loading is reported.

Usage: python bench/metrics.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from peak_memory import PeakSampler
from scipy import ndimage
from threadpoolctl import threadpool_limits

SHAPE = (256, 256, 200)
SPACING = (0.8, 0.8, 1.5)
LABELS = (1, 2, 3)
TOLERANCE_MM = 1.0


def organ_case(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) uint8 label maps of the benchmark case."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(
        *[np.arange(n) * s for n, s in zip(SHAPE, SPACING)], indexing="ij", sparse=True
    )

    def smooth_noise(sigma_mm: float, amplitude_mm: float) -> np.ndarray:
        noise = rng.standard_normal(SHAPE).astype(np.float32)
        noise = ndimage.gaussian_filter(noise, [sigma_mm / s for s in SPACING])
        return noise * (amplitude_mm / noise.std())

    # centre (mm) and semi-axes (mm): liver, spleen, kidney sized
    organs = [((100, 90, 150), (75, 55, 60)), ((150, 120, 160), (30, 45, 50)),
              ((60, 140, 140), (25, 30, 45))]  # fmt: skip
    lumps, errors = smooth_noise(12, 4.0), smooth_noise(6, 2.5)
    reference = np.zeros(SHAPE, np.uint8)
    prediction = np.zeros(SHAPE, np.uint8)
    for label, (centre, radii) in zip(LABELS, organs):
        radius = np.sqrt(sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radii)))
        signed = (radius - 1.0) * min(radii) + lumps
        reference[(signed < 0) & (reference == 0)] = label
        prediction[(signed + errors < 0) & (prediction == 0)] = label
    prediction[20:26, 200:205, 20:24] = 1  # a false-positive blob far from the liver
    return reference, prediction


def run_medseg(reference: np.ndarray, prediction: np.ndarray, threads: int) -> list[dict]:
    from medseg.metrics import score_case

    scores = score_case("bench", reference, prediction, LABELS, spacing=SPACING, threads=threads)
    return scores.metrics


def monai_inputs(reference: np.ndarray, prediction: np.ndarray):
    import torch

    def one_hot(labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([labels == k for k in LABELS])[None])

    return one_hot(prediction), one_hot(reference)


def run_monai(pred, ref, with_max: bool) -> dict[str, np.ndarray]:
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    warnings.filterwarnings("ignore")
    # The one-hot channels are the labels themselves (no background channel).
    every = {"include_background": True, "spacing": SPACING}
    tolerances = [TOLERANCE_MM] * len(LABELS)
    out = {
        "hd95": compute_hausdorff_distance(pred, ref, percentile=95, **every),
        "assd": compute_average_surface_distance(pred, ref, symmetric=True, **every),
        "nsd": compute_surface_dice(pred, ref, tolerances, **every),
    }
    if with_max:
        out["hd"] = compute_hausdorff_distance(pred, ref, **every)
    return {k: v.numpy()[0] for k, v in out.items()}


def best_time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def _peak_rss_child(which: str, data: Path) -> None:
    """Child process: load the arrays, run one side once while a thread samples the resident
    set size every millisecond; print the peak rise over the level before the run (MiB)."""
    import monai.metrics  # noqa: F401
    import torch  # noqa: F401 - loaded before the baseline in both children

    from medseg.metrics import default_jobs

    arrays = np.load(data)
    reference, prediction = arrays["reference"], arrays["prediction"]
    inputs = monai_inputs(reference, prediction) if which == "monai" else None
    sampler = PeakSampler()
    if which == "monai":
        run_monai(*inputs, with_max=False)
    else:
        run_medseg(reference, prediction, default_jobs())
    print(sampler.stop())


def peak_memory(which: str, data: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", choices=["medseg", "monai"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _peak_rss_child(args.child, args.data)
        return

    import monai
    import torch

    import medseg
    from medseg.metrics import default_jobs

    reference, prediction = organ_case()
    volumes = [int((reference == k).sum()) * np.prod(SPACING) / 1000 for k in LABELS]
    print(f"case {SHAPE} at {SPACING} mm, reference volumes (ml): {np.round(volumes, 1)}")
    print(f"medseg {medseg.__version__}, MONAI {monai.__version__}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}")  # fmt: skip
    cores = default_jobs()
    t_ours_all, rows = best_time(lambda: run_medseg(reference, prediction, cores), args.repeats)
    with threadpool_limits(1):  # one thread for the k-d tree searches too
        t_ours_1, _ = best_time(lambda: run_medseg(reference, prediction, 1), args.repeats)
    pred, ref = monai_inputs(reference, prediction)
    t_monai, monai_values = best_time(lambda: run_monai(pred, ref, False), args.repeats)
    t_monai_all, _ = best_time(lambda: run_monai(pred, ref, True), args.repeats)
    t_monai_hd = t_monai_all - t_monai
    print("\nagreement (medseg vs MONAI):")
    for metric in ("hd95", "assd", "nsd"):
        ours = np.array([float(r[metric]) for r in rows])
        print(f"  {metric:5s} medseg {np.round(ours, 4)}  MONAI {np.round(monai_values[metric], 4)}"
              f"  max |diff| {np.abs(ours - monai_values[metric]).max():.1e}")  # fmt: skip
    print(f"\ntime (best of {args.repeats}):")
    print(f"  medseg full metric set, 1 thread      {t_ours_1:7.3f} s")
    print(f"  medseg full metric set, {cores} cores      {t_ours_all:7.3f} s")
    print(f"  MONAI HD95 + ASSD + NSD                {t_monai:7.3f} s")
    print(f"  MONAI HD (max), one more call         ~{t_monai_hd:7.3f} s")
    print(f"  ratio MONAI (HD95+ASSD+NSD) / medseg 1 thread   {t_monai / t_ours_1:6.1f} x")
    print(f"  ratio MONAI (HD95+ASSD+NSD) / medseg {cores} cores    {t_monai / t_ours_all:6.1f} x")
    print(f"  ratio MONAI (+HD max) / medseg 1 thread         "
          f"{(t_monai + t_monai_hd) / t_ours_1:6.1f} x")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "case.npz"
        np.savez(data, reference=reference, prediction=prediction)
        ours_mib, monai_mib = peak_memory("medseg", data), peak_memory("monai", data)
    print("\npeak memory above the loaded arrays (fresh process each):")
    print(f"  medseg {ours_mib:7.1f} MiB   MONAI {monai_mib:7.1f} MiB")


if __name__ == "__main__":
    main()
