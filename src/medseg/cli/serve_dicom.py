"""``medseg serve-dicom``: a DICOM node that segments the series a PACS sends it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medseg.cli import arguments

EXAMPLES = """\
  medseg serve-dicom runs/liver --send-to ORTHANC@127.0.0.1:4242
  medseg serve-dicom runs/liver --ae-title MEDSEG --port 11112 --data /srv/medseg \\
      --send-to PACS@10.0.0.5:104 --allowed-callers PACS,CT01 --format rtstruct

receives images by C-STORE (and answers C-ECHO), segments a series once no instance of it
has arrived for --idle-seconds, and sends the DICOM-SEG (or RTSTRUCT) back by C-STORE to
--send-to; received files and results stay under --data, jobs are listed in
--data/jobs.jsonl. Ctrl-C stops it.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers,
        "serve-dicom",
        "segment",
        "Run a DICOM node: segment the series a PACS sends, send the results back.",
        EXAMPLES,
        run,
    )
    parser.add_argument(
        "run_dir", type=arguments.run_folder, metavar="RUN_DIR", help="trained run folder"
    )
    parser.add_argument("--ae-title", default="MEDSEG", help="this node's AE title (MEDSEG)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=11112, help="port to listen on (11112)")
    parser.add_argument(
        "--send-to", metavar="AE@HOST:PORT", help="where results go (default: kept only)"
    )
    parser.add_argument(
        "--data", type=Path, default=Path("medseg_dicom"), metavar="DIR",
        help="received files, results and jobs.jsonl (default: ./medseg_dicom)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0,
        help="a series is complete when nothing of it arrived for this long (10)",
    )  # fmt: skip
    parser.add_argument(
        "--format", default="dicom-seg", metavar="FORMATS",
        help="what is sent back: dicom-seg, rtstruct or both (dicom-seg,rtstruct)",
    )  # fmt: skip
    parser.add_argument(
        "--allowed-callers", metavar="AE,AE", help="accept associations only from these AE titles"
    )
    arguments.add_device(parser)


def run(args: argparse.Namespace) -> int:
    from medseg.infer.outputs import parse_formats
    from medseg.serve import Destination, DicomNode, NodeSettings

    formats = parse_formats(args.format)
    callers = None
    if args.allowed_callers:
        callers = frozenset(a.strip() for a in args.allowed_callers.split(",") if a.strip())
    settings = NodeSettings(
        data_dir=args.data,
        ae_title=args.ae_title,
        host=args.host,
        port=args.port,
        send_to=Destination.parse(args.send_to) if args.send_to else None,
        idle_seconds=args.idle_seconds,
        formats=formats,
        allowed_callers=callers,
    )
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    DicomNode(args.run_dir, settings, args.device).serve_forever()
    return 0
