"""``medseg predict`` over a cohort: every case, in worker processes if asked, recorded in
``predictions.json``, resumable, and never stopped by one bad case.

``OUT/predictions.json`` holds what made the predictions (medseg version, the run folder and
its plan's SHA-256, folds, TTA, post-processing, formats, device) and one entry per case:
``done`` or ``failed``, seconds, the SHA-256 of each input file, the files written, the
error; it is written once a case is done (a run whose every case is refused leaves
nothing). Run again with the same command, a case recorded ``done`` whose files all exist
is skipped, so a killed cohort finishes where it stopped (every output is written
atomically); any other setting predicts everything again. A case that fails is recorded
with its error and the others go on; the command ends with an error naming how many failed.

Run by torchrun, on one machine or several, each process takes every ``WORLD_SIZE``-th case
of the input list from its ``RANK`` on (`medseg.parallel.Ranks.items`: a fixed share, so
that a restarted job resumes) and uses ``cuda:LOCAL_RANK`` on GPUs
(`medseg.device.rank_device`), its part of the machine's cores otherwise. No process group
is needed: the ranks meet only in the output folder, whose ``predictions.json`` they update
in turn under a lock (`medseg.runs.manifest.run_lock`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg import __version__
from medseg.datasets import Case, read_case_image
from medseg.device import rank_device, resolve_device, resolve_precision
from medseg.errors import ConfigError, ImageReadError, MedsegError, located
from medseg.export import export_folder_of, is_export_folder
from medseg.infer.lesions import lesion_rows, write_lesions
from medseg.infer.outputs import DICOM_FORMATS, parse_formats, run_segments, write_prediction
from medseg.infer.predict import (
    check_fits_model,
    find_input_cases,
    label_suffix,
    load_trained_model,
    mirror_axes,
    predict_labels,
    write_probabilities,
)
from medseg.infer.quality import load_calibration
from medseg.infer.uncertainty_files import quality_row, write_quality, write_uncertainty
from medseg.io import read_dicom_series, write_text_atomic
from medseg.io.outputs import prepare_output_folder
from medseg.parallel import map_in_processes, ranks_from_environment
from medseg.postprocess import load_postprocessing
from medseg.progress import log_line, warn
from medseg.runs.manifest import plan_hash, run_lock

PREDICTIONS_FILE = "predictions.json"


@dataclass(frozen=True)
class PredictSettings:
    """Everything that decides a case's prediction (the same settings may resume a cohort)."""

    run_dir: Path
    device: str = "auto"
    series: str | None = None
    tta: bool = False
    save_probabilities: str | None = None
    postprocess: bool = True
    folds: tuple[int | str, ...] | None = None
    formats: tuple[str, ...] = ("nifti",)
    lesions: bool = False
    uncertainty: bool = False
    compile_networks: bool = False
    precision: str = "auto"

    def describe(self) -> dict[str, Any]:
        """The settings as JSON values, with the run folder resolved and its plan's hash."""
        values = asdict(self)
        values["run_dir"] = str(Path(self.run_dir).resolve())
        values["plan_sha256"] = plan_hash(Path(self.run_dir))
        values["folds"] = list(self.folds) if self.folds is not None else None
        values["formats"] = list(self.formats)
        export = is_export_folder(Path(self.run_dir))
        values["engine"] = "onnxruntime" if export else "torch"
        dtype = torch.float32
        if not export:
            dtype = resolve_precision(self.precision, resolve_device(self.device))
        values["computed_in"] = str(dtype).removeprefix("torch.")  # what auto resolved to
        return values


#: Per process: the model of each settings, loaded once (for one `predict_paths` call).
_LOADED: dict[PredictSettings, dict[str, Any]] = {}


#: What runs the networks: PyTorch, or onnxruntime on the run's ONNX export.
ENGINES = ("torch", "onnxruntime")


def predict_paths(
    run_dir: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    device: str = "auto",
    quiet: bool = False,
    series: str | None = None,
    tta: bool = False,
    save_probabilities: str | None = None,
    postprocess: bool = True,
    folds: list[int | str] | None = None,
    formats: str | list[str] | tuple[str, ...] = ("nifti",),
    lesions: bool = False,
    uncertainty: bool = False,
    jobs: int = 1,
    engine: str = "torch",
    compile_networks: bool = False,
    precision: str = "auto",
) -> list[Path]:
    """Predict every case among ``inputs`` and write ``{case}{ending}`` into ``out_dir``.

    Returns the files written (those of cases predicted before and skipped included). Each
    label map has exactly its input's shape and affine; a DICOM series folder gives
    ``{folder}.nii.gz`` (``series`` picks one of several series in a folder, by UID or
    description). Every fold of the run (or those in ``folds``) votes by averaging its
    softmax; ``tta`` adds every mirrored copy of the image; ``save_probabilities`` (``npz``
    or ``nifti``) writes the averaged probabilities too. The run folder's
    ``postprocessing.json`` (from ``medseg postprocess --auto``) is applied unless
    ``postprocess`` is false. ``formats``: ``nifti`` is that label map (NIfTI for a DICOM
    series, else the input's own format); ``dicom-seg`` adds ``{case}_seg.dcm``, a DICOM
    Segmentation referencing the series, and ``rtstruct`` ``{case}_rtstruct.dcm``, an RT
    Structure Set (DICOM series inputs only). ``lesions`` writes ``lesions.csv``: every
    connected component of every predicted label with its centroid, box, volume and
    confidence (`medseg.infer.lesions`). ``uncertainty`` writes ``{case}_uncertainty.nii.gz``
    (the normalised entropy of the averaged probabilities) and ``quality.csv`` (per case:
    scores and, once the run is calibrated, an ``ok``/``review`` flag;
    `medseg.infer.quality`). ``jobs`` worker processes share the cases (one thread each).
    ``predictions.json`` records it all and makes the command resumable (module text).
    ``engine="onnxruntime"`` predicts with the run's ONNX export (`medseg.export`; a
    ``run_dir`` that is an export folder always does). ``compile_networks`` runs the networks
    through ``torch.compile`` (`medseg.infer.predict.compiled`). ``precision``: what the
    networks compute in (`medseg.device.resolve_precision`; ``auto`` is bfloat16 on a CPU
    with native bfloat16, float16 on CUDA).
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine}: expected one of {', '.join(ENGINES)}")
    if engine == "onnxruntime":
        run_dir = export_folder_of(Path(run_dir))
    prepare_output_folder(out_dir)
    if save_probabilities not in (None, "npz", "nifti"):
        raise ConfigError(f"--save-probabilities: expected npz or nifti, got {save_probabilities}")
    settings = PredictSettings(
        Path(run_dir), device, series, tta, save_probabilities, postprocess,
        tuple(folds) if folds is not None else None, parse_formats(formats), lesions,
        uncertainty, compile_networks, precision,
    )  # fmt: skip
    cases = find_input_cases(inputs)
    _check_dicom_formats(cases, settings.formats)
    ranks = ranks_from_environment()  # under torchrun: this rank's part of the cohort
    mine = ranks.items(cases)
    if ranks.distributed and jobs == 1:
        torch.set_num_threads(ranks.threads())
    _LOADED[settings] = _load(settings)  # run-folder errors before anything is written
    if _LOADED[settings]["model"].config.regions and (uncertainty or lesions):
        option = "--uncertainty" if uncertainty else "--lesions"
        raise ConfigError(f"{option}: not yet for region-based runs (sigmoid outputs)")
    if tta and mirror_axes(_LOADED[settings]["model"].config) == [()]:
        warn(
            "--tta: the model was trained without mirroring, so no mirrored copies are "
            "predicted (they would lower its accuracy)"
        )
    out_dir = Path(out_dir)
    record = _Record(out_dir, settings.describe(), shared=ranks.distributed)
    todo = [case for case in mine if not record.finished(case.case_id)]
    if len(todo) < len(mine):
        log_line(f"{len(mine) - len(todo)} case(s) already predicted: skipped", quiet)
    work = functools.partial(predict_case, settings, out_dir)
    try:
        for entry in map_in_processes(work, todo, jobs, "predicting", quiet):
            record.add(entry)
            if entry["status"] == "done":
                log_line(f"wrote {', '.join(entry['outputs'])}", quiet)
    finally:
        _LOADED.pop(settings, None)  # the next call loads the run folder afresh
    return _finish(record, mine, cases, settings, out_dir)


def predict_case(settings: PredictSettings, out_dir: Path, case: Case) -> dict[str, Any]:
    """Predict one case and write its files; its ``predictions.json`` entry (``failed``
    with the error, rather than an exception, when the case cannot be predicted)."""
    start = time.perf_counter()
    entry: dict[str, Any] = {"case": case.case_id}
    try:
        entry["inputs"] = _checksums(case)
        loaded = _LOADED.get(settings) or _LOADED.setdefault(settings, _load(settings))
        entry |= _predict(settings, loaded, out_dir, case)
        entry["status"] = "done"
    except MedsegError as exc:
        entry |= {"status": "failed", "error": str(exc)}
    entry["seconds"] = round(time.perf_counter() - start, 3)
    return entry


def _load(settings: PredictSettings) -> dict[str, Any]:
    device = settings.device  # an ONNX export runs on the CPU, whatever was asked
    if not is_export_folder(Path(settings.run_dir)):
        device = str(rank_device(resolve_device(device), ranks_from_environment()))
    model = load_trained_model(
        settings.run_dir, device, settings.folds, settings.compile_networks, settings.precision
    )
    dicom = DICOM_FORMATS & set(settings.formats)
    return {
        "model": model,
        "segments": run_segments(model.run_dir, model.config) if dicom else [],
        "postprocessing": load_postprocessing(model.run_dir) if settings.postprocess else None,
        "calibration": load_calibration(model.run_dir) if settings.uncertainty else None,
    }


def _predict(settings, loaded, out_dir: Path, case: Case) -> dict[str, Any]:
    model, source = loaded["model"], case.image_paths[0]
    image = read_dicom_series(source, settings.series) if source.is_dir() else read_case_image(case)
    suffix = ".nii.gz" if source.is_dir() else label_suffix(source)
    check_fits_model(image, model.config, source)
    members: list[np.ndarray] | None = [] if settings.uncertainty else None
    needed = bool(settings.save_probabilities or settings.lesions or settings.uncertainty)
    labels, probabilities = predict_labels(
        model, image, settings.tta, loaded["postprocessing"], source=source, members=members,
        keep_probabilities=needed,
    )  # fmt: skip
    files = write_prediction(
        labels, out_dir, case.case_id, suffix, settings.formats,
        dicom_series=source if source.is_dir() else None, series=settings.series,
        segments=loaded["segments"], run_name=model.run_dir.name,
    )  # fmt: skip
    if settings.save_probabilities:
        stem = out_dir / case.case_id
        files.append(write_probabilities(probabilities, image, model.config, stem,
                                         settings.save_probabilities))  # fmt: skip
    entry: dict[str, Any] = {}
    if settings.lesions:
        entry["lesions"] = lesion_rows(case.case_id, labels, probabilities, model.config)
    if members is not None:
        calibration = loaded["calibration"]
        files.append(write_uncertainty(probabilities, labels, out_dir, case.case_id, calibration))
        entry["quality"] = quality_row(case.case_id, probabilities, labels, members, calibration)
    return entry | {"outputs": [f.name for f in files]}


def _finish(
    record: _Record, mine: list[Case], cases: list[Case], settings: PredictSettings, out_dir: Path
) -> list[Path]:
    """The files of this process's cases, and the cohort-wide lesion and quality tables
    from every case done so far (under torchrun the last rank to finish writes them
    whole); `MedsegError` when one of this process's cases failed."""
    own = [record.cases[case.case_id] for case in mine]
    written = [out_dir / name for e in own if e["status"] == "done" for name in e["outputs"]]
    record.refresh()
    present = [record.cases.get(case.case_id) for case in cases]
    done = [e for e in present if isinstance(e, dict) and e.get("status") == "done"]
    if settings.lesions:
        written.append(write_lesions([row for e in done for row in e["lesions"]], out_dir))
    if settings.uncertainty:
        written.append(write_quality([e["quality"] for e in done], out_dir))
    failed = [e for e in own if e["status"] == "failed"]
    if failed:
        raise MedsegError(
            f"{len(failed)} of {len(mine)} case(s) failed, the others are written "
            f"({out_dir / PREDICTIONS_FILE} lists each); {failed[0]['error']}"
        )
    return written


class _Record:
    """``predictions.json``: read at the start (when its settings are these), rewritten
    atomically after every case. ``shared``: other processes (torchrun's ranks) write it
    too; each update then happens under a lock and keeps their entries."""

    def __init__(self, out_dir: Path, settings: dict[str, Any], shared: bool = False) -> None:
        self.path, self.out_dir = out_dir / PREDICTIONS_FILE, out_dir
        self.settings, self.shared = settings, shared
        self.cases: dict[str, dict[str, Any]] = self._recorded()
        self.own: set[str] = set()

    def _recorded(self) -> dict[str, dict[str, Any]]:
        """The file's entries when its settings are these, else none."""
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(value, dict) or value.get("settings") != self.settings:
            return {}
        cases = value.get("cases", {})
        return cases if isinstance(cases, dict) else {}

    def finished(self, case_id: str) -> bool:
        """Whether the case was predicted with these settings and its files are all there."""
        entry = self.cases.get(case_id)
        if not isinstance(entry, dict) or entry.get("status") != "done":
            return False
        names = [str(name) for name in entry.get("outputs", [])]
        if any(Path(name).name != name for name in names):  # only names inside out_dir
            return False
        return all((self.out_dir / name).is_file() for name in names)

    def add(self, entry: dict[str, Any]) -> None:
        """Record one case and rewrite the file — once some case is done: inputs that are
        all refused leave nothing behind."""
        self.cases[entry["case"]] = entry
        self.own.add(entry["case"])
        if not any(e.get("status") == "done" for e in self.cases.values()):
            return
        with run_lock(self.out_dir) if self.shared else contextlib.nullcontext():
            self.refresh()
            document = {"medseg": __version__, "settings": self.settings, "cases": self.cases}
            write_text_atomic(self.path, json.dumps(document, indent=1) + "\n")

    def refresh(self) -> None:
        """Take in what other processes recorded (shared only); this one's entries win."""
        if self.shared:
            ours = {case: self.cases[case] for case in self.own}
            self.cases = {**self._recorded(), **ours}


def _checksums(case: Case) -> list[dict[str, str]]:
    """SHA-256 of each input file (a DICOM folder: of its files in name order)."""
    sums = []
    for path in case.image_paths:
        digest = hashlib.sha256()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                with open(file, "rb") as stream:
                    for block in iter(lambda s=stream: s.read(2**20), b""):
                        digest.update(block)
            except OSError as exc:
                raise ImageReadError(located(file, f"cannot be read ({exc.strerror})")) from None
        sums.append({"file": path.name, "sha256": digest.hexdigest()})
    return sums


def _check_dicom_formats(cases: list[Case], formats: tuple[str, ...]) -> None:
    """DICOM output needs DICOM series inputs: refuse any other before predicting."""
    wanted = sorted(DICOM_FORMATS & set(formats))
    for case in cases if wanted else []:
        if not case.image_paths[0].is_dir():
            problem = f"--format {','.join(wanted)} needs a DICOM series folder as input"
            raise ConfigError(located(case.image_paths[0], problem))
