"""`mlcycle log prune` on real logs, SQLite and PostgreSQL: what goes, what stays, and a real
server writing under load while it runs.

In: logs written by serving's own store (`serving.predlog.open_store`) with rows served 100 days
ago and now, batches, labels of both; a real `python -m serving` process. Out: pass/fail of
- the dry run counting exactly what the prune then deletes, and changing nothing;
- old `predictions` rows, old `prediction_batches` and the labels of old rows gone, every new
  row and label kept, a request's labels kept while any of its rows stays;
- a prune of many chunks beside a server answering concurrent requests: every request answered
  200, every answered request's rows in the log afterwards, no old row left, prune exit 0.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import sqlalchemy as sa

from mlcycle.core import prediction_log as contract
from serving.predlog import open_store
from serving.predlog.prune import count_old, prune
from tests import postgres
from tests.helpers import Server, sample_csv, wait_until

NAMES = ("a", "b")
DAY = 86_400.0
NOW = time.time()
OLD = NOW - 100 * DAY


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[str]:
    with postgres.server() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def log_url(request, tmp_path: Path) -> Iterator[str]:
    """An empty log's URL (tables created by serving's store): a SQLite file or a fresh
    PostgreSQL database under a bare `postgresql://` URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'predictions.db'}"
        open_store(url).close()
        yield url
        return
    from sqlalchemy.engine import make_url

    with postgres.database(request.getfixturevalue("pg_admin"), "prune") as db:
        url = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
        open_store(url).close()
        yield url


def _columns(n: int) -> dict:
    return {"a": np.arange(n, dtype=float), "b": np.array(["x"] * n, dtype=object)}


def _fill(url: str, requests_per_age: int = 30) -> None:
    """Requests of 3 rows served at `OLD` and at `NOW`, one 300-row batch of each age, and a
    label on row 0 of every request; plus request `both`, with rows of both ages."""
    rows, batches, labels = [], [], []
    for ts, age in ((OLD, "old"), (NOW, "new")):
        for i in range(requests_per_age):
            rid = f"{age}-{i}"
            rows += contract.build_rows(rid, "m", "1", "r", NAMES, _columns(3), np.full(3, 0.5), ts)
            labels.append({"request_id": rid, "row": 0, "label": i % 2, "ts": ts + 60})
        batch = contract.build_batch(
            f"{age}-batch", "m", "1", "r", NAMES, _columns(300), np.full(300, 0.2), ts
        )
        batches.append(batch)
        labels.append({"request_id": f"{age}-batch", "row": 7, "label": 1, "ts": ts + 60})
    for ts in (OLD, NOW):
        rows += contract.build_rows("both", "m", "1", "r", NAMES, _columns(1), [0.5], ts)
    labels.append({"request_id": "both", "row": 0, "label": 1, "ts": NOW})
    store = open_store(url)
    store.write(rows, batches)
    store.close()
    engine = sa.create_engine(url)
    table = contract.tables(sa.MetaData())[3]
    with engine.begin() as conn:
        conn.execute(contract.label_upsert(table, engine.dialect.name), labels)
    engine.dispose()


def _contents(url: str) -> dict[str, set]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        out = {
            name: set(conn.execute(sa.text(sql)).all())
            for name, sql in {
                "rows": f"SELECT request_id, ts FROM {contract.ROWS}",
                "batches": f"SELECT request_id, n_rows FROM {contract.BATCHES}",
                "labels": f'SELECT request_id, "row" FROM {contract.LABELS}',
            }.items()
        }
    engine.dispose()
    return out


@pytest.mark.slow
def test_dry_run_counts_what_prune_deletes_and_only_old_rows_go(log_url: str) -> None:
    _fill(log_url)
    before = _contents(log_url)
    cutoff = NOW - 90 * DAY
    planned = count_old(log_url, cutoff)
    assert (planned.rows, planned.batches, planned.batch_rows, planned.labels) == (91, 1, 300, 31)
    assert _contents(log_url) == before  # the dry run changed nothing

    done = prune(log_url, cutoff, chunk=7)  # many chunks, one request split across them
    assert done == planned
    after = _contents(log_url)
    assert {rid for rid, ts in after["rows"]} == {f"new-{i}" for i in range(30)} | {"both"}
    assert all(ts >= cutoff for _, ts in after["rows"])
    assert after["batches"] == {("new-batch", 300)}
    kept = {(f"new-{i}", 0) for i in range(30)} | {("new-batch", 7), ("both", 0)}
    assert after["labels"] == kept  # `both` keeps its label: one of its rows stays
    assert prune(log_url, cutoff) == count_old(log_url, cutoff) == prune(log_url, cutoff, 1)


@pytest.mark.slow
def test_cli_dry_run_and_errors(log_url: str, tmp_path: Path) -> None:
    _fill(log_url, requests_per_age=3)
    cli = [sys.executable, "-m", "mlcycle", "log", "prune", "--log-url", log_url]
    dry = subprocess.run([*cli, "--older-than", "90d", "--dry-run"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert dry.returncode == 0, dry.stderr[-800:]
    assert "would delete 10 rows, 1 batches (300 rows) and 4 labels" in dry.stdout
    bad = subprocess.run([*cli, "--older-than", "soon"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "cannot read duration" in bad.stderr
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    gone = subprocess.run([*cli[:-1], missing, "--older-than", "1d"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert gone.returncode == 2 and "no prediction log" in gone.stderr
    assert not (tmp_path / "none.db").exists()
    assert count_old(log_url, NOW - 90 * DAY).rows == 10  # nothing deleted so far


@pytest.mark.slow
def test_prune_beside_a_server_writing_under_load(
    log_url: str, trained_store, tmp_path: Path
) -> None:
    """Every request answered 200 is in the log after a many-chunk prune ran beside it."""
    old = [
        row
        for i in range(20_000)
        for row in contract.build_rows(
            f"old-{i}", "credit-risk", "1", "r", NAMES, _columns(1), [0.5], OLD
        )  # fmt: skip
    ]
    store = open_store(log_url)
    store.write(old)
    store.close()
    server = Server(trained_store, tmp_path, workers=2, MLCYCLE_PREDICTION_LOG_URL=log_url)
    body, answered, failures = sample_csv(5, seed=4), [], []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            rid = uuid.uuid4().hex
            headers = {"Content-Type": "text/csv", "X-Request-ID": rid}
            r = requests.post(f"{server.url}/invocations", data=body, headers=headers, timeout=30)
            (answered if r.status_code == 200 else failures).append((rid, r.status_code))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: answered, 60, "a first request answered")
        before = len(answered)
        pruned = subprocess.run(
            [sys.executable, "-m", "mlcycle", "log", "prune", "--log-url", log_url,
             "--older-than", "30d", "--chunk", "500"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        during = len(answered) - before
        time.sleep(0.5)  # requests after the prune too
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        server.stop()
    assert pruned.returncode == 0, pruned.stderr[-1500:]
    assert "deleted 20,000 rows" in pruned.stdout, pruned.stdout
    assert not failures, failures[:5]
    assert during > 0  # the server answered while the prune ran
    logged = {rid for rid, _ in _contents(log_url)["rows"]}
    assert answered and not any(rid.startswith("old-") for rid in logged)
    assert {rid for rid, _ in answered} <= logged
