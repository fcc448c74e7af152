"""Compressing an exported ONNX model with onnxruntime's tooling: static int8 quantisation,
and float16 for GPU runtimes.

QDQ format (QuantizeLinear/DequantizeLinear pairs around each convolution, which
onnxruntime fuses into integer kernels and other runtimes read as well), weights int8 per
output channel, activations uint8 per tensor with ranges calibrated (min-max) on normalised
windows of real training cases. Whether the result is good enough is decided elsewhere
(`medseg.infer.quantize` compares Dice on the run's validation cases).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from medseg.errors import ConfigError, located
from medseg.io import atomic_path

#: Operator types quantised: the convolutions carry nearly all the work; normalisation and
#: activations stay in float.
QUANTIZED_OPERATORS = ("Conv", "ConvTranspose")


def quantize_onnx(source: Path, target: Path, windows: Iterable[np.ndarray]) -> None:
    """Write an int8 copy of the ONNX model ``source`` to ``target`` (atomically), its
    activation ranges calibrated on ``windows`` (float32 batches ``(B, C, *patch)`` as the
    model's input ``image`` takes them)."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise ConfigError(
            "int8 quantisation needs onnxruntime: pip install 'medseg[onnx]'"
        ) from None

    class Windows(CalibrationDataReader):
        def __init__(self, batches: Iterator[np.ndarray]) -> None:
            self.batches = batches

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    with atomic_path(target) as tmp, _quiet_root_logger():
        try:
            quantize_static(
                source, tmp, Windows(iter(windows)), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPERATORS), per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ConfigError(located(source, f"int8 quantisation failed: {exc}")) from None


def half_precision_onnx(source: Path, target: Path) -> None:
    """Write a float16 copy of the ONNX model ``source`` to ``target`` (atomically): weights
    and arithmetic in half precision, the input and output kept float32 so that the model is
    fed and read as before (onnxruntime's converter, for GPU runtimes; the CPU runs it too,
    slower)."""
    try:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        problem = "float16 conversion needs onnx and onnxruntime: pip install 'medseg[onnx]'"
        raise ConfigError(problem) from None
    with atomic_path(target) as tmp, _quiet_root_logger():
        try:
            model = convert_float_to_float16(onnx.load(source), keep_io_types=True)
            onnx.save(model, tmp)
        except Exception as exc:  # noqa: BLE001 - the converter raises its own types
            raise ConfigError(located(source, f"float16 conversion failed: {exc}")) from None


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantiser advises its shape pre-processing through the root logger on
    every call; measured, that pre-processing changed nothing here (bench/RESULTS.md)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
