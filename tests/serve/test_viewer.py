"""The browser viewer in the system's Chromium (Playwright, WebGL by SwiftShader): it loads
behind the key, draws, scrolls, windows and toggles labels, with no console errors and no
request leaving the server's origin."""

from __future__ import annotations

import io
import shutil
import threading

import numpy as np
import pytest
from loopback import free_port, wait_for
from serve_helpers import make_service

pytestmark = pytest.mark.slow


@pytest.fixture
def served_job(tmp_path, untrained_run_dir, phantom3d):
    """A done job whose label map is the phantom's reference (so every label shows), on a
    real uvicorn in a thread."""
    uvicorn = pytest.importorskip("uvicorn")
    from medseg.serve.viewer import viewer_available
    from medseg.serve.worker import job_folder

    if not viewer_available():
        pytest.skip("niivue is not installed (./run installs it with npm)")
    service = make_service(tmp_path / "data", {"hippo": untrained_run_dir})
    image = sorted((phantom3d / "imagesTs").iterdir())[0]
    job_id = service.submit(service.alice, image).json()["id"]
    assert service.work() == 1
    reference = phantom3d / "labelsTs" / image.name.replace("_0000", "")
    shutil.copy(reference, job_folder(service.state.data_dir, job_id) / "result/labels.nii.gz")
    port = free_port()
    app = service.client.app
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, 30)
    yield f"http://127.0.0.1:{port}", job_id, service.alice
    server.should_exit = True
    thread.join(10)


def _pixels(page) -> np.ndarray:
    from matplotlib.image import imread

    return imread(io.BytesIO(page.locator("#gl").screenshot()), format="png")[..., :3]


def test_the_viewer_shows_the_job_and_responds(served_job):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")
    base, job_id, key = served_job
    errors, foreign = [], []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader"],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on(
                "request", lambda r: foreign.append(r.url) if not r.url.startswith(base) else None
            )
            page.goto(f"{base}/viewer/{job_id}")
            page.wait_for_selector("#login:not([hidden])")
            errors.clear()  # the 401 that brought up the key form is expected
            page.fill("#key", key)
            page.click("#login button")
            page.wait_for_selector("body[data-ready=yes]", timeout=60_000)
            page.wait_for_timeout(500)
            first = _pixels(page)
            assert first.std() > 0.01, "the canvas is blank"
            box = page.locator("#gl").bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
            page.mouse.wheel(0, 400)
            page.wait_for_timeout(500)
            scrolled = _pixels(page)
            assert np.abs(scrolled - first).mean() > 1e-4, "scrolling did not change the slice"
            page.locator("#labels input[data-label='1']").uncheck()
            page.wait_for_timeout(500)
            hidden = _pixels(page)
            assert np.abs(hidden - scrolled).mean() > 1e-4, "hiding label 1 changed nothing"
            page.fill("#cal-max", "10")
            page.dispatch_event("#cal-max", "change")
            page.wait_for_timeout(500)
            assert np.abs(_pixels(page) - hidden).mean() > 1e-4, "windowing changed nothing"
            page.mouse.click(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
            assert "label" in page.text_content("#readout")
        finally:
            browser.close()
    assert errors == [] and foreign == []
