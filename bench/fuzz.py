"""Fuzzing: coverage-guided (atheris, libFuzzer) runs of every reader and the plan loader.

Each target writes the fuzzer's bytes to a file of its format and reads it the way medseg
does. Reading may succeed or raise medseg's own error (`MedsegError`); anything else (a
traceback, a MemoryError, a hang, an allocation over libFuzzer's limit) is a finding, and
libFuzzer stops and writes the input as ``crash-*`` / ``timeout-*`` / ``oom-*`` into --out.
The fuzzer starts from small valid files of the format (written here, not stored).

Usage:
  python bench/fuzz.py --target nifti --seconds 120 --out /tmp/fuzz
  python bench/fuzz.py --target all --seconds 60          # each target in turn
  python bench/fuzz.py --target png --reproduce /tmp/fuzz/png/crash-123   # one input again

Targets: nifti, nifti-gz, nrrd, mha, png, tiff, jpeg, dicom, plan, dataset-json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["medseg", "nibabel", "pydicom", "PIL", "tifffile"]):
    import numpy as np
    from pydicom.data import get_testdata_file

    from medseg.datasets import open_dataset
    from medseg.errors import MedsegError
    from medseg.io import Image, read_dicom_series, read_image, write_image
    from medseg.runs import Plan

SUFFIXES = {
    "nifti": ".nii",
    "nifti-gz": ".nii.gz",
    "nrrd": ".nrrd",
    "mha": ".mha",
    "png": ".png",
    "tiff": ".tif",
    "jpeg": ".jpg",
}
TARGETS = [*SUFFIXES, "dicom", "plan", "dataset-json"]
WORK = Path(tempfile.mkdtemp(prefix="medseg_fuzz_"))


def _seeds(target: str, folder: Path) -> None:
    """Small valid inputs of the target's format for the fuzzer to start from."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if target in SUFFIXES:
        two_d = target in ("png", "jpeg")
        shape = (1, 8, 6) if two_d else (1, 6, 5, 4)
        for k, dtype in enumerate((np.uint8, np.int16, np.float32)):
            if two_d and dtype != np.uint8:
                continue
            array = (rng.random(shape) * 100).astype(dtype)
            write_image(
                Image(array, np.diag([0.5, 0.7, 2.0, 1.0])), folder / f"seed{k}{SUFFIXES[target]}"
            )
    elif target == "dicom":
        (folder / "seed.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    elif target == "plan":
        plan = Plan(
            in_channels=1,
            label_values=[0, 1],
            label_names=["bg", "fg"],
            channel_names=["CT"],
            file_ending=".nii.gz",
            data_dim=3,
            dim=3,
            median_spacing=[1.0, 1.0, 1.0],
            median_shape=[16, 16, 16],
            features=[8, 16],
            strides=[[1, 1, 1], [2, 2, 2]],
            kernel_sizes=[[3, 3, 3], [3, 3, 3]],
            patch_size=[16, 16, 16],
            batch_size=2,
            learning_rate=0.01,
        )
        (folder / "seed.json").write_text(plan.model_dump_json())
    else:
        spec = {
            "channel_names": {"0": "CT"},
            "labels": {"background": 0, "organ": 1},
            "numTraining": 1,
            "file_ending": ".nii.gz",
        }
        (folder / "seed.json").write_text(json.dumps(spec))


def _reader(target: str) -> Callable[[bytes], object]:
    """What medseg does with one input of the target's kind."""
    if target in SUFFIXES:
        path = WORK / f"input{SUFFIXES[target]}"

        def read(data: bytes) -> object:
            path.write_bytes(data)
            return read_image(path)

        return read
    if target == "dicom":
        folder = WORK / "series"
        folder.mkdir(exist_ok=True)

        def read_series(data: bytes) -> object:
            (folder / "slice.dcm").write_bytes(data)
            return read_dicom_series(folder)

        return read_series
    if target == "plan":

        def read_plan(data: bytes) -> object:
            (WORK / "plan.json").write_bytes(data)
            return Plan.read(WORK / "plan.json")

        return read_plan
    dataset = WORK / "Dataset999_Fuzz"
    (dataset / "imagesTr").mkdir(parents=True, exist_ok=True)
    (dataset / "labelsTr").mkdir(exist_ok=True)
    write_image(
        Image(np.zeros((1, 4, 4, 4), np.uint8), np.eye(4)),
        dataset / "imagesTr" / "case_0000.nii.gz",
    )
    write_image(
        Image(np.zeros((1, 4, 4, 4), np.uint8), np.eye(4)), dataset / "labelsTr" / "case.nii.gz"
    )

    def read_dataset(data: bytes) -> object:
        (dataset / "dataset.json").write_bytes(data)
        return open_dataset(dataset)

    return read_dataset


def _fuzz(target: str) -> None:
    """Runs in its own process: libFuzzer takes over and exits when done."""
    read = _reader(target)

    def one_input(data: bytes) -> None:
        with contextlib.suppress(MedsegError):
            read(data)

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], required=True)
    parser.add_argument("--seconds", type=int, default=60, help="per target (default: 60)")
    parser.add_argument("--out", type=Path, default=Path("fuzz_findings"))
    parser.add_argument("--reproduce", type=Path, help="run one saved input through the target")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args, libfuzzer_flags = parser.parse_known_args()
    if args.worker:
        sys.argv = [sys.argv[0], *libfuzzer_flags]
        _fuzz(args.target)
        return
    if args.reproduce:
        _reader(args.target)(args.reproduce.read_bytes())
        print(f"{args.reproduce}: read without a finding")
        return
    for target in TARGETS if args.target == "all" else [args.target]:
        found = args.out / target
        seeds = found / "seeds"
        _seeds(target, seeds)
        flags = [
            f"-max_total_time={args.seconds}",
            "-timeout=20",
            "-rss_limit_mb=3072",
            "-malloc_limit_mb=2048",
            f"-artifact_prefix={found}/",
            "-print_final_stats=1",
        ]
        command = [sys.executable, __file__, "--worker", "--target", target, *flags, str(seeds)]
        done = subprocess.run(command, capture_output=True, text=True)
        stats = [line for line in done.stderr.splitlines() if line.startswith("stat::")]
        runs = next(
            (line.split(":")[-1].strip() for line in stats if "number_of_executed_units" in line),
            "?",
        )
        findings = sorted(
            p.name
            for p in found.iterdir()
            if p.name.split("-")[0] in ("crash", "timeout", "oom", "leak")
        )
        print(
            f"{target:13s} {args.seconds:4d} s  {runs:>8s} inputs  "
            f"findings: {', '.join(findings) or 'none'}"
        )
        if findings:
            print("\n".join(done.stderr.splitlines()[-30:]))


if __name__ == "__main__":
    main()
