"""``medseg serve`` as a real server on a loopback port: the client, ``medseg submit``, and a
kill -9 with jobs queued and running, after which every job completes exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from loopback import free_port, wait_for

from medseg.infer import predict_paths
from medseg.io import read_image
from medseg.serve.store import JobStore

pytestmark = pytest.mark.slow
httpx = pytest.importorskip("httpx")


def _medseg(*args):
    return [sys.executable, "-m", "medseg", *map(str, args)]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(run, data, port, log):
    process = subprocess.Popen(
        _medseg("serve", f"hippo={run}", "--data", data, "--port", port, "--workers", 1),
        env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip

    def healthy():
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()["workers"] == 1
        except (httpx.HTTPError, ValueError):
            return False

    if not wait_for(healthy, 60):
        process.kill()
        pytest.fail(f"the server did not start: {log.name}")
    return process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def key(tmp_path):
    made = subprocess.run(_medseg("serve", "keys", "add", "alice", "--data", tmp_path / "data"),
                          capture_output=True, text=True, env=_env(), check=True)  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def _images_with_a_slow_first(phantom3d, tmp_path, count):
    """``count`` images to submit: first one 64 times the phantom's size, whose job runs long
    enough to be seen running (3.4 s on one core of the 2-core AVX2 CI machine; the test polls
    every 0.1 s), then the phantom's own images in turn."""
    from medseg.io import Image, write_image

    images = sorted((phantom3d / "imagesTr").iterdir()) + sorted((phantom3d / "imagesTs").iterdir())
    small = read_image(images[0])
    large = tmp_path / "large_0000.nii.gz"
    write_image(Image(np.tile(small.array, (1, 4, 4, 4)), small.affine), large)
    return [large, *(images[k % len(images)] for k in range(count - 1))]


def test_kill_9_with_jobs_queued_and_running_then_every_job_completes_once(
    tmp_path, key, untrained_run_dir, phantom3d
):
    from medseg.serve.client import Client

    images = _images_with_a_slow_first(phantom3d, tmp_path, 8)
    [expected] = predict_paths(untrained_run_dir, [images[0]], tmp_path / "cli", quiet=True)
    port, data = free_port(), tmp_path / "data"
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed at the end
    server = _start(untrained_run_dir, data, port, log)
    try:
        client = Client(f"http://127.0.0.1:{port}", key)
        ids = [client.submit(image, "hippo") for image in images]
        store = JobStore(data)
        assert wait_for(lambda: any(j.state == "running" for j in store.list()), 60)
        worker = next(j.worker for j in store.list() if j.worker)
        server.send_signal(signal.SIGKILL)  # the server process alone: its worker must follow
        server.wait()
        assert wait_for(lambda: not _alive(worker), 10), "the worker outlived the server"
        states = {j.state for j in store.list()}
        assert states & {"queued", "running"}, states  # work was left when it died
        server = _start(untrained_run_dir, data, port, log)
        finished = [client.wait(job_id, timeout=120) for job_id in ids]
        assert [s["state"] for s in finished] == ["done"] * len(ids)
        assert [store.completions(job_id) for job_id in ids] == [1] * len(ids)
        path = client.download(ids[0], tmp_path / "served", "first")
        served, reference = read_image(path), read_image(expected)
        assert np.array_equal(served.array, reference.array)
        assert np.allclose(served.affine, reference.affine)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        log.close()
    assert "Traceback" not in (tmp_path / "server.log").read_text()


def test_medseg_submit_downloads_what_medseg_predict_writes(
    tmp_path, key, untrained_run_dir, phantom3d, run_cli
):
    image = sorted((phantom3d / "imagesTs").iterdir())[0]
    [expected] = predict_paths(untrained_run_dir, [image], tmp_path / "cli", quiet=True)
    port, data = free_port(), tmp_path / "data"
    with open(tmp_path / "server.log", "w") as log:
        server = _start(untrained_run_dir, data, port, log)
        try:
            url = f"http://127.0.0.1:{port}"
            args = ["submit", url, image, "--model", "hippo", "--out", tmp_path / "out"]
            code, out, err = run_cli([*args, "--key", key])
            assert code == 0, err
            served = read_image(tmp_path / "out" / "phantom_003_0000_labels.nii.gz")
            assert np.array_equal(served.array, read_image(expected).array)
            assert (tmp_path / "out" / "phantom_003_0000_manifest.json").is_file()
            code, _, err = run_cli([*args[:3], "--model", "liver", "--out", tmp_path / "o2",
                                    "--key", key])  # fmt: skip
            assert code == 2 and "no model named 'liver'" in err
            code, _, err = run_cli([*args, "--key", "msk_00000000_" + "x" * 43])
            assert code == 2 and "401" in err
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_a_worker_killed_mid_job_is_replaced_and_its_job_runs_again(
    tmp_path, key, untrained_run_dir, phantom3d
):
    from medseg.serve.client import Client

    images = _images_with_a_slow_first(phantom3d, tmp_path, 6)
    port, data = free_port(), tmp_path / "data"
    with open(tmp_path / "server.log", "w") as log:
        server = _start(untrained_run_dir, data, port, log)
        try:
            client = Client(f"http://127.0.0.1:{port}", key)
            ids = [client.submit(image, "hippo") for image in images]
            store = JobStore(data)
            assert wait_for(lambda: any(j.state == "running" for j in store.list()), 60)
            victim = next(j for j in store.list() if j.state == "running")
            os.kill(victim.worker, signal.SIGKILL)
            finished = [client.wait(job_id, timeout=120) for job_id in ids]
            assert [s["state"] for s in finished] == ["done"] * len(ids)
            assert [store.completions(job_id) for job_id in ids] == [1] * len(ids)
            assert client.health()["workers"] == 1
        finally:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    assert "restarting it" in (tmp_path / "server.log").read_text()
