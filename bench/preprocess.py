"""Benchmark: fingerprint + plan + preprocess of a real dataset, against MONAI's transforms.

medseg: ``compute_fingerprint``, ``make_plan`` (with a 10-minute budget: the candidate
networks are timed on this CPU) and ``preprocess_dataset`` into an empty cache, in one
process and with the default jobs (worker processes only when the cases are slow
enough). MONAI: the equivalent per-case chain (LoadImaged, EnsureChannelFirstd,
Orientationd to RAS, Spacingd to the same target spacing with cubic interpolation for the
image and nearest for the label, CropForegroundd, NormalizeIntensityd over non-zero voxels)
saving each case as .npy, in one process; MONAI has no fingerprint or planner to compare.
Peak memory: each side once in a fresh process, resident set size sampled every millisecond.

Usage: python bench/preprocess.py [DATASET_DIR]   (default ../shared/data/Dataset004_Hippocampus)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peak_memory import PeakSampler

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "Dataset004_Hippocampus"


def run_medseg(dataset_dir: Path, cache: Path, jobs: int | None) -> dict[str, float]:
    from medseg.datasets import open_dataset
    from medseg.preprocess import compute_fingerprint, preprocess_dataset
    from medseg.train import make_plan

    times = {}
    start = time.perf_counter()
    dataset = open_dataset(dataset_dir)
    fingerprint = compute_fingerprint(dataset, jobs=jobs, quiet=True)
    times["fingerprint"] = time.perf_counter() - start
    start = time.perf_counter()
    plan = make_plan(fingerprint, dataset.spec, budget_minutes=10)
    times["plan"] = time.perf_counter() - start
    start = time.perf_counter()
    preprocess_dataset(dataset, plan.preprocessing, cache, jobs=jobs, quiet=True)
    times["preprocess"] = time.perf_counter() - start
    times["target_spacing"] = plan.preprocessing.target_spacing  # type: ignore[assignment]
    return times


def run_monai(dataset_dir: Path, out: Path, spacing: list[float]) -> float:
    from monai import transforms as t

    from medseg.datasets import open_dataset

    dataset = open_dataset(dataset_dir)
    chain = t.Compose(
        [
            t.LoadImaged(["image", "label"]),
            t.EnsureChannelFirstd(["image", "label"]),
            t.Orientationd(["image", "label"], axcodes="RAS"),
            t.Spacingd(["image", "label"], pixdim=spacing, mode=(3, "nearest")),
            t.CropForegroundd(["image", "label"], source_key="image"),
            t.NormalizeIntensityd("image", nonzero=True),
        ]
    )
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for case in dataset.training:
        item = chain({"image": str(case.image_paths[0]), "label": str(case.label_path)})
        np.save(out / f"{case.case_id}_image.npy", np.asarray(item["image"], np.float32))
        np.save(out / f"{case.case_id}_label.npy", np.asarray(item["label"], np.uint8))
    return time.perf_counter() - start


def _peak_child(which: str, dataset_dir: Path, spacing: list[float]) -> None:
    """Print the peak RSS rise of the whole run and of the preprocessing alone (MiB)."""
    import monai.transforms  # noqa: F401 - both children load the same libraries first
    import torch  # noqa: F401

    from medseg.datasets import open_dataset
    from medseg.preprocess import compute_fingerprint, preprocess_dataset
    from medseg.train import make_plan

    whole = PeakSampler()
    with tempfile.TemporaryDirectory() as tmp:
        if which == "medseg":
            dataset = open_dataset(dataset_dir)
            fingerprint = compute_fingerprint(dataset, jobs=1, quiet=True)
            plan = make_plan(fingerprint, dataset.spec, budget_minutes=10)
            alone = PeakSampler()
            preprocess_dataset(dataset, plan.preprocessing, Path(tmp) / "c", jobs=1, quiet=True)
        else:
            alone = PeakSampler()
            run_monai(dataset_dir, Path(tmp) / "cache", spacing)
        print(whole.stop(), alone.stop())


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _peak_child(sys.argv[2], Path(sys.argv[3]), [float(v) for v in sys.argv[4:]])
        return
    dataset_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    cores = len(os.sched_getaffinity(0))
    print(f"dataset {dataset_dir.name}, {cores} cores")
    with tempfile.TemporaryDirectory() as tmp:
        one = run_medseg(dataset_dir, Path(tmp) / "one", jobs=1)
        many = run_medseg(dataset_dir, Path(tmp) / "many", jobs=None)
        spacing = list(one.pop("target_spacing"))  # type: ignore[arg-type]
        many.pop("target_spacing")
        monai_seconds = run_monai(dataset_dir, Path(tmp) / "monai", spacing)
    rows = [(name, one[name], many[name]) for name in ("fingerprint", "plan", "preprocess")]
    rows.append(("total", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    for name, single, parallel in rows:
        print(f"  medseg {name:12s} 1 process {single:6.2f} s   default jobs {parallel:6.2f} s")
    print(f"  MONAI preprocessing chain, 1 process: {monai_seconds:6.2f} s")
    for label, seconds in (
        ("1 process", one["preprocess"]),
        ("default jobs", many["preprocess"]),
    ):
        print(f"  ratio MONAI chain / medseg preprocess ({label}) {monai_seconds / seconds:5.1f} x")
    peaks = {}
    for which in ("medseg", "monai"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", which, str(dataset_dir), *map(str, spacing)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        peaks[which] = [float(v) for v in out.stdout.strip().splitlines()[-1].split()]
    print("peak memory rise (1 process, a fresh process each):")
    print(f"  medseg fingerprint + plan + preprocess {peaks['medseg'][0]:6.0f} MiB"
          "  (the plan times candidate networks: their training step)")  # fmt: skip
    print(f"  medseg preprocess alone                {peaks['medseg'][1]:6.0f} MiB")
    print(f"  MONAI preprocessing chain              {peaks['monai'][1]:6.0f} MiB")


if __name__ == "__main__":
    main()
