"""A worker process of ``medseg serve``: loads every model once, then takes queued jobs from
the database one at a time and writes their results.

Per job ``DATA/jobs/{id}/``: the stored input (``input.*`` or ``dicom/``) and, once done,
``result/``: the label map (``labels.nii.gz``, or ``labels.png`` for a PNG; for a DICOM
series ``labels.zip`` holding ``labels.nii.gz`` and the DICOM-SEG ``labels_seg.dcm``), the
probabilities when asked for (``probabilities.nii.gz``, 3D only) and ``manifest.json``
(model, versions, timings, input geometry, quality scores). The result is written into a
temporary folder and renamed into place only while the worker's claim on the job stands.

A worker dies with the server: on Linux the kernel kills it when its parent goes
(``PR_SET_PDEATHSIG``), elsewhere a watchdog thread notices the parent is gone.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.errors import MedsegError
from medseg.serve.store import Job, JobStore

LOG = logging.getLogger("medseg.serve")
#: Seconds between looks at the queue when it is empty.
POLL_SECONDS = 0.2


def job_folder(data_dir: Path, job_id: str) -> Path:
    """Where a job's input and result live."""
    return data_dir / "jobs" / job_id


def read_job_image(folder: Path, kind: str, input_name: str):
    """The stored input of a job: its DICOM series (``dicom/``) or its image file."""
    from medseg.io import read_image
    from medseg.io.dicom import read_dicom_series

    return (
        read_dicom_series(folder / "dicom") if kind == "dicom" else read_image(folder / input_name)
    )


def run_worker(
    data_dir: Path, models: dict[str, Path], device: str, threads: int, server: int
) -> None:
    """The body of a worker process started by the server process ``server`` (its pid)."""
    _die_with_parent(server)
    log_to_stderr()
    import torch

    from medseg.infer import load_trained_model
    from medseg.postprocess.model import load_postprocessing

    torch.set_num_threads(threads)
    loaded = {name: load_trained_model(run, device) for name, run in models.items()}
    postprocessing = {name: load_postprocessing(m.run_dir) for name, m in loaded.items()}
    store = JobStore(data_dir)
    while True:
        job = store.claim(list(models), os.getpid())
        if job is None:
            time.sleep(POLL_SECONDS)
            continue
        LOG.info("job %s: running (%d bytes)", job.id, job.bytes)
        error = process_job(store, job, data_dir, loaded[job.model], postprocessing[job.model])
        if store.finish(job, error):
            LOG.info("job %s: %s", job.id, "failed" if error else "done")


def process_job(store: JobStore, job: Job, data_dir: Path, model, postprocessing) -> str | None:
    """Predict one job and move its result into place; returns an error message or None."""
    folder = job_folder(data_dir, job.id)
    scratch = folder / f".result-{job.claim}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        manifest = _predict(store, job, folder, scratch, model, postprocessing)
        (scratch / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        if not store.still_mine(job):  # cancelled, or handed to another worker
            shutil.rmtree(scratch, ignore_errors=True)
            return None
        shutil.rmtree(folder / "result", ignore_errors=True)
        os.replace(scratch, folder / "result")
        return None
    except MedsegError as exc:
        return str(exc).replace(str(folder) + os.sep, "")
    except Exception as exc:  # a defect: keep serving, log where (no patient data in it)
        LOG.error("job %s: %s", job.id, "".join(traceback.format_exception_only(exc)).strip())
        return f"internal error ({type(exc).__name__}); the server log has the details"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _predict(store: JobStore, job: Job, folder: Path, scratch: Path, model, postprocessing):
    from medseg.infer.outputs import run_segments, write_prediction
    from medseg.infer.predict import check_fits_model, predict_labels, write_probabilities
    from medseg.infer.quality import case_scores, flag, load_calibration
    from medseg.io import write_image

    timings, start = {}, time.perf_counter()
    dicom = job.kind == "dicom"
    source = folder / "dicom" if dicom else folder / job.input
    image = read_job_image(folder, job.kind, job.input)
    check_fits_model(image, model.config, Path(job.input))
    timings["read"] = time.perf_counter() - start
    store.progress(job, 0.2)
    members: list[np.ndarray] = []
    labels, probabilities = predict_labels(
        model, image, bool(job.options.get("tta")), postprocessing, source=job.id, members=members
    )
    timings["predict"] = time.perf_counter() - start - timings["read"]
    store.progress(job, 0.9)
    scratch.mkdir(parents=True)
    suffix = ".png" if job.kind == "png" else ".nii.gz"
    formats = ("nifti", "dicom-seg") if dicom else ("nifti",)
    segments = run_segments(model.run_dir, model.config) if dicom else []
    files = write_prediction(
        labels, scratch, "labels", suffix, formats, dicom_series=source if dicom else None,
        segments=segments, run_name=model.run_dir.name,
    )  # fmt: skip
    if dicom:
        _zip(files, scratch / "labels.zip")
    if job.kind == "png":  # the viewer reads NIfTI
        write_image(labels, scratch / "labels.nii.gz")
    if job.options.get("probabilities") and image.ndim == 3:
        write_probabilities(probabilities, image, model.config, scratch / "labels", "nifti")
    calibration = load_calibration(model.run_dir)
    voxel_ml = float(np.prod(image.spacing)) / 1000.0
    scores = case_scores(probabilities, labels.array[0], members, voxel_ml, calibration)
    timings["write"] = time.perf_counter() - start - timings["read"] - timings["predict"]
    return {
        "job": job.id, "model": job.model, "run": model.run_dir.name, "medseg": __version__,
        "tta": bool(job.options.get("tta")), "postprocessing": postprocessing is not None,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "input": {"kind": job.kind, "shape": list(image.spatial_shape), "channels": image.channels,
                  "spacing": [round(float(s), 6) for s in image.spacing],
                  "affine": np.round(image.affine, 6).tolist()},
        "labels": dict(zip(map(str, model.config.label_values), model.config.label_names)),
        "quality": {k: (round(v, 6) if np.isfinite(v) else None) for k, v in scores.items()}
        | {"flag": flag(scores, calibration) or None},
    }  # fmt: skip


def _zip(files: list[Path], target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.name)


def _die_with_parent(parent: int) -> None:
    """End this process when the server process ends, however it ends."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def log_to_stderr() -> None:
    """Send the service's log (job ids, sizes, states; never data) to stderr."""
    logger = logging.getLogger("medseg.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
