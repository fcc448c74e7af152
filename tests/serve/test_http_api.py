"""The HTTP API in-process: the documented contract, owners and admins, every refusal."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from serve_helpers import make_service

from medseg.infer import predict_paths
from medseg.io import read_image
from medseg.serve.uploads import Limits


@pytest.fixture
def service(tmp_path, untrained_run_dir):
    return make_service(tmp_path / "data", {"hippo": untrained_run_dir},
                        Limits(upload_bytes=200_000, zip_entries=20))  # fmt: skip


@pytest.fixture
def image(phantom3d):
    return sorted((phantom3d / "imagesTs").iterdir())[0]


def test_a_job_goes_from_queued_to_done_with_the_label_map_medseg_predict_writes(
    service, image, untrained_run_dir, tmp_path
):
    answer = service.submit(service.alice, image, name="Patient Smith^John.nii.gz")
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    status = service.client.get(f"/jobs/{job_id}", headers=service.headers(service.alice))
    assert status.json()["state"] == "queued" and status.json()["progress"] == 0
    early = service.client.get(f"/jobs/{job_id}/result", headers=service.headers(service.alice))
    assert early.status_code == 409 and "queued" in early.json()["detail"]
    assert service.work() == 1
    status = service.client.get(f"/jobs/{job_id}", headers=service.headers(service.alice)).json()
    assert status["state"] == "done" and status["progress"] == 1 and status["seconds"] > 0
    result = service.client.get(f"/jobs/{job_id}/result", headers=service.headers(service.alice))
    assert result.status_code == 200
    (tmp_path / "served.nii.gz").write_bytes(result.content)
    [expected] = predict_paths(untrained_run_dir, [image], tmp_path / "cli", quiet=True)
    served, reference = read_image(tmp_path / "served.nii.gz"), read_image(expected)
    assert np.array_equal(served.array, reference.array)
    assert np.allclose(served.affine, reference.affine)
    manifest = service.client.get(
        f"/jobs/{job_id}/manifest", headers=service.headers(service.alice)
    )
    manifest = manifest.json()
    assert manifest["model"] == "hippo"
    assert manifest["input"]["shape"] == list(reference.spatial_shape)
    assert set(manifest["quality"]) >= {"mean_entropy", "volume_ml", "flag"}
    assert "Smith" not in json.dumps(manifest)  # the upload's name goes nowhere
    assert not list((tmp_path / "data").rglob("*Smith*"))


def test_owners_see_their_jobs_admins_see_and_cancel_all(service, image):
    mine = service.submit(service.alice, image).json()["id"]
    for key in (service.bob,):
        assert service.client.get(f"/jobs/{mine}", headers=service.headers(key)).status_code == 404
        assert (
            service.client.delete(f"/jobs/{mine}", headers=service.headers(key)).status_code == 404
        )
    listed = service.client.get("/jobs", headers=service.headers(service.bob)).json()["jobs"]
    assert listed == []
    everyone = service.client.get("/jobs", headers=service.headers(service.admin)).json()["jobs"]
    assert [job["id"] for job in everyone] == [mine]
    cancelled = service.client.delete(f"/jobs/{mine}", headers=service.headers(service.admin))
    assert cancelled.json()["state"] == "cancelled"
    again = service.client.delete(f"/jobs/{mine}", headers=service.headers(service.alice))
    assert again.status_code == 409 and service.work() == 0


def test_every_call_but_health_needs_a_key_and_failures_are_rate_limited(service, image, caplog):
    assert service.client.get("/health").json()["models"] == ["hippo"]
    assert service.client.get("/jobs").status_code == 401
    wrong = "msk_00000000_" + "A" * 43
    answer = service.client.get("/jobs", headers=service.headers(wrong))
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert wrong not in caplog.text and "authentication failed" in caplog.text
    for _ in range(9):
        service.client.get("/jobs", headers=service.headers("nonsense"))
    blocked = service.client.get("/jobs", headers=service.headers(service.alice))
    assert blocked.status_code == 429  # even a good key, from an address that kept failing
    assert service.client.get("/health").status_code == 200


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name, payload, form, status, message",
    [
        ("x.nii.gz", b"x", {"model": "liver"}, 404, "no model named 'liver'"),
        ("notes.txt", b"x", {}, 415, "the file must be one of"),
        ("big.nii.gz", b"\0" * 300_000, {}, 413, "the request is over"),
        ("big.nii.gz", b"\0" * 210_000, {}, 413, "210000 bytes (at most 200000)"),
        ("s.zip", _zip_bytes([("../../x", b"1")]), {}, 400, "outside itself"),
        ("s.zip", _zip_bytes([(f"f{k}", b"1") for k in range(30)]), {}, 413, "holds 30 files"),
        ("s.zip", _zip_bytes([("bomb", b"\0" * 150_000)]), {}, 413, "compressed more than"),
        ("s.zip", b"PK\x03\x04 but not really", {}, 400, "not a readable zip"),
        ("empty.nii.gz", b"", {}, 400, "empty"),
    ],
)
def test_bad_uploads_get_a_clear_4xx_and_the_server_keeps_serving(
    service, image, name, payload, form, status, message
):
    files = {"file": (name, payload)}
    answer = service.client.post("/jobs", headers=service.headers(service.alice), files=files,
                                 data={"model": "hippo", **form})  # fmt: skip
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert not list((service.state.data_dir / "jobs").glob("*/*"))  # nothing left behind
    assert service.submit(service.alice, image).status_code == 202


def test_a_missing_field_and_asked_for_probabilities(service, image):
    files = {"file": ("x.nii.gz", image.read_bytes())}
    answer = service.client.post("/jobs", headers=service.headers(service.alice), files=files)
    assert answer.status_code == 422 and answer.json()["detail"] == "model: Field required"
    job_id = service.submit(service.alice, image, probabilities="true").json()["id"]
    plain = service.submit(service.alice, image).json()["id"]
    assert service.work() == 2
    url = "/jobs/{}/probabilities"
    got = service.client.get(url.format(job_id), headers=service.headers(service.alice))
    assert got.status_code == 200 and got.content[:2] == b"\x1f\x8b"  # a .nii.gz
    none = service.client.get(url.format(plain), headers=service.headers(service.alice))
    assert none.status_code == 404 and "no labels_probabilities" in none.json()["detail"]


def test_an_unreadable_image_is_a_failed_job_with_its_reason(service, tmp_path):
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    job_id = service.submit(service.alice, tmp_path / "broken.nii.gz").json()["id"]
    assert service.work() == 1
    status = service.client.get(f"/jobs/{job_id}", headers=service.headers(service.alice)).json()
    assert status["state"] == "failed" and "input.nii.gz" in status["error"]
    assert str(service.state.data_dir) not in status["error"]
    result = service.client.get(f"/jobs/{job_id}/result", headers=service.headers(service.alice))
    assert result.status_code == 409 and "failed" in result.json()["detail"]


def test_the_openapi_documents_the_contract(service):
    paths = service.client.get("/openapi.json").json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/result", "/health"} <= set(paths)
    assert service.client.get("/docs").status_code == 200


def test_a_body_sent_without_its_length_is_cut_off_at_the_limit(service):
    def chunks():
        for _ in range(40):
            yield b"\0" * 10_000  # 400 kB, no Content-Length: chunked

    headers = service.headers(service.alice) | {"content-type": "multipart/form-data; boundary=x"}
    answer = service.client.post("/jobs", headers=headers, content=chunks())
    assert answer.status_code == 413 and "the request is over" in answer.json()["detail"]
    assert service.client.get("/health").status_code == 200


def test_the_viewer_session_reads_but_never_writes(service, image):
    job_id = service.submit(service.alice, image).json()["id"]
    assert service.client.post("/session", data={"key": "msk_bad"}).status_code == 401
    opened = service.client.post("/session", data={"key": service.alice})
    assert opened.status_code == 204
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert service.client.get(f"/jobs/{job_id}").json()["state"] == "queued"  # the cookie
    assert service.client.delete(f"/jobs/{job_id}").status_code == 401
    files = {"file": ("x.nii.gz", image.read_bytes())}
    assert service.client.post("/jobs", files=files, data={"model": "hippo"}).status_code == 401
    service.client.cookies.clear()
    assert service.client.get(f"/jobs/{job_id}").status_code == 401


def test_viewer_paths_cannot_escape(service):
    assert service.client.get("/viewer/..%2F..%2Fetc").status_code == 404
    assert service.client.get("/viewer/<script>").status_code == 404
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/niivue/../../keys.py"):
        assert service.client.get(path).status_code == 404, path
    page = service.client.get("/viewer/0123456789abcdef")
    if page.status_code == 200:  # niivue installed
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert 'data-job="0123456789abcdef"' in page.text


@pytest.mark.slow
def test_a_dicom_series_zip_comes_back_as_nifti_and_dicom_seg(tmp_path, coarse_run, dicom_seg_dir):
    series = dicom_seg_dir / "dcmqi_ct3slice"
    service = make_service(tmp_path / "data", {"ct": coarse_run})
    (tmp_path / "series.zip").write_bytes(
        _zip_bytes([(f"slices/{p.name}", p.read_bytes()) for p in sorted(series.glob("*.dcm"))])
    )
    job_id = service.submit(service.alice, tmp_path / "series.zip", model="ct").json()["id"]
    assert service.work() == 1
    result = service.client.get(f"/jobs/{job_id}/result", headers=service.headers(service.alice))
    assert result.status_code == 200, result.text
    with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
        assert sorted(archive.namelist()) == ["labels.nii.gz", "labels_seg.dcm"]
        archive.extractall(tmp_path / "served")
    [expected] = predict_paths(coarse_run, [series], tmp_path / "cli", quiet=True)
    served = read_image(tmp_path / "served/labels.nii.gz")
    assert np.array_equal(served.array, read_image(expected).array)
    assert np.allclose(served.affine, read_image(expected).affine)
    import pydicom

    seg = pydicom.dcmread(tmp_path / "served/labels_seg.dcm")
    assert seg.Modality == "SEG"


@pytest.mark.slow
def test_a_png_comes_back_as_a_png_on_its_pixels(tmp_path):
    from medseg.datasets.phantom import write_phantom_dataset
    from medseg.train import TrainOptions, train_run

    phantom2d = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(32, 32))
    options = TrainOptions(epochs=1, iterations_per_epoch=2, quiet=True)
    train_run(phantom2d, tmp_path / "run2d", options, fold="all")
    service = make_service(tmp_path / "data", {"em": tmp_path / "run2d"})
    image = sorted((phantom2d / "imagesTs").iterdir())[0]
    job_id = service.submit(service.alice, image, model="em").json()["id"]
    assert service.work() == 1
    result = service.client.get(f"/jobs/{job_id}/result", headers=service.headers(service.alice))
    assert result.status_code == 200 and result.content[:4] == b"\x89PNG"
    (tmp_path / "served.png").write_bytes(result.content)
    [expected] = predict_paths(tmp_path / "run2d", [image], tmp_path / "cli", quiet=True)
    assert np.array_equal(read_image(tmp_path / "served.png").array, read_image(expected).array)
