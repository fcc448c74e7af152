"""End to end with a real PACS: a series stored into Orthanc is forwarded to medseg's DICOM
node, and the DICOM-SEG medseg sends back shows up in Orthanc, referencing the series.

Orthanc (Debian package ``orthanc``, installed by .ci/run) runs on free loopback ports with its
own configuration and storage in a temporary folder; the test skips without it."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pydicom
import pytest
from loopback import free_port, wait_for

from medseg.serve import Destination, DicomNode, NodeSettings

pytestmark = pytest.mark.slow

ORTHANC = shutil.which("Orthanc") or (
    "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").is_file() else None
)


class Orthanc:
    """An Orthanc server of its own, reached through its REST API."""

    def __init__(self, folder: Path, node_port: int) -> None:
        self.http, self.dicom = free_port(), free_port()
        config = {
            "Name": "medseg-test", "StorageDirectory": str(folder / "db"),
            "IndexDirectory": str(folder / "db"), "HttpPort": self.http,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomAet": "ORTHANC", "DicomPort": self.dicom, "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True, "Plugins": [], "LuaScripts": [],
            "DicomModalities": {"medseg": ["MEDSEG", "127.0.0.1", node_port]},
        }  # fmt: skip
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = (folder / "orthanc.log").open("w")
        self.process = subprocess.Popen(
            [ORTHANC, str(folder / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        if not wait_for(self._answers, 60):
            self.stop()
            pytest.fail(f"Orthanc did not start; see {folder / 'orthanc.log'}")

    def _answers(self) -> bool:
        try:
            self.get("/system")
            return True
        except OSError:
            return False

    def request(self, method: str, path: str, body: bytes | None = None):
        url = f"http://127.0.0.1:{self.http}{path}"
        with urllib.request.urlopen(
            urllib.request.Request(url, body, method=method), timeout=60
        ) as answer:
            return json.loads(answer.read() or b"null")

    def get(self, path: str):
        return self.request("GET", path)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.mark.skipif(
    ORTHANC is None, reason="Orthanc not installed (Debian package orthanc; .ci/run installs it)"
)
def test_orthanc_sends_a_series_and_receives_medsegs_seg(coarse_run, dicom_seg_dir, tmp_path):
    node_port = free_port()
    orthanc = Orthanc(tmp_path, node_port)
    settings = NodeSettings(
        data_dir=tmp_path / "node", port=node_port, idle_seconds=1.0,
        send_to=Destination("ORTHANC", "127.0.0.1", orthanc.dicom),
        allowed_callers=frozenset({"ORTHANC"}),
    )  # fmt: skip
    node = DicomNode(coarse_run, settings, device="cpu")
    node.start()
    try:
        files = sorted((dicom_seg_dir / "dcmqi_ct3slice").glob("*.dcm"))
        for path in files:
            orthanc.request("POST", "/instances", path.read_bytes())
        (source_id,) = orthanc.get("/series")
        forwarded = json.dumps({"Resources": [source_id], "Synchronous": True}).encode()
        orthanc.request(
            "POST", "/modalities/medseg/store", forwarded
        )  # Orthanc's C-STORE to medseg

        def seg_series() -> list[str]:
            return [s for s in orthanc.get("/series") if s != source_id]

        assert wait_for(seg_series, 120), "no DICOM-SEG arrived in Orthanc"
        (seg_id,) = seg_series()
        assert orthanc.get(f"/series/{seg_id}")["MainDicomTags"]["Modality"] == "SEG"
        (instance,) = orthanc.get(f"/series/{seg_id}/instances")
        tags = orthanc.get(f"/instances/{instance['ID']}/tags?simplify")
        source = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert tags["ReferencedSeriesSequence"][0]["SeriesInstanceUID"] == source.SeriesInstanceUID
        assert tags["StudyInstanceUID"] == source.StudyInstanceUID
        # the SEG joined the source's study in Orthanc
        study = orthanc.get(f"/series/{source_id}")["ParentStudy"]
        assert orthanc.get(f"/series/{seg_id}")["ParentStudy"] == study
    finally:
        node.stop()
        orthanc.stop()
