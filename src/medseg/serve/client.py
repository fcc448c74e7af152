"""`Client`: the Python client of ``medseg serve`` (``medseg submit`` uses it).

Examples
--------
>>> client = Client("http://127.0.0.1:8000", key)  # doctest: +SKIP
>>> job = client.submit("case_0000.nii.gz", model="hippo")  # doctest: +SKIP
>>> client.wait(job)["state"]  # doctest: +SKIP
'done'
>>> client.download(job, "results/")  # doctest: +SKIP
PosixPath('results/case_labels.nii.gz')
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from medseg.errors import MedsegError
from medseg.io import atomic_path

#: The environment variable `Client` and ``medseg submit`` read the key from.
KEY_VARIABLE = "MEDSEG_API_KEY"
_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".png", ".zip")


class ServiceError(MedsegError):
    """The service answered with an error (its one-line ``detail`` is the message)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"server answered {status}: {detail}")
        self.status = status


class Client:
    """Calls the API of a ``medseg serve`` at ``url`` with ``key`` (default: the
    ``MEDSEG_API_KEY`` environment variable)."""

    def __init__(self, url: str, key: str | None = None, timeout: float = 600.0) -> None:
        import httpx

        key = key or os.environ.get(KEY_VARIABLE)
        if not key:
            raise MedsegError(f"no API key: pass one or set {KEY_VARIABLE}")
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )

    def health(self) -> dict[str, Any]:
        """The service's version, models and workers."""
        return self._json(self.http.get("/health"))

    def submit(self, path: str | Path, model: str, tta: bool = False,
               probabilities: bool = False) -> str:  # fmt: skip
        """Queue a job for the image file (or zip of a DICOM series) at ``path``; its id.
        A DICOM series folder is zipped on the way."""
        path = Path(path)
        data = {
            "model": model,
            "tta": str(tta).lower(),
            "probabilities": str(probabilities).lower(),
        }
        if path.is_dir():
            payload, name = _zip_folder(path), "series.zip"
        else:
            payload, name = path.read_bytes(), path.name
        response = self.http.post("/jobs", data=data, files={"file": (name, payload)})
        return str(self._json(response)["id"])

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's state, progress, timings and error."""
        return self._json(self.http.get(f"/jobs/{job_id}"))

    def jobs(self) -> list[dict[str, Any]]:
        """The caller's jobs (an admin's: all), newest first."""
        return self._json(self.http.get("/jobs"))["jobs"]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job."""
        return self._json(self.http.delete(f"/jobs/{job_id}"))

    def wait(self, job_id: str, poll: float = 0.5, timeout: float | None = None) -> dict[str, Any]:
        """Poll until the job is no longer queued or running; its last status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(job_id)
            if status["state"] not in ("queued", "running"):
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise MedsegError(f"job {job_id} is still {status['state']} after {timeout} s")
            time.sleep(poll)

    def download(self, job_id: str, out_dir: str | Path, stem: str | None = None,
                 part: str = "result") -> Path:  # fmt: skip
        """Write the job's ``result`` (or ``probabilities``, ``manifest``) into ``out_dir``
        as ``{stem}_{name}`` (default stem: the job id); returns the file."""
        response = self.http.get(f"/jobs/{job_id}/{part}")
        if response.status_code != 200:
            self._json(response)
        name = response.headers.get("content-disposition", "").rpartition("filename=")[2]
        name = name.strip('"').removeprefix(f"{job_id}_") or f"{part}.bin"
        target = Path(out_dir) / f"{stem or job_id}_{Path(name).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            Path(tmp).write_bytes(response.content)
        return target

    @staticmethod
    def _json(response) -> Any:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(response.status_code, str(detail))
        return response.json()


def submit_files(server: str, inputs: list[Path], model: str, out_dir: str | Path,
                 key: str | None = None, tta: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Queue every input (all first, so the server works while we wait), wait for each and
    download its label map and manifest into ``out_dir`` as ``{case}_labels.*`` and
    ``{case}_manifest.json``; one row per input: input, id, state, file, seconds, error."""
    import json

    client = Client(server, key)
    jobs = [(Path(path), client.submit(path, model, tta=tta)) for path in inputs]
    rows = []
    for path, job_id in jobs:
        status = client.wait(job_id)
        row = {"input": str(path), "id": job_id, "state": status["state"], "file": None,
               "seconds": None, "error": status.get("error")}  # fmt: skip
        if status["state"] == "done":
            stem = case_stem(path)
            row["file"] = str(client.download(job_id, out_dir, stem))
            manifest = client.download(job_id, out_dir, stem, part="manifest")
            row["seconds"] = sum(json.loads(manifest.read_text())["seconds"].values())
        rows.append(row)
    return rows


def case_stem(path: Path) -> str:
    """A file's name without its image ending (``case_0000.nii.gz`` -> ``case_0000``).

    Examples
    --------
    >>> case_stem(Path("scans/case_0000.nii.gz")), case_stem(Path("series_dir"))
    ('case_0000', 'series_dir')
    """
    for ending in _ENDINGS:
        if path.name.lower().endswith(ending):
            return path.name[: -len(ending)]
    return path.name


def _zip_folder(folder: Path) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number, path in enumerate(sorted(p for p in folder.rglob("*") if p.is_file())):
            archive.write(path, f"{number:05d}.dcm")
    return buffer.getvalue()
