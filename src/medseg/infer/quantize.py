"""``medseg export --quantize int8|fp16``: a compressed ONNX export of a run, kept only if
it keeps the run's Dice.

For each trained fold: the fold exported as float32 ONNX (`medseg.export.export_onnx`), then
compressed — ``int8``: quantised (`medseg.export.quantize_onnx`) with activation ranges
calibrated on windows of ``calibration_cases`` of the fold's training cases (preprocessed
as for prediction, cut at the sliding window's positions); ``fp16``: weights and
arithmetic in half precision for GPU runtimes (`medseg.export.half_precision_onnx`) — and
both models run through the whole prediction pipeline on the fold's validation cases
(``fold_K/validation``, for its further models ``fold_K_1``, ... too; a fold trained on
every case has none, and is checked on ``calibration_cases`` training cases instead, which
the report says). The Dice of each label, before and after, and the seconds per case are
recorded in the export's ``model.json``. A label whose mean Dice drops by more than
``max_dice_drop`` refuses the export (`ConfigError`): nothing is written.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medseg.datasets import (
    Case,
    DatasetFolder,
    open_dataset,
    read_case_image,
    read_training_case,
)
from medseg.errors import ConfigError, located
from medseg.export import export_onnx, half_precision_onnx, quantize_onnx, record_quantization
from medseg.export.onnx import SIDECAR
from medseg.folds import first_model_dir
from medseg.infer.predict import TrainedModel, load_trained_model, network_input, predict_labels
from medseg.io import image_files
from medseg.io.outputs import prepare_output_folder
from medseg.metrics.overlap import dice_per_label, mask_ignored
from medseg.nn.sliding_window import window_starts
from medseg.postprocess.run_folder import recorded_dataset_dir
from medseg.progress import log_line

#: What each kind of compression is (recorded in model.json).
KINDS = {
    "int8": "QDQ, per-channel int8 weights, uint8 activations (calibrated)",
    "fp16": "float16 weights and arithmetic, float32 input and output (for GPU runtimes)",
}
#: Calibration windows per fold at most (onnxruntime keeps every activation of each).
MAX_CALIBRATION_WINDOWS = 64


def export_quantized(
    run_dir: str | Path,
    kind: str = "int8",
    out_dir: str | Path | None = None,
    dataset_dir: str | Path | None = None,
    calibration_cases: int = 16,
    max_dice_drop: float = 0.01,
    opset: int = 18,
    quiet: bool = True,
) -> tuple[Path, dict[str, object]]:
    """Export the run's folds as ``kind`` (``int8`` or ``fp16``) ONNX models into ``out_dir``
    (default ``RUN_DIR/onnx_{kind}``) if no label loses more than ``max_dice_drop`` of Dice
    (see the module text); returns the folder and the report recorded in its model.json.

    Examples
    --------
    >>> folder, report = export_quantized("runs/hippo", "int8")  # doctest: +SKIP
    """
    if kind not in KINDS:
        raise ConfigError(f"--quantize {kind}: expected one of {', '.join(KINDS)}")
    if max_dice_drop < 0:
        raise ConfigError(f"--max-dice-drop {max_dice_drop}: give 0 or more")
    run_dir = Path(run_dir)
    dataset = open_dataset(recorded_dataset_dir(run_dir, dataset_dir))
    out = prepare_output_folder(Path(out_dir) if out_dir is not None else run_dir / f"onnx_{kind}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        float_dir, small_dir = Path(tmp) / "float32", Path(tmp) / kind
        export_onnx(run_dir, float_dir, opset=opset, quiet=quiet)
        shutil.copytree(float_dir, small_dir)
        folds = {}
        for record in json.loads((float_dir / SIDECAR).read_text())["folds"]:
            fold = str(record["fold"])
            folds[fold] = _compress_fold(float_dir, small_dir, kind, fold, run_dir, dataset,
                                         calibration_cases, quiet)  # fmt: skip
        report = {"type": kind, "format": KINDS[kind], "max_dice_drop": max_dice_drop,
                  "folds": folds}  # fmt: skip
        record_quantization(small_dir, report)
        _refuse_a_dice_drop(report, max_dice_drop, run_dir)
        out.mkdir(exist_ok=True)
        for path in sorted(small_dir.iterdir(), key=lambda p: p.name == SIDECAR):
            os.replace(path, out / path.name)  # model.json last
    return out, report


def _compress_fold(
    float_dir: Path,
    small_dir: Path,
    kind: str,
    fold: str,
    run_dir: Path,
    dataset: DatasetFolder,
    calibration_cases: int,
    quiet: bool,
) -> dict[str, object]:
    """Compress one fold's model in ``small_dir``; its Dice and time before and after."""
    before = load_trained_model(float_dir, folds=[fold[5:]])
    # a fold's further model (fold_K_1) is checked on the cases fold K held out
    held_out_by = first_model_dir(run_dir / fold)
    validation, calibration = _fold_cases(held_out_by, dataset, calibration_cases)
    checked = validation or calibration  # a model trained on every case: its own cases
    source, target = float_dir / f"{fold}.onnx", small_dir / f"{fold}.onnx"
    if kind == "int8":
        windows = _windows(before, calibration, dataset)
        quantize_onnx(source, target, itertools.islice(windows, MAX_CALIBRATION_WINDOWS))
    else:
        half_precision_onnx(source, target)
    record_quantization(small_dir)  # the new file's checksum, so that it loads
    after = load_trained_model(small_dir, folds=[fold[5:]])
    result: dict[str, object] = {
        "checked_on": "validation cases" if validation else "training cases",
        "cases": len(checked),
    }
    for name, model in (("float32", before), (kind, after)):
        dice, seconds = _dice_and_seconds(model, checked, dataset)
        result[name] = {"dice": dice, "seconds_per_case": seconds}
    log_line(f"{fold}: compressed ({kind}) and checked on {len(checked)} case(s)", quiet)
    return result


def _fold_cases(
    fold_dir: Path, dataset: DatasetFolder, count: int
) -> tuple[list[Case], list[Case]]:
    """The fold's validation cases (``fold_K/validation``; none for a model trained on every
    case) and ``count`` of its training cases spread over the dataset."""
    ending = dataset.spec.file_ending
    folder = fold_dir / "validation"
    names = [p.name for p in image_files(folder)] if folder.is_dir() else []
    held_out = {name[: -len(ending)] for name in names if name.endswith(ending)}
    training = [c for c in dataset.training if c.case_id not in held_out]
    step = max(len(training) // max(count, 1), 1)
    calibration = training[::step][:count]
    validation = [c for c in dataset.training if c.case_id in held_out]
    return validation, calibration


def _windows(
    model: TrainedModel, cases: list[Case], dataset: DatasetFolder
) -> Iterator[np.ndarray]:
    """Normalised windows ``(1, C, *patch)`` of each case at the sliding window's
    positions."""
    patch = model.config.patch_size
    for case in cases:
        image = read_case_image(case, dataset.spec.num_channels)
        tensor, _ = network_input(model, image, case.case_id)
        array = tensor.cpu().numpy()
        pads = [(0, 0)] + [(0, max(p - s, 0)) for s, p in zip(array.shape[1:], patch)]
        array = np.pad(array, pads)
        starts = [window_starts(s, p, 0.5) for s, p in zip(array.shape[1:], patch)]
        for corner in itertools.product(*starts):
            region = tuple(slice(s, s + p) for s, p in zip(corner, patch))
            yield np.ascontiguousarray(array[(slice(None), *region)][None])


def _dice_and_seconds(
    model: TrainedModel, cases: list[Case], dataset: DatasetFolder
) -> tuple[dict[str, float], float]:
    """Mean Dice per label name over ``cases`` and the mean seconds per case."""
    c = model.config
    values = [v for v in c.label_values if v != 0]
    scores: dict[int, list[float]] = {v: [] for v in values}
    seconds = 0.0
    for case in cases:
        image, reference = read_training_case(case, dataset.spec)
        start = time.perf_counter()
        labels, _ = predict_labels(model, image, source=case.case_id, keep_probabilities=False)
        seconds += time.perf_counter() - start
        predicted = mask_ignored(reference, labels.array[0], c.ignore_label)
        for value, score in dice_per_label(reference, predicted, values).items():
            scores[value].append(score)
    names = dict(zip(c.label_values, c.label_names))
    dice = {names[v]: round(float(np.nanmean(s)), 4) for v, s in scores.items()}
    return dice, round(seconds / max(len(cases), 1), 4)


def _refuse_a_dice_drop(report: dict[str, object], max_drop: float, run_dir: Path) -> None:
    """`ConfigError` naming the label when the compressed model loses more than
    ``max_drop``."""
    kind = report["type"]
    for fold, result in report["folds"].items():  # type: ignore[union-attr]
        before, after = result["float32"]["dice"], result[kind]["dice"]
        for name, value in before.items():
            drop = value - after[name]
            if drop > max_drop:
                raise ConfigError(
                    located(run_dir, f"{kind} loses {drop:.4f} Dice on {name} ({fold}: "
                            f"{value:.4f} -> {after[name]:.4f}), more than --max-dice-drop "
                            f"{max_drop}: nothing written"))  # fmt: skip
