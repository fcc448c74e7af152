"""Helpers for the tests of medseg serve: a service in-process and its jobs worked inline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from medseg.serve.uploads import Limits


@dataclass
class Service:
    """An in-process service: the FastAPI test client, its state and three keys."""

    client: object
    state: object
    alice: str
    bob: str
    admin: str

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def submit(self, key: str, path: Path, model: str = "hippo", name: str | None = None, **form):
        files = {"file": (name or path.name, path.read_bytes())}
        return self.client.post("/jobs", headers=self.headers(key), files=files,
                                data={"model": model, **form})  # fmt: skip

    def work(self) -> int:
        """Run every queued job inline, as a worker process would; returns how many."""
        from medseg.infer import load_trained_model
        from medseg.postprocess.model import load_postprocessing
        from medseg.serve.worker import process_job

        store, done = self.state.jobs, 0
        models = {n: load_trained_model(r, "cpu") for n, r in self.state.models.items()}
        while (job := store.claim(list(models), 1)) is not None:
            model = models[job.model]
            error = process_job(store, job, self.state.data_dir, model,
                                load_postprocessing(model.run_dir))  # fmt: skip
            store.finish(job, error)
            done += 1
        return done


def make_service(data_dir: Path, models: dict[str, Path], limits: Limits | None = None) -> Service:
    testclient = pytest.importorskip("fastapi.testclient")
    from medseg.serve.app import ServiceState, create_app

    state = ServiceState(data_dir, models, limits or Limits())
    keys = [state.keys.add("alice"), state.keys.add("bob"), state.keys.add("ops", "admin")]
    return Service(testclient.TestClient(create_app(state)), state, *keys)
