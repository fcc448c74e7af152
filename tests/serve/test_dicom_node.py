"""The DICOM node on loopback: series in by C-STORE, DICOM-SEG out by C-STORE, refusals
that leave it running. The PACS end-to-end test with Orthanc is in test_orthanc.py."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from loopback import free_port, wait_for
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    RTStructureSetStorage,
    SegmentationStorage,
    Verification,
)

from medseg.serve import Destination, DicomNode, NodeSettings

pytestmark = pytest.mark.slow


class Receiver:
    """A storage SCP standing in for the PACS: keeps what it is sent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[pydicom.Dataset] = []
        ae = AE(ae_title="PACS")
        ae.add_supported_context(SegmentationStorage)
        ae.add_supported_context(RTStructureSetStorage)
        handlers = [(evt.EVT_C_STORE, self._keep)]
        self.server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=handlers)

    def _keep(self, event) -> int:
        self.received.append(event.dataset)
        return 0x0000


@pytest.fixture
def node(coarse_run, tmp_path):
    receiver = Receiver()
    settings = NodeSettings(
        data_dir=tmp_path / "node", port=free_port(), idle_seconds=0.5,
        send_to=Destination("PACS", "127.0.0.1", receiver.port),
        allowed_callers=frozenset({"SCANNER"}), max_instance_bytes=2 * 2**20,
    )  # fmt: skip
    node = DicomNode(coarse_run, settings, device="cpu")
    node.start()
    yield node, receiver
    node.stop()
    receiver.server.shutdown()


def send(port: int, files: list[Path], caller: str = "SCANNER") -> list[int] | None:
    ae = AE(ae_title=caller)
    ae.add_requested_context(Verification)
    for path in files:
        ae.add_requested_context(str(pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID))
    association = ae.associate("127.0.0.1", port, ae_title="MEDSEG")
    if not association.is_established:
        return None
    try:
        assert int(association.send_c_echo().Status) == 0
        return [int(association.send_c_store(pydicom.dcmread(p)).Status) for p in files]
    finally:
        association.release()


def test_a_series_comes_back_as_a_seg_referencing_it(node, dicom_seg_dir):
    node, receiver = node
    files = sorted((dicom_seg_dir / "dcmqi_ct3slice").glob("*.dcm"))
    assert send(node.settings.port, files) == [0, 0, 0]
    assert wait_for(lambda: receiver.received), "no result arrived"
    (seg,) = receiver.received
    source = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert seg.SOPClassUID == SegmentationStorage
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    stored = sorted(
        p.relative_to(node.settings.data_dir).as_posix()
        for p in node.settings.data_dir.rglob("*.dcm")
    )
    assert stored == [
        "incoming/series_00001/00001.dcm", "incoming/series_00001/00002.dcm",
        "incoming/series_00001/00003.dcm", "results/series_00001/series_00001_seg.dcm",
    ]  # fmt: skip
    jobs = node.settings.data_dir / "jobs.jsonl"
    assert wait_for(jobs.is_file)  # recorded once the results are sent
    assert '"state": "done"' in jobs.read_text() and source.PatientID not in jobs.read_text()


def test_refusals_leave_the_node_running(node, dicom_seg_dir, tmp_path):
    node, receiver = node
    ct = sorted((dicom_seg_dir / "dcmqi_ct3slice").glob("*.dcm"))
    assert send(node.settings.port, ct[:1], caller="STRANGER") is None  # not an allowed caller
    rtstruct = dicom_seg_dir / "rtutils_ct_rtstruct" / "rt.dcm"
    assert send(node.settings.port, [rtstruct]) == [0xC000]  # not an image
    big = pydicom.dcmread(ct[0])
    big.add_new(0x00091010, "OB", bytes(3 * 2**20))  # over the 2 MiB limit
    big.save_as(tmp_path / "big.dcm")
    assert send(node.settings.port, [tmp_path / "big.dcm"]) == [0xA700]
    assert send(node.settings.port, ct) == [0, 0, 0]  # and still working
    assert wait_for(lambda: receiver.received)


def test_a_series_that_cannot_be_segmented_is_a_failed_job_not_a_crash(
    node, dicom_seg_dir, dicom_study_dir
):
    node, receiver = node
    mr = next(p for p in dicom_study_dir.iterdir() if "T1post" in p.name)
    slices = sorted(
        mr.iterdir(),
        key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]),
    )
    gapped = slices[:10] + slices[11:]  # one slice in the middle never arrives
    assert send(node.settings.port, gapped) == [0] * len(gapped)
    jobs = node.settings.data_dir / "jobs.jsonl"
    assert wait_for(lambda: jobs.is_file() and '"failed"' in jobs.read_text())
    assert "missing slice" in jobs.read_text() and not receiver.received
    ct = sorted((dicom_seg_dir / "dcmqi_ct3slice").glob("*.dcm"))
    assert send(node.settings.port, ct) == [0, 0, 0]
    assert wait_for(lambda: receiver.received)


def test_destinations_parse():
    assert Destination.parse("ORTHANC@127.0.0.1:4242") == Destination("ORTHANC", "127.0.0.1", 4242)
    with pytest.raises(Exception, match="AE@HOST:PORT"):
        Destination.parse("127.0.0.1:4242")
