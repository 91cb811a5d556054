"""Faults injected into a real server's prediction log: a lock held by another process, a
PostgreSQL crash, a full disk. The invariant after each (as Jepsen states it for databases):
every request answered 200 is in the log, no request answered otherwise is, refusals are clear
503s with `Retry-After`, and the server is answering 200 again within 5 s of the fault's end,
without a restart."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests import postgres
from tests.helpers import records
from tests.traffic import Traffic, logged_ids

pytestmark = [pytest.mark.slow, pytest.mark.serial]
HEAL_S = 5.0  # the bound: 200s again within 5 s of the store coming back


def _one_row(example_rows) -> dict:
    return {"dataframe_records": records(example_rows.head(1))}


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def _check_healed(traffic: Traffic, fault_end: float) -> None:
    """Requests sent from `HEAL_S` after the fault's end are all 200 (and some were sent)."""
    assert traffic.wait_for(
        lambda answers: sum(a.status == 200 and a.sent > fault_end for a in answers) > 0,
        HEAL_S + 5,
    ), "no 200 after the fault ended"
    first_ok = min(a.done for a in traffic.snapshot() if a.status == 200 and a.sent > fault_end)
    assert first_ok - fault_end < HEAL_S, f"first 200 {first_ok - fault_end:.1f} s after the fault"
    healed = fault_end + HEAL_S
    assert traffic.wait_for(  # 1.5 s of traffic past the bound, answered
        lambda answers: any(a.sent >= healed + 1.5 for a in answers), HEAL_S + 10
    ), "no traffic answered after the heal bound"
    late = traffic.since(healed)
    assert late and all(a.status == 200 for a in late), [a for a in late if a.status != 200][:3]


def _check_answers(traffic: Traffic, fault_end: float, stored: set[str]) -> None:
    ok = traffic.ok_ids()
    lost, extra = len(ok - stored), len(stored - ok)
    print(f"\n{traffic.summary(fault_end)}, stored {len(stored)}, lost {lost}, extra {extra}")
    answers = traffic.snapshot()
    odd = [a for a in answers if a.status not in (200, 503)]
    assert not odd, f"answers other than 200/503: {odd[:3]}"
    refused = [a for a in answers if a.status == 503]
    assert refused, "the fault never showed (no 503)"
    assert all(a.retry_after for a in refused), "a 503 without Retry-After"
    assert max(a.seconds for a in answers) < 10, "a request waited past every server bound"


HOLD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def test_sqlite_log_locked_past_the_request_wait_then_released(example_rows, start_server):
    server = start_server(workers=2, MLCYCLE_PREDICTION_LOG_WAIT_S="2")
    with Traffic(server.url + "/invocations", _one_row(example_rows), threads=4) as traffic:
        assert traffic.wait_for(lambda a: any(x.status == 200 for x in a), 10)
        hold = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(server.log_db), "5"], stdout=subprocess.PIPE
        )
        assert hold.stdout.readline().strip() == b"locked"
        ready, live = set(), set()
        while hold.poll() is None:
            ready.add(_status(server.url + "/v2/health/ready"))
            live.add(_status(server.url + "/v2/health/live"))
            time.sleep(0.2)  # sampling the probes while the lock is held
        released = time.monotonic()
        assert 503 in ready, "readiness stayed true while the log refused writes"
        assert live == {200}, "a locked store is not a stuck writer: liveness must stay true"
        metrics = requests.get(server.url + "/metrics", timeout=5).text
        assert "mlcycle_prediction_log_write_failures_total" in metrics
        _check_healed(traffic, released)
        assert _status(server.url + "/v2/health/ready") == 200
    stored = logged_ids(server.log_db)
    _check_answers(traffic, released, stored)
    assert stored == traffic.ok_ids()


def test_postgres_log_killed_and_restarted(example_rows, start_server):
    import sqlalchemy as sa

    cluster = postgres.cluster_or_skip(postgres.DURABLE)
    admin = cluster.start()
    try:
        engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE predlog"))
        engine.dispose()
        url = admin.rsplit("/", 1)[0] + "/predlog"
        server = start_server(workers=2, MLCYCLE_PREDICTION_LOG_URL=url)
        with Traffic(server.url + "/invocations", _one_row(example_rows), threads=4) as traffic:
            assert traffic.wait_for(lambda a: sum(x.status == 200 for x in a) > 20, 15)
            cluster.kill()
            assert traffic.wait_for(lambda a: a and a[-1].status == 503, 10)
            time.sleep(2)  # the fault: PostgreSQL stays down 2 s
            cluster.restart()
            back = time.monotonic()
            _check_healed(traffic, back)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            stored = {r[0] for r in conn.execute(sa.text("SELECT request_id FROM predictions"))}
        engine.dispose()
        _check_answers(traffic, back, stored)
        assert stored == traffic.ok_ids()
    finally:
        cluster.stop()


@contextlib.contextmanager
def _small_filesystem(path: Path, size: str):
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)
    return filler


def test_full_disk_gives_clear_503s_and_recovers(example_rows, start_server, tmp_path):
    # Larger than the WAL's 32 MiB ceiling (the checkpointer's RESTART point), so only the
    # filler fills it.
    with _small_filesystem(tmp_path / "small", "48m") as small:
        db = small / "predictions.db"
        server = start_server(workers=2, MLCYCLE_PREDICTION_LOG_URL=f"sqlite:///{db}")
        with Traffic(server.url + "/invocations", _one_row(example_rows), threads=4) as traffic:
            assert traffic.wait_for(lambda a: sum(x.status == 200 for x in a) > 20, 15)
            filler = _fill(small)
            assert traffic.wait_for(lambda a: sum(x.status == 503 for x in a) > 5, 15), (
                "a full disk never turned into 503s"
            )
            assert _status(server.url + "/v2/health/live") == 200
            time.sleep(1)  # the fault: the disk stays full 1 s more
            filler.unlink()
            freed = time.monotonic()
            _check_healed(traffic, freed)
        stored = logged_ids(db)
        _check_answers(traffic, freed, stored)
        assert stored == traffic.ok_ids()
