"""The range guard and the cache metrics on a real server (two workers, multiprocess metrics)
with the session's trained model: cache hits and misses reach `/metrics`, an extreme-but-finite
input is flagged and never answered with a null, and bad guard settings stop the launcher."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.helpers import Server, records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(trained_store, tmp_path_factory):
    srv = Server(trained_store, tmp_path_factory.mktemp("guard-server"), workers=2)
    yield srv
    srv.stop()


def _total(text: str, name: str, **labels) -> float:
    """A metric summed over all its samples with these labels (the workers' series)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_cache_hits_and_misses_reach_metrics(example_rows, server):
    (row,) = records(example_rows.head(1))
    for _ in range(3):  # 3 requests on 2 workers: one worker sees the row twice at least
        resp = requests.post(server.url + "/predict", json=row, timeout=10)
        assert resp.status_code == 200, resp.text
    text = requests.get(server.url + "/metrics", timeout=10).text
    hits = _total(text, "mlcycle_cache_hits_total")
    misses = _total(text, "mlcycle_cache_misses_total")
    assert hits >= 1 and misses >= 1 and hits + misses == 3, (hits, misses)


def test_extreme_finite_inputs_are_flagged_and_never_null(example_rows, server):
    (row,) = records(example_rows.head(1))
    numeric = [k for k, v in row.items() if isinstance(v, int | float)]
    cases = [{"income": 1e308}, {"income": -1e308}, dict.fromkeys(numeric, 1e308)]
    statuses = []
    for change in cases:
        resp = requests.post(server.url + "/predict", json={**row, **change}, timeout=10)
        body = resp.json()
        statuses.append(resp.status_code)
        if resp.status_code == 200:
            assert isinstance(body["probability"], float), body
            assert "income" in body["out_of_range"] and "income" in resp.headers["X-Out-Of-Range"]
        else:  # the network overflowed (inf - inf): refused, not a 200 with null
            assert resp.status_code == 422 and body["detail"]["rows"] == [0], body
    assert statuses[:2] == [200, 200]  # one extreme column: the clipped sigmoid stays finite
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert _total(text, "mlcycle_out_of_range_rows_total", column="income") == 3
    log = server.output.read_text()
    assert "RuntimeWarning" not in log, log[-2000:]


def test_the_loader_builds_the_guard_from_the_settings_margin(trained_store):
    from serving.settings import get_settings
    from serving.watcher import mlflow_loader

    settings = get_settings().model_copy(update={"out_of_range_margin": 0.0, "cache": False})
    svc = mlflow_loader(settings)(trained_store.version)
    income = svc.guard.numeric["income"]
    assert (income.allowed_low, income.allowed_high) == (income.low, income.high)
    spec = {c["name"]: c for c in svc.spec["numeric"]}["income"]
    assert (income.low, income.high) == (spec["min"], spec["max"])


@pytest.mark.parametrize(
    "name,value", [("MLCYCLE_OUT_OF_RANGE", "maybe"), ("MLCYCLE_OUT_OF_RANGE_MARGIN", "-1")]
)
def test_a_bad_guard_setting_stops_the_launcher_naming_the_variable(tmp_path, name, value):
    env = dict(os.environ, MLCYCLE_HOME=str(tmp_path), **{name: value})
    done = subprocess.run(
        [sys.executable, "-m", "serving", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert name in done.stderr and repr(value) in done.stderr, done.stderr[-2000:]
