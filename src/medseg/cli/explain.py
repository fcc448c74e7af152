"""``medseg explain``: Grad-CAM maps and feature views of a classifier's or segmenter's input."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg explain runs/pneumonia Dataset201_Pneumonia/imagesTs/test_00017_0000.png --out cams
  medseg explain runs/hippo Dataset004_Hippocampus/imagesTs --out cams --layer decoder.2

per case: {case}_gradcam_{class or label}.nii.gz on the input's own grid (scaled to [0, 1]),
a PNG of the map over the most relevant slices, and {case}_features_encoder0/N.png (the
first and last encoder stages). A classifier is explained per class (its logit), a segmenter
per label (the label's logits summed over the image). Default layer: the last encoder stage.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "explain",
        "classify",
        "Grad-CAM maps and feature views of what a classifier or segmenter looked at.",
        EXAMPLES,
        run,
    )
    parser.add_argument(
        "run_dir", type=arguments.run_folder, metavar="RUN_DIR", help="trained run folder"
    )
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT", help="images/folders")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--layer", metavar="NAME", help="the layer to explain, e.g. encoder.2 (default: last)"
    )
    arguments.add_device(parser)


def run(args: argparse.Namespace) -> int:
    from medseg.explain.explain import explain_cases

    written = explain_cases(
        args.run_dir, args.inputs, args.out, args.layer, args.device, quiet=args.quiet
    )
    console.print(f"wrote {len(written)} file(s) to {args.out}")
    return 0
