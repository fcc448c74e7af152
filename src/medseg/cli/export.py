"""``medseg export``: a run's networks as ONNX models for onnxruntime and other runtimes."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console
from medseg.errors import ConfigError

EXAMPLES = """\
  medseg export runs/hippo                      # runs/hippo/onnx/fold_K.onnx, model.json
  medseg export runs/hippo --out hippo_onnx --opset 17 --dynamic-shapes
  medseg predict runs/hippo scans/ --out preds --engine onnxruntime
  medseg predict hippo_onnx scans/ --out preds  # an export folder predicts on its own
  medseg export runs/hippo --quantize int8      # runs/hippo/onnx_int8, if Dice holds
  medseg export models/hippo_registration       # a learned registration model (opset 20)

writes one fold_K.onnx per trained fold (input 'image': normalised windows, batch axis
dynamic; output 'logits'), plan.json and the run's other inference files, and model.json
(opset, shapes, checksums, onnxruntime's largest logit difference to PyTorch).
--quantize int8 (calibrated on training cases) or fp16 compares Dice per label and time on
each fold's validation cases before and after, and writes nothing if a label loses more
than --max-dice-drop. Details: docs/export.md
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "export",
        "segment",
        "Export a run's networks as ONNX (onnxruntime, TensorRT, OpenVINO ...).",
        EXAMPLES,
        run,
    )
    parser.add_argument(
        "run_dir", type=arguments.run_folder, metavar="RUN_DIR", help="trained run folder"
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="export folder (default: RUN_DIR/onnx)"
    )
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (default)")
    parser.add_argument(
        "--opset",
        type=int,
        metavar="N",
        help="ONNX opset (13-23, default 18; a registration model: 20-23, default 20)",
    )
    parser.add_argument(
        "--dynamic-shapes",
        action="store_true",
        help="spatial axes dynamic too (multiples of the network's total stride); "
        "by default only the batch axis is",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8", "fp16"),
        help="int8: static quantisation (QDQ, per-channel weights); fp16: half precision "
        "for GPU runtimes; into RUN_DIR/onnx_int8 or onnx_fp16",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        metavar="DIR",
        help="with --quantize: the run's dataset (default: the one its manifest records)",
    )
    parser.add_argument(
        "--calibration-cases",
        type=arguments.positive_int,
        default=16,
        metavar="N",
        help="with --quantize int8: training cases whose windows calibrate the ranges (default 16)",
    )
    parser.add_argument(
        "--max-dice-drop",
        type=float,
        default=0.01,
        metavar="D",
        help="with --quantize: refuse if a label's mean Dice falls by more (default 0.01)",
    )


def run(args: argparse.Namespace) -> int:
    from medseg.register.onnx_export import export_registration_onnx, is_registration_model

    if is_registration_model(args.run_dir):
        if args.quantize or args.dynamic_shapes:
            raise ConfigError("--quantize and --dynamic-shapes are for segmentation runs")
        folder = export_registration_onnx(args.run_dir, args.out, args.opset or 20,
                                          quiet=args.quiet)  # fmt: skip
        console.print(f"wrote the registration model's ONNX export to {folder}")
        return 0
    opset = args.opset or 18
    if args.quantize:
        from medseg.infer.quantize import export_quantized

        folder, report = export_quantized(
            args.run_dir, args.quantize, args.out, args.dataset, args.calibration_cases,
            args.max_dice_drop, opset=opset, quiet=args.quiet,
        )  # fmt: skip
        for fold, result in report["folds"].items():
            before, after = result["float32"], result[args.quantize]
            dice = ", ".join(f"{k} {v:.4f} -> {after['dice'][k]:.4f}"
                             for k, v in before["dice"].items())  # fmt: skip
            console.print(f"{fold}: Dice {dice} on {result['cases']} {result['checked_on']}; "
                          f"{before['seconds_per_case']:.2f} -> "
                          f"{after['seconds_per_case']:.2f} s per case")  # fmt: skip
        console.print(f"wrote the {args.quantize} ONNX export to {folder}")
        return 0
    from medseg.export import export_onnx

    folder = export_onnx(
        args.run_dir, args.out, opset=opset, dynamic_shapes=args.dynamic_shapes,
        quiet=args.quiet,
    )  # fmt: skip
    console.print(f"wrote the ONNX export to {folder}")
    return 0
