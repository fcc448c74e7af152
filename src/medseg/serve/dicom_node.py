"""A DICOM node: receives images by C-STORE, segments each series once it is complete, and
sends the DICOM-SEG (or RTSTRUCT) back by C-STORE (pynetdicom).

A series counts as complete when no instance of it has arrived for ``idle_seconds``. Received
files go under ``data_dir/incoming/series_NNNNN/NNNNN.dcm`` and results under
``data_dir/results/series_NNNNN/``: names medseg makes, never taken from UIDs or file names in
the data. Every job is one line of ``data_dir/jobs.jsonl`` (job, state, instances, seconds,
error) and of the log; neither holds a patient attribute.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from medseg.errors import ConfigError, MedsegError
from medseg.infer import load_trained_model, predict_dicom_series
from medseg.io.atomic import atomic_path

LOG = logging.getLogger("medseg.dicom_node")

SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


@dataclass(frozen=True)
class Destination:
    """Where results go: an AE title at a host and port."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        """``AE@HOST:PORT``, e.g. ``ORTHANC@127.0.0.1:4242``."""
        ae_title, at, address = text.partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and ae_title and host and port.isdigit()) or len(ae_title) > 16:
            raise ConfigError(f"--send-to: expected AE@HOST:PORT, got {text!r}")
        return cls(ae_title, host, int(port))


@dataclass
class NodeSettings:
    """How the node listens, what it accepts and where it sends."""

    data_dir: Path
    ae_title: str = "MEDSEG"
    host: str = "127.0.0.1"
    port: int = 11112
    send_to: Destination | None = None
    idle_seconds: float = 10.0
    formats: tuple[str, ...] = ("dicom-seg",)
    allowed_callers: frozenset[str] | None = None
    max_instance_bytes: int = 256 * 2**20
    max_instances: int = 5000  # per series
    max_series: int = 200  # waiting at once
    send_attempts: int = 3


@dataclass
class _Series:
    key: str
    folder: Path
    count: int = 0
    last: float = field(default_factory=time.monotonic)


class DicomNode:
    """The node: `start` listens and works in the background, `stop` ends both;
    `serve_forever` does both around a wait for Ctrl-C."""

    def __init__(self, run_dir: str | Path, settings: NodeSettings, device: str = "auto") -> None:
        self.settings = settings
        self.model = load_trained_model(run_dir, device)  # once, for every job
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._counter = self._next_number()
        self.ae = AE(ae_title=settings.ae_title)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.add_supported_context(Verification)
        if settings.allowed_callers:
            self.ae.require_calling_aet = sorted(settings.allowed_callers)
        self._server = None
        self._worker = threading.Thread(target=self._work, name="medseg-jobs", daemon=True)

    def _next_number(self) -> int:
        incoming = self.settings.data_dir / "incoming"
        taken = [int(p.name[7:]) for p in incoming.glob("series_*") if p.name[7:].isdigit()]
        return max(taken, default=0) + 1

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Listen on the settings' host and port, and start the job worker."""
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, lambda event: SUCCESS)]
        address = (self.settings.host, self.settings.port)
        self._server = self.ae.start_server(address, block=False, evt_handlers=handlers)
        self._worker.start()
        LOG.info("listening as %s on %s:%d", self.settings.ae_title, *address)

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker.is_alive():
            self._worker.join(timeout=60)

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stopping.wait(1.0):
                pass
        except KeyboardInterrupt:
            LOG.info("stopping")
        finally:
            self.stop()

    # ---- receiving ---------------------------------------------------------------------
    def _on_store(self, event) -> int:
        """Keep one received instance; refuse what is not an image or is over a limit."""
        size = event.request.DataSet.getbuffer().nbytes
        if size > self.settings.max_instance_bytes:
            LOG.warning(
                "refused an instance of %d bytes (limit %d)", size, self.settings.max_instance_bytes
            )
            return OUT_OF_RESOURCES
        sop_class = pydicom.uid.UID(str(event.request.AffectedSOPClassUID))
        if "Image Storage" not in sop_class.name:
            LOG.warning("refused a %s instance: not an image", sop_class.name or "non-image")
            return CANNOT_UNDERSTAND
        try:
            dataset = event.dataset
            uid = str(dataset.SeriesInstanceUID)
            encoded = event.encoded_dataset()
        except Exception:  # noqa: BLE001 - a malformed instance is refused, the node goes on
            LOG.warning("refused an instance that could not be decoded")
            return CANNOT_UNDERSTAND
        with self._lock:
            series = self._series.get(uid)
            if series is None:
                if len(self._series) >= self.settings.max_series:
                    LOG.warning("refused an instance: %d series already waiting", len(self._series))
                    return OUT_OF_RESOURCES
                key = f"series_{self._counter:05d}"
                self._counter += 1
                series = self._series[uid] = _Series(key, self.settings.data_dir / "incoming" / key)
            if series.count >= self.settings.max_instances:
                LOG.warning(
                    "refused an instance of %s: over %d instances", series.key, series.count
                )
                return OUT_OF_RESOURCES
            series.count += 1
            series.last = time.monotonic()
            path = series.folder / f"{series.count:05d}.dcm"
        with atomic_path(path) as tmp:
            tmp.write_bytes(encoded)
        return SUCCESS

    def _due(self) -> list[_Series]:
        """Series without a new instance for ``idle_seconds``, taken off the waiting list."""
        now = time.monotonic()
        with self._lock:
            done = [
                u for u, s in self._series.items() if now - s.last >= self.settings.idle_seconds
            ]
            return [self._series.pop(uid) for uid in done]

    # ---- jobs --------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            for series in self._due():
                self.run_job(series.key, series.folder, series.count)
            self._stopping.wait(0.2)

    def run_job(self, key: str, folder: Path, instances: int) -> bool:
        """Segment one received series and send its results; record the job. True if done."""
        start = time.monotonic()
        results = self.settings.data_dir / "results" / key
        try:
            written = predict_dicom_series(self.model, folder, results, self.settings.formats, key)
            sent = self._send([p for p in written if p.suffix == ".dcm"])
        except MedsegError as exc:
            self._record(key, "failed", instances, start, f"{type(exc).__name__}: {exc}")
            return False
        state = "done" if sent else "failed"
        self._record(key, state, instances, start, None if sent else "could not send the results")
        return sent

    def _send(self, files: list[Path]) -> bool:
        """C-STORE ``files`` to the destination, with retries; True when all were stored."""
        destination = self.settings.send_to
        if destination is None or not files:
            return True
        for attempt in range(1, self.settings.send_attempts + 1):
            if self._store_all(destination, files):
                return True
            LOG.warning("sending to %s failed (attempt %d)", destination.ae_title, attempt)
            self._stopping.wait(2.0 * attempt)
        return False

    def _store_all(self, destination: Destination, files: list[Path]) -> bool:
        datasets = [pydicom.dcmread(f) for f in files]
        caller = AE(ae_title=self.settings.ae_title)
        for uid in {str(d.SOPClassUID) for d in datasets}:
            caller.add_requested_context(uid, pydicom.uid.ExplicitVRLittleEndian)
        association = caller.associate(
            destination.host, destination.port, ae_title=destination.ae_title
        )
        if not association.is_established:
            return False
        try:
            statuses = [association.send_c_store(d) for d in datasets]
        finally:
            association.release()
        return all(s is not None and int(s.get("Status", -1)) == SUCCESS for s in statuses)

    def _record(
        self, key: str, state: str, instances: int, start: float, error: str | None
    ) -> None:
        entry = {"job": key, "state": state, "instances": instances,
                 "seconds": round(time.monotonic() - start, 2), "error": error}  # fmt: skip
        log = LOG.info if state == "done" else LOG.error
        log("job %s %s (%d instances, %.1f s)%s", key, state, instances, entry["seconds"],
            f": {error}" if error else "")  # fmt: skip
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with (self.settings.data_dir / "jobs.jsonl").open("a", encoding="utf-8") as jobs:
            jobs.write(json.dumps(entry) + "\n")
