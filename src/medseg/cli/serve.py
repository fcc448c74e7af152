"""``medseg serve``: the HTTP inference service; ``medseg serve keys``: its API keys;
``medseg submit``: send a file to it."""

from __future__ import annotations

import argparse
from pathlib import Path

from medseg.cli import arguments
from medseg.cli.output import console

SERVE_EXAMPLES = """\
  medseg serve runs/hippo --data /srv/medseg
  medseg serve hippo=runs/hippo liver=runs/ct_liver --workers 2 --port 8080 --retention-hours 72
  medseg serve keys add alice --data /srv/medseg            (prints the key once)

loads each model once in every worker process, queues jobs in DATA/medseg.sqlite (jobs
interrupted by a crash run again at the next start), and answers on http://HOST:PORT:
POST /jobs (file, model), GET /jobs/{id}, GET /jobs/{id}/result, the viewer at
/viewer/{id} and the API documentation at /docs. Every call but GET /health needs
Authorization: Bearer KEY. It listens on 127.0.0.1 only unless --host says otherwise; put
it behind a TLS reverse proxy to reach it from other machines (docs/serve.md).
"""

KEYS_EXAMPLES = """\
  medseg serve keys add alice --data /srv/medseg
  medseg serve keys add ops --role admin --data /srv/medseg
  medseg serve keys list --data /srv/medseg
  medseg serve keys revoke alice --data /srv/medseg
  medseg serve-keys list --data /srv/medseg                 (the same command, one word)

a key is printed once, alone on the last line, and stored only as a salted scrypt hash in
DATA/medseg.sqlite; the server reads the same --data folder. A user sees their own jobs,
an admin all jobs, and can cancel any.
"""

SUBMIT_EXAMPLES = """\
  MEDSEG_API_KEY=msk_... medseg submit http://127.0.0.1:8000 case.nii.gz --model hippo --out preds
  medseg submit http://127.0.0.1:8000 dicom/series_3 --model liver --out preds --key msk_...

uploads each file (a DICOM series folder is zipped), waits for the job and writes the label
map into --out as {case}_labels.nii.gz (PNG for PNG, a zip with NIfTI and DICOM-SEG for a
DICOM series) with {case}_manifest.json beside it.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    serve = arguments.add_command(
        subparsers, "serve", "segment",
        "Serve models over HTTP: authenticated job queue, results, browser viewer.",
        SERVE_EXAMPLES, run_serve,
    )  # fmt: skip
    serve.add_argument("runs", nargs="+", metavar="[NAME=]RUN_DIR", help="trained run folders")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=arguments.positive_int, default=8000, help="port (8000)")
    _add_data(serve)
    serve.add_argument(
        "--workers", type=arguments.positive_int, default=1,
        help="worker processes, each with every model loaded (default: 1)",
    )  # fmt: skip
    serve.add_argument(
        "--retention-hours", type=arguments.positive_float, default=24.0, metavar="H",
        help="delete a job's files this long after it finished (default: 24)",
    )  # fmt: skip
    serve.add_argument(
        "--max-upload-mb", type=arguments.positive_float, default=1024.0, metavar="MB",
        help="the largest upload accepted (default: 1024)",
    )  # fmt: skip
    arguments.add_device(serve)

    keys = arguments.add_command(
        subparsers, "serve-keys", "segment",
        "Manage the API keys of medseg serve (also: medseg serve keys ...).",
        KEYS_EXAMPLES, run_keys,
    )  # fmt: skip
    keys.add_argument("action", choices=["add", "list", "revoke"], help="what to do")
    keys.add_argument("name", nargs="?", help="the key's name (a person or a system)")
    keys.add_argument("--role", choices=["user", "admin"], default="user", help="(user)")
    _add_data(keys)

    submit = arguments.add_command(
        subparsers, "submit", "segment",
        "Send images to a medseg serve and download the label maps.",
        SUBMIT_EXAMPLES, run_submit,
    )  # fmt: skip
    submit.add_argument("server", help="the service's address, e.g. http://127.0.0.1:8000")
    submit.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help="images or folders")
    submit.add_argument("--model", required=True, help="the model's name (GET /health lists)")
    submit.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    submit.add_argument("--key", help="API key (default: $MEDSEG_API_KEY)")
    submit.add_argument("--tta", action="store_true", help="average mirrored copies too")


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, default=Path("medseg_serve"), metavar="DIR",
        help="jobs, results, keys (medseg.sqlite); default: ./medseg_serve",
    )  # fmt: skip


def run_serve(args: argparse.Namespace) -> int:
    from medseg.serve.server import parse_models, serve
    from medseg.serve.uploads import Limits

    models = parse_models(args.runs)
    limits = Limits(upload_bytes=int(args.max_upload_mb * 2**20))
    serve(models, args.data, host=args.host, port=args.port, workers=args.workers,
          device=args.device, retention_hours=args.retention_hours, limits=limits)  # fmt: skip
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from medseg.errors import ConfigError
    from medseg.serve.keys import KeyStore

    store = KeyStore(args.data)
    if args.action == "list":
        for row in store.list():
            revoked = " (revoked)" if row["revoked"] else ""
            console.print(f"{row['name']}  {row['role']}{revoked}")
        return 0
    if not args.name:
        raise ConfigError(f"medseg serve keys {args.action}: give the key's NAME")
    if args.action == "revoke":
        store.revoke(args.name)
        console.print(f"revoked {args.name}'s key")
        return 0
    key = store.add(args.name, args.role)
    console.print(f"created a {args.role} key for {args.name}; it is shown only now:")
    print(key)
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from medseg.serve.client import submit_files

    results = submit_files(args.server, args.inputs, args.model, args.out, args.key, args.tta)
    for row in results:
        if row["state"] == "done":
            console.print(
                f"{row['input']}: wrote {row['file']} ({row['seconds']:.1f} s on the server)"
            )
        else:
            console.print(f"{row['input']}: job {row['id']} {row['state']}: {row['error']}")
    return 0 if all(row["state"] == "done" for row in results) else 2
