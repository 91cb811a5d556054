"""Model loading in a real two-worker server: a failed load is retried, a reload reaches all.

In: a new version of the trained model registered from a folder of our own, whose weights are
garbage while it is promoted and are then put back. Out: every worker keeps serving the old
version and reports the failure (attempts, next try); then, with no new promotion, every
worker serves the new version: on its own within the back-off bound, or at once after one
`POST /admin/reload` that only one worker answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.helpers import ADMIN, records, register_copy, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.serial]
log = logging.getLogger(__name__)

WORKERS = 2


def _weights(folder: Path) -> Path:
    (weights,) = folder.rglob("weights.npz")
    return weights


def _per_worker(url: str, ok: Callable[[dict], bool], timeout: float) -> dict[int, dict]:
    """Poll `/health` on fresh connections (each lands on some worker) until `WORKERS`
    workers' latest answers satisfy `ok`; returns {worker pid: detail}."""
    latest: dict[int, dict] = {}

    def every_worker_ok() -> bool:
        detail = requests.get(url + "/health", timeout=10).json()
        latest[detail["worker_pid"]] = detail
        return len(latest) >= WORKERS and all(ok(d) for d in latest.values())

    wait_until(every_worker_ok, timeout, lambda: f"every worker there: {latest}", every=0.05)
    return latest


def _failed(version: str) -> Callable[[dict], bool]:
    return lambda d: (d["last_load_error"] or {}).get("version") == version


def _serving(version: str) -> Callable[[dict], bool]:
    return lambda d: d["model_version"] == version and d["last_load_error"] is None


def test_a_version_that_fails_to_load_once_is_served_without_a_new_promotion(
    store_copy, example_rows, start_server, tmp_path
):
    from mlcycle.core.registry import history, promote

    retry_max = 2.0
    server = start_server(
        workers=WORKERS,
        store=store_copy,
        MLCYCLE_LOAD_RETRY_MIN_S="0.5",
        MLCYCLE_LOAD_RETRY_MAX_S=retry_max,
    )
    version = register_copy(store_copy, tmp_path / "v")
    weights = _weights(tmp_path / "v")
    good = weights.read_bytes()
    weights.write_bytes(b"not a numpy file")
    promote(store_copy.model_name, version, "production", "test load retry")
    promotions = len(history(store_copy.model_name))
    failing = _per_worker(server.url, _failed(version), timeout=60)
    for detail in failing.values():
        assert detail["model_version"] == store_copy.version, "the old version keeps serving"
        error = detail["last_load_error"]
        assert error["attempts"] >= 1 and error["next_retry_at"] > error["at"], error

    weights.write_bytes(good)
    restored = time.monotonic()
    _per_worker(server.url, _serving(version), timeout=retry_max + 20)
    took = time.monotonic() - restored
    assert len(history(store_copy.model_name)) == promotions, "no new promotion"
    r = requests.post(server.url + "/invocations", json=_body(example_rows), timeout=10)
    assert r.status_code == 200 and r.headers["X-Model-Version"] == version
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert f'mlcycle_model_load_failures_total{{model_version="{version}"}}' in metrics
    log.info("every worker served v%s %.2f s after its artifact was fixed", version, took)
    assert took <= retry_max + 15, f"served {took:.1f} s after the artifact was fixed"


def test_admin_reload_reaches_every_worker(store_copy, example_rows, start_server, tmp_path):
    from mlcycle.core.registry import promote

    slow = 600  # no worker retries on its own during the test: only the reload can load it
    server = start_server(
        workers=WORKERS,
        store=store_copy,
        MLCYCLE_LOAD_RETRY_MIN_S=slow,
        MLCYCLE_LOAD_RETRY_MAX_S=slow,
    )
    version = register_copy(store_copy, tmp_path / "v")
    weights = _weights(tmp_path / "v")
    good = weights.read_bytes()
    weights.write_bytes(b"not a numpy file")
    promote(store_copy.model_name, version, "production", "test reload")
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
    body = _body(example_rows)
    versions = {
        requests.post(server.url + "/invocations", json=body, timeout=10).headers["X-Model-Version"]
        for _ in range(40)
    }
    assert versions == {version}


def _body(example_rows) -> dict:
    return {"dataframe_records": records(example_rows.head(1))}
