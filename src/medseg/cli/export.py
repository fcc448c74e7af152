"""``medseg export``: a run's networks as ONNX models for onnxruntime and other runtimes."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg export runs/hippo                      # runs/hippo/onnx/fold_K.onnx, model.json
  medseg export runs/hippo --out hippo_onnx --opset 17 --dynamic-shapes
  medseg predict runs/hippo scans/ --out preds --engine onnxruntime
  medseg predict hippo_onnx scans/ --out preds  # an export folder predicts on its own

writes one fold_K.onnx per trained fold (input 'image': normalised windows, batch axis
dynamic; output 'logits'), plan.json and the run's other inference files, and model.json
(opset, shapes, checksums, onnxruntime's largest logit difference to PyTorch).
Details: docs/export.md
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
        "--opset", type=int, default=18, metavar="N", help="ONNX opset (13-23, default 18)"
    )
    parser.add_argument(
        "--dynamic-shapes",
        action="store_true",
        help="spatial axes dynamic too (multiples of the network's total stride); "
        "by default only the batch axis is",
    )


def run(args: argparse.Namespace) -> int:
    from medseg.export import export_onnx

    folder = export_onnx(
        args.run_dir, args.out, opset=args.opset, dynamic_shapes=args.dynamic_shapes,
        quiet=args.quiet,
    )  # fmt: skip
    console.print(f"wrote the ONNX export to {folder}")
    return 0
