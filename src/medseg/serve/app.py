"""The HTTP API of ``medseg serve`` (FastAPI): jobs in, results out, behind API keys.

The contract clients rely on (docs/serve.md):

- ``Authorization: Bearer KEY`` on every call but ``GET /health``;
- ``POST /jobs`` (multipart form: ``file``, ``model``; optional ``tta``, ``probabilities``)
  answers 202 with ``{"id": ...}``;
- ``GET /jobs/{id}`` answers ``{"state": "queued|running|done|failed|cancelled|expired",
  "progress": 0..1, ...}``; ``GET /jobs`` lists the caller's jobs (an admin's: all);
- ``GET /jobs/{id}/result``: the label map in the input's format family (NIfTI for
  NIfTI/NRRD/MHA, PNG for PNG, a zip with NIfTI and DICOM-SEG for a DICOM series);
  ``/probabilities`` and ``/manifest`` beside it; ``DELETE /jobs/{id}`` cancels;
- ``GET /viewer/{id}``: the browser viewer (`medseg.serve.viewer`).

A user sees only their own jobs (another's answer 404, as a missing one); an admin sees and
cancels all. Failed authentications are counted per address and refused with 429 beyond
`FailureLimiter`'s limit; the log names job ids, sizes and addresses, never a key, an upload's
file name or anything read from the data.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from medseg import __version__
from medseg.serve.auth import Caller, Reader
from medseg.serve.keys import FailureLimiter, Identity, KeyStore
from medseg.serve.limits import BodyLimit
from medseg.serve.store import Job, JobStore, new_job_id
from medseg.serve.uploads import Limits, UploadError, input_format, unpack_dicom_zip
from medseg.serve.viewer import add_viewer_routes
from medseg.serve.worker import job_folder

LOG = logging.getLogger("medseg.serve")
RESULT_FILES = {"png": "labels.png", "dicom": "labels.zip"}  # others: labels.nii.gz


@dataclass
class ServiceState:
    """What the endpoints share: the data folder, the models and the stores."""

    data_dir: Path
    models: dict[str, Path]
    limits: Limits = field(default_factory=Limits)
    workers_alive: object = None  # a callable returning the live worker count, if any

    def __post_init__(self) -> None:
        self.jobs = JobStore(self.data_dir)
        self.keys = KeyStore(self.data_dir, self.jobs.connection)
        self.limiter = FailureLimiter()
        self.sessions: dict[str, tuple[Identity, float]] = {}


def create_app(state: ServiceState) -> FastAPI:
    """The FastAPI application serving ``state``."""
    app = FastAPI(
        title="medseg",
        version=__version__,
        description="Segmentation jobs: upload an image, poll the job, download the labels.",
    )
    app.state.service = state
    app.add_middleware(BodyLimit, limit=state.limits.upload_bytes + 2**16)  # + the form

    @app.get("/health", tags=["service"])
    async def health() -> dict:
        """Liveness, version and models; needs no key."""
        alive = state.workers_alive() if callable(state.workers_alive) else None
        return {"status": "ok", "version": __version__, "models": sorted(state.models),
                "workers": alive}  # fmt: skip

    @app.post("/jobs", status_code=202, tags=["jobs"])
    async def submit(
        file: Annotated[UploadFile, File(description="NIfTI, NRRD, MHA, PNG or a series zip")],
        model: Annotated[str, Form(description="a model name from GET /health")],
        who: Caller,
        tta: Annotated[bool, Form(description="average the mirrored copies too")] = False,
        probabilities: Annotated[bool, Form(description="keep the probabilities (3D)")] = False,
    ) -> dict:
        """Queue a job; answers its id."""
        if model not in state.models:
            known = ", ".join(sorted(state.models))
            raise HTTPException(404, f"no model named {model!r} (models: {known})")
        try:
            kind, name = input_format(file.filename)
            job_id = new_job_id()
            size = await run_in_threadpool(_store_input, file, state, job_id, kind, name)
        except UploadError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        options = {"tta": tta, "probabilities": probabilities}
        state.jobs.add(job_id, who.name, model, kind, name, size, options)
        LOG.info(
            "job %s: queued by %s (%d bytes, %s, model %s)", job_id, who.name, size, kind, model
        )
        return {"id": job_id}

    @app.get("/jobs", tags=["jobs"])
    async def list_jobs(who: Caller) -> dict:
        """The caller's jobs, newest first (an admin's: everybody's)."""
        jobs = state.jobs.list(None if who.admin else who.name)
        return {"jobs": [job.public() for job in jobs]}

    @app.get("/jobs/{job_id}", tags=["jobs"])
    async def job_status(job_id: str, who: Reader) -> dict:
        """State, progress, timings and error of a job."""
        return _visible_job(state, job_id, who).public()

    @app.delete("/jobs/{job_id}", tags=["jobs"])
    async def cancel(job_id: str, who: Caller) -> dict:
        """Cancel a queued or running job (its owner or an admin)."""
        job = _visible_job(state, job_id, who)
        if not state.jobs.cancel(job.id):
            raise HTTPException(409, f"job {job.id} is already {job.state}")
        LOG.info("job %s: cancelled by %s", job.id, who.name)
        return {"id": job.id, "state": "cancelled"}

    @app.get("/jobs/{job_id}/result", tags=["results"])
    async def result(job_id: str, who: Reader) -> FileResponse:
        """The label map of a finished job."""
        job = _done_job(state, job_id, who)
        name = RESULT_FILES.get(job.kind, "labels.nii.gz")
        return _result_file(state, job, name, f"{job.id}_{name}")

    @app.get("/jobs/{job_id}/probabilities", tags=["results"])
    async def probabilities_file(job_id: str, who: Reader) -> FileResponse:
        """The class probabilities (asked for with ``probabilities=true``, 3D images)."""
        job = _done_job(state, job_id, who)
        return _result_file(
            state, job, "labels_probabilities.nii.gz", f"{job.id}_probabilities.nii.gz"
        )

    @app.get("/jobs/{job_id}/manifest", tags=["results"])
    async def manifest(job_id: str, who: Reader) -> FileResponse:
        """Model, version, timings, input geometry and quality scores of a finished job."""
        job = _done_job(state, job_id, who)
        return _result_file(state, job, "manifest.json", f"{job.id}_manifest.json")

    add_viewer_routes(app, state, _visible_job)

    @app.exception_handler(HTTPException)
    async def one_line(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = " ".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, 422)

    return app


def _visible_job(state: ServiceState, job_id: str, who: Identity) -> Job:
    job = state.jobs.get(job_id)
    if job is None or not (who.admin or job.owner == who.name):
        raise HTTPException(404, f"no job {job_id}")
    return job


def _done_job(state: ServiceState, job_id: str, who: Identity) -> Job:
    job = _visible_job(state, job_id, who)
    if job.state != "done":
        detail = f"job {job.id} is {job.state}" + (f": {job.error}" if job.error else "")
        raise HTTPException(409, detail)
    return job


def _result_file(state: ServiceState, job: Job, name: str, download: str) -> FileResponse:
    path = job_folder(state.data_dir, job.id) / "result" / name
    if not path.is_file():
        raise HTTPException(404, f"job {job.id} has no {name}")
    return FileResponse(path, filename=download)


def _store_input(upload: UploadFile, state: ServiceState, job_id: str, kind: str, name: str) -> int:
    """Copy the upload under the job's folder (a zip: its checked members); returns bytes."""
    folder = job_folder(state.data_dir, job_id)
    folder.mkdir(parents=True)
    try:
        with open(folder / name, "wb") as sink:
            shutil.copyfileobj(upload.file, sink, 2**20)
        size = (folder / name).stat().st_size
        if size > state.limits.upload_bytes:
            raise UploadError(
                f"the upload is {size} bytes (at most {state.limits.upload_bytes})", 413
            )
        if size == 0:
            raise UploadError("the upload is empty")
        if kind == "dicom":
            unpack_dicom_zip(folder / name, folder / "dicom", state.limits)
            (folder / name).unlink()
        return size
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
