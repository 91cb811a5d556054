"""Model loading in a real two-worker server: a failed load is retried, a reload reaches all.

In: a new version of the trained model registered from a folder of our own, whose weights are
garbage while it is promoted and are then put back. Out: every worker keeps serving the old
version and reports the failure (attempts, next try); then, with no new promotion, every
worker serves the new version: on its own within the back-off bound, or at once after one
`POST /admin/reload` that only one worker answers.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from conftest import ADMIN

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)

WORKERS = 2


def _register_copy(store, folder: Path) -> str:
    """A new version whose artifacts are a copy, in `folder`, of the trained version's."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(f"models:/{store.model_name}/{store.version}")
    shutil.copytree(local, folder)
    client = mlflow.MlflowClient()
    mv = client.create_model_version(store.model_name, str(folder), run_id=store.run_id)
    deadline = time.time() + 30
    while client.get_model_version(store.model_name, mv.version).status != "READY":
        assert time.time() < deadline, "the new version never became READY"
        time.sleep(0.2)
    return str(mv.version)


def _weights(folder: Path) -> Path:
    (weights,) = folder.rglob("weights.npz")
    return weights


def _per_worker(url: str, ok: Callable[[dict], bool], timeout: float) -> dict[int, dict]:
    """Poll `/health` on fresh connections (each lands on some worker) until `WORKERS`
    workers' latest answers satisfy `ok`; returns {worker pid: detail}."""
    latest: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = requests.get(url + "/health", timeout=10).json()
        latest[detail["worker_pid"]] = detail
        if len(latest) >= WORKERS and all(ok(d) for d in latest.values()):
            return latest
        time.sleep(0.05)
    raise AssertionError(f"not every worker got there in {timeout:.0f} s: {latest}")


def _failed(version: str) -> Callable[[dict], bool]:
    return lambda d: (d["last_load_error"] or {}).get("version") == version


def _serving(version: str) -> Callable[[dict], bool]:
    return lambda d: d["model_version"] == version and d["last_load_error"] is None


@pytest.fixture
def production(trained_store):
    """The version in production before the test; put back afterwards (the store is shared)."""
    import mlflow

    from mlcycle.core.registry import promote, resolve_production

    before = resolve_production(mlflow.MlflowClient(), trained_store.model_name).version
    yield before
    promote(trained_store.model_name, before, "production", "test restore")


def test_a_version_that_fails_to_load_once_is_served_without_a_new_promotion(
    trained_store, start_server, production, tmp_path
):
    from mlcycle.core.registry import history, promote

    retry_max = 2.0
    server = start_server(
        workers=WORKERS, MLCYCLE_LOAD_RETRY_MIN_S="0.5", MLCYCLE_LOAD_RETRY_MAX_S=retry_max
    )
    version = _register_copy(trained_store, tmp_path / "v")
    weights = _weights(tmp_path / "v")
    good = weights.read_bytes()
    weights.write_bytes(b"not a numpy file")
    promote(trained_store.model_name, version, "production", "test load retry")
    promotions = len(history(trained_store.model_name))
    failing = _per_worker(server.url, _failed(version), timeout=60)
    for detail in failing.values():
        assert detail["model_version"] == production, "the old version keeps serving"
        error = detail["last_load_error"]
        assert error["attempts"] >= 1 and error["next_retry_at"] > error["at"], error

    weights.write_bytes(good)
    restored = time.monotonic()
    _per_worker(server.url, _serving(version), timeout=retry_max + 20)
    took = time.monotonic() - restored
    assert len(history(trained_store.model_name)) == promotions, "no new promotion"
    r = requests.post(server.url + "/invocations", json=_body(trained_store), timeout=10)
    assert r.status_code == 200 and r.headers["X-Model-Version"] == version
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert f'mlcycle_model_load_failures_total{{model_version="{version}"}}' in metrics
    log.info("every worker served v%s %.2f s after its artifact was fixed", version, took)
    assert took <= retry_max + 15, f"served {took:.1f} s after the artifact was fixed"


def test_admin_reload_reaches_every_worker(trained_store, start_server, production, tmp_path):
    from mlcycle.core.registry import promote

    slow = 600  # no worker retries on its own during the test: only the reload can load it
    server = start_server(
        workers=WORKERS, MLCYCLE_LOAD_RETRY_MIN_S=slow, MLCYCLE_LOAD_RETRY_MAX_S=slow
    )
    version = _register_copy(trained_store, tmp_path / "v")
    weights = _weights(tmp_path / "v")
    good = weights.read_bytes()
    weights.write_bytes(b"not a numpy file")
    promote(trained_store.model_name, version, "production", "test reload")
    failing = _per_worker(server.url, _failed(version), timeout=60)
    assert all(d["last_load_error"]["attempts"] == 1 for d in failing.values()), failing
    weights.write_bytes(good)

    asked = time.monotonic()
    r = requests.post(server.url + "/admin/reload", headers={"X-Admin-Token": ADMIN}, timeout=60)
    answer = r.json()
    assert r.status_code == 200 and answer["model_version"] == version, answer
    assert answer["other_workers_signalled"] is True
    serving = _per_worker(server.url, _serving(version), timeout=5)
    log.info("every worker served v%s %.2f s after the reload", version, time.monotonic() - asked)
    assert set(serving) == set(failing), "the same workers, now on the new version"
    body = _body(trained_store)
    versions = {
        requests.post(server.url + "/invocations", json=body, timeout=10).headers["X-Model-Version"]
        for _ in range(40)
    }
    assert versions == {version}


def _body(store) -> dict:
    import json

    import mlflow
    import pandas as pd

    local = mlflow.artifacts.download_artifacts(f"models:/{store.model_name}/{store.version}")
    rows = pd.DataFrame(mlflow.models.Model.load(local).load_input_example(local)).head(1)
    return {"dataframe_records": json.loads(rows.to_json(orient="records"))}
