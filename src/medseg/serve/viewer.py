"""The browser viewer of ``medseg serve``: ``/viewer/{job}`` shows a job's image with its
label map on niivue (axial, coronal, sagittal; scrolling, window/level, overlay opacity,
per-label colours and toggles, a crosshair readout of value and label).

The page is a static shell (``static/viewer.html``, ``static/viewer.js``); niivue's ES module
bundle is ``static/niivue/niivue.js``, installed by ``./run`` from npm at the version pinned
there (never fetched at run time, never from a CDN; docs/serve.md says how to update it).
The page reads the volumes from the same origin: ``/jobs/{id}/view/image`` and
``/jobs/{id}/view/labels`` (NIfTI, converted once from the stored input and result) and the
label names from ``/jobs/{id}/view/labels.json``. A browser cannot send the API key as a
header on navigation, so the page asks for it once and ``POST /session`` turns it into a
session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) that is accepted for reading
only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from medseg.serve.auth import Reader, check_key
from medseg.serve.sessions import SESSION_COOKIE, SESSION_SECONDS, open_session_token
from medseg.serve.worker import job_folder, read_job_image

if TYPE_CHECKING:
    from medseg.serve.app import ServiceState

STATIC = Path(__file__).parent / "static"
#: The viewer's security headers: same-origin everything, no framing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def viewer_available() -> bool:
    """Whether niivue's bundle is installed (``./run`` installs it)."""
    return (STATIC / "niivue" / "niivue.js").is_file()


def add_viewer_routes(app: FastAPI, state: ServiceState, visible_job) -> None:
    """``/viewer/{job}``, ``/session``, ``/static/*`` and the ``/jobs/{id}/view/*`` volumes."""

    @app.post("/session", tags=["viewer"], status_code=204)
    async def open_session(request: Request, key: str = Form(...)) -> Response:
        """Turn an API key into a session cookie for the viewer (reading only)."""
        who = check_key(request, key)
        token = open_session_token(state, who)
        response = Response(status_code=204)
        secure = request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True,
                            samesite="strict", secure=secure, path="/")  # fmt: skip
        return response

    @app.get("/viewer/{job_id}", tags=["viewer"], response_class=HTMLResponse)
    async def viewer(job_id: str) -> HTMLResponse:
        """The viewer page of a job (it asks for the key when there is no session)."""
        if not re.fullmatch("[0-9a-f]{16}", job_id):
            raise HTTPException(404, f"no job {job_id[:40]}")
        if not viewer_available():
            raise HTTPException(503, "the viewer is not installed: run ./run to install niivue")
        page = (STATIC / "viewer.html").read_text(encoding="utf-8")
        return HTMLResponse(page.replace("{{JOB}}", job_id), headers=_HEADERS)

    @app.get("/static/{name:path}", include_in_schema=False)
    async def static(name: str) -> FileResponse:
        path = (STATIC / name).resolve()
        if STATIC.resolve() not in path.parents or not path.is_file():
            raise HTTPException(404, "no such file")
        media = "text/javascript" if path.suffix == ".js" else None
        return FileResponse(path, media_type=media, headers=_HEADERS)

    @app.get("/jobs/{job_id}/view/{part}", tags=["viewer"])
    async def view_volume(job_id: str, part: str, who: Reader):
        """The image or label map as NIfTI (``image``, ``labels``) or the label names
        (``labels.json``) for the viewer."""
        job = visible_job(state, job_id, who)
        if job.state != "done":
            raise HTTPException(409, f"job {job.id} is {job.state}")
        folder = job_folder(state.data_dir, job.id)
        if part == "labels.json":
            manifest = json.loads((folder / "result" / "manifest.json").read_text())
            return JSONResponse(manifest["labels"])
        if part not in ("image", "labels"):
            raise HTTPException(404, "no such view")
        path = await run_in_threadpool(_view_file, folder, job.kind, job.input, part)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)


def _view_file(folder: Path, kind: str, input_name: str, part: str) -> Path:
    """A NIfTI copy of the job's image or labels (made on the first request, then kept)."""
    from medseg.io import write_image

    if part == "labels":
        return folder / "result" / "labels.nii.gz"
    if kind == "nifti":
        return folder / input_name
    target = folder / "result" / "view_image.nii.gz"
    if not target.is_file():
        write_image(read_job_image(folder, kind, input_name), target)
    return target
