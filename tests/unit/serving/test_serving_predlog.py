"""The prediction log: schema of Contract 2, group commit, durability across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import numpy as np
import pytest

from serving.predlog import PredictionLog, SqliteStore, build_batch, build_rows, open_store


class CountingStore(SqliteStore):
    def __init__(self, path):
        super().__init__(path)
        self.commits = 0

    def write(self, rows, batches=()):
        self.commits += 1
        super().write(rows, batches)


def _rows(rid, n=1):
    cols = {"a": np.arange(n, dtype=float), "b": np.array(["x"] * n, dtype=object)}
    return build_rows(rid, "m", "1", "run", ("a", "b"), cols, np.full(n, 0.25))


def test_schema_matches_contract(tmp_path):
    open_store(f"sqlite:///{tmp_path / 'p.db'}").write(_rows("r1", 2))
    conn = sqlite3.connect(tmp_path / "p.db")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(predictions)")]
    assert cols == [
        "id",
        "ts",
        "request_id",
        "model_name",
        "model_version",
        "model_run_id",
        "inputs",
        "prediction",
    ]
    idx = {r[1] for r in conn.execute("PRAGMA index_list(predictions)")}
    assert {"ix_predictions_model_ts", "ix_predictions_ts"} <= idx
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT inputs FROM predictions").fetchone()[0] == '{"a":0.0,"b":"x"}'


def test_missing_numbers_are_logged_as_null():
    rows = build_rows("r", "m", "1", "run", ("a",), {"a": np.array([np.nan])}, np.array([0.5]))
    assert rows[0][5] == '{"a":null}'


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_group_commit_under_concurrency(tmp_path, mode):
    stores = []

    def factory():
        stores.append(CountingStore(str(tmp_path / "p.db")))
        return stores[-1]

    log = PredictionLog(factory, mode=mode)
    results = []

    def worker(k):
        for i in range(50):
            results.append(log.write(_rows(f"{k}-{i}")))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    log.close()
    assert all(results) and len(results) == 400
    count = sqlite3.connect(tmp_path / "p.db").execute("SELECT COUNT(*) FROM predictions")
    assert count.fetchone()[0] == 400
    assert stores[0].commits < 400  # rows queued during a commit shared the next one


def test_write_failure_is_reported_not_raised(tmp_path):
    def broken():
        raise OSError("disk gone")

    failures = []
    log = PredictionLog(broken, on_failure=lambda: failures.append(1))
    assert log.write(_rows("r")) is False
    assert failures == [1]


def _child(path, k):
    log = PredictionLog(lambda: open_store(f"sqlite:///{path}"))
    for i in range(100):
        assert log.write(_rows(f"p{k}-{i}"))
    log.close()


def test_several_processes_share_one_sqlite_file(tmp_path):
    path = str(tmp_path / "p.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(path, k)) for k in range(3)]
    [p.start() for p in procs]
    [p.join(60) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0, 0]
    n = sqlite3.connect(path).execute("SELECT COUNT(DISTINCT request_id) FROM predictions")
    assert n.fetchone()[0] == 300


def test_batches_round_trip_through_arrow_with_nulls_and_categories(tmp_path):
    import pandas as pd
    import pyarrow as pa

    cols = {
        "a": np.array([1.5, np.nan, 3.0]),
        "b": pd.Categorical.from_codes([1, -1, 0], categories=["x", "y"]),
        "c": np.array(["u", None, "v"], dtype=object),
    }
    batch = build_batch("r", "m", "2", "run", ("a", "b", "c"), cols, np.array([0.1, 0.2, 0.3]))
    assert batch[:7] == (batch[0], "r", "m", "2", "run", 3, "arrow-ipc")
    table = pa.ipc.open_stream(batch[7]).read_all()
    assert table.to_pydict() == {
        "a": [1.5, None, 3.0],
        "b": ["y", None, "x"],
        "c": ["u", None, "v"],
        "prediction": [0.1, 0.2, 0.3],
    }
    # The rows path logs the same values (a Categorical becomes plain strings, NaN -> null).
    rows = build_rows("r", "m", "2", "run", ("a", "b", "c"), cols, np.array([0.1, 0.2, 0.3]))
    assert [r[5] for r in rows] == [
        '{"a":1.5,"b":"y","c":"u"}',
        '{"a":null,"b":null,"c":null}',
        '{"a":3.0,"b":"x","c":"v"}',
    ]


def test_rows_and_batches_commit_together_and_count_as_rows(tmp_path):
    committed = []
    log = PredictionLog(
        lambda: open_store(f"sqlite:///{tmp_path / 'p.db'}"), on_commit=committed.append
    )
    cols = {"a": np.arange(1000, dtype=float), "b": np.array(["x"] * 1000, dtype=object)}
    batch = build_batch("big", "m", "1", "run", ("a", "b"), cols, np.full(1000, 0.5))
    assert log.write(_rows("small", 2), [batch])
    log.close()
    conn = sqlite3.connect(tmp_path / "p.db")
    assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone() == (2,)
    assert conn.execute("SELECT request_id, n_rows FROM prediction_batches").fetchall() == [
        ("big", 1000)
    ]
    assert sum(committed) == 1002


def _counting_log(tmp_path, wait_us):
    stores = []

    def factory():
        stores.append(CountingStore(str(tmp_path / "p.db")))
        return stores[-1]

    return PredictionLog(factory, group_wait_us=wait_us), stores


def test_lone_request_never_waits_for_a_group(tmp_path):
    log, _ = _counting_log(tmp_path, wait_us=2_000_000)  # a 2 s window, were it ever used
    log.write(_rows("warm"))
    log.expect()
    started = time.perf_counter()
    assert log.write(_rows("lone"), expected=True)
    assert time.perf_counter() - started < 0.5


def test_leader_waits_for_expected_requests_and_commits_them_together(tmp_path):
    log, stores = _counting_log(tmp_path, wait_us=2_000_000)
    log.write(_rows("warm"))
    before = stores[0].commits
    log.expect()
    log.expect()  # a second request is being scored
    results = []
    leader = threading.Thread(target=lambda: results.append(log.write(_rows("a"), expected=True)))
    leader.start()
    time.sleep(0.2)  # the leader is gathering: nothing committed yet
    assert stores[0].commits == before and not results
    assert log.write(_rows("b"), expected=True)
    leader.join(5)
    assert results == [True] and stores[0].commits == before + 1  # one commit for both


def test_withdrawn_request_releases_the_leader(tmp_path):
    log, stores = _counting_log(tmp_path, wait_us=10_000_000)
    log.write(_rows("warm"))
    log.expect()
    log.expect()
    done = threading.Event()
    threading.Thread(target=lambda: (log.write(_rows("a"), expected=True), done.set())).start()
    time.sleep(0.1)
    log.withdraw()  # the other request failed validation: nothing of it is coming
    assert done.wait(2), "the leader still waited for a request that withdrew"


def test_group_wait_is_bounded_when_an_expected_request_never_comes(tmp_path):
    log, _ = _counting_log(tmp_path, wait_us=100_000)
    log.write(_rows("warm"))
    log.expect()
    log.expect()  # never writes, never withdraws
    started = time.perf_counter()
    assert log.write(_rows("a"), expected=True)
    assert 0.09 < time.perf_counter() - started < 1.5


def _wal_frames(path) -> int:
    """Frames now in the WAL: a PASSIVE checkpoint reports them (it may copy frames, but never
    changes how many there are)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        conn.close()


def _commit_singles(store, n, prefix="r"):
    for i in range(n):
        store.write(_rows(f"{prefix}{i}"))


def test_with_a_checkpointer_commits_leave_the_wal_alone(tmp_path):
    # SQLite's automatic checkpoint would copy the WAL into the file inside the commit that
    # crosses 1000 pages; with the background checkpointer (here: not due for an hour) no
    # commit does, so no request waits for a checkpoint's fsyncs.
    quiet, auto = tmp_path / "quiet.db", tmp_path / "auto.db"
    store = SqliteStore(str(quiet), checkpoint_s=3600)
    reference = SqliteStore(str(auto))
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    start = quiet.stat().st_size
    _commit_singles(store, 1200)
    _commit_singles(reference, 1200)
    assert quiet.stat().st_size == start  # every page still only in the WAL
    assert auto.stat().st_size > 2 * start  # the control: commits checkpointed it themselves
    assert sqlite3.connect(quiet).execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 1200
    store.close()
    reference.close()


def test_checkpointer_thread_copies_the_wal_into_the_file(tmp_path):
    path = tmp_path / "p.db"
    store = SqliteStore(str(path), checkpoint_s=0.05)
    start = path.stat().st_size
    _commit_singles(store, 300)
    deadline = time.monotonic() + 10
    while path.stat().st_size == start and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.stat().st_size > start
    assert store._checkpointer.checkpoints >= 1
    store.close()
    assert not store._checkpointer.alive
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 300


def test_checkpointer_restarts_a_wal_that_keeps_growing(tmp_path):
    from serving.predlog import WalCheckpointer

    path = str(tmp_path / "p.db")
    store = SqliteStore(path, checkpoint_s=3600)
    ckpt = WalCheckpointer(path, interval=3600, restart_pages=100)
    conn = ckpt.connect()
    _commit_singles(store, 200)  # ~600 frames
    ckpt.checkpoint(conn)
    assert (ckpt.checkpoints, ckpt.restarts) == (1, 1)
    _commit_singles(store, 1, prefix="after")
    assert _wal_frames(path) < 20  # the next commit started the WAL over
    conn.close()
    ckpt.close()
    store.close()


def test_restart_waits_briefly_for_a_reader_then_backs_off(tmp_path):
    from serving.predlog import WalCheckpointer

    path = str(tmp_path / "p.db")
    store = SqliteStore(path, checkpoint_s=3600)
    ckpt = WalCheckpointer(path, interval=3600, restart_pages=100)
    conn = ckpt.connect()
    _commit_singles(store, 100)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM predictions").fetchone()  # holds its snapshot
    _commit_singles(store, 100, prefix="more")
    t0 = time.monotonic()
    ckpt.checkpoint(conn)
    assert time.monotonic() - t0 < 2.0  # a writer would have waited at most this long
    assert (ckpt.restarts, ckpt.busy_restarts) == (0, 1)
    ckpt.checkpoint(conn)  # backing off: no second wait while the reader is still there
    assert (ckpt.restarts, ckpt.busy_restarts) == (0, 1)
    reader.execute("COMMIT")
    _commit_singles(store, 1, prefix="last")  # writers were never refused
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 201
    for c in (reader, conn):
        c.close()
    ckpt.close()
    store.close()


def test_checkpointer_outlives_a_failed_round(tmp_path):
    from serving.predlog import WalCheckpointer

    path = tmp_path / "later" / "p.db"  # its folder does not exist yet: connecting fails
    ckpt = WalCheckpointer(str(path), interval=0.02)
    time.sleep(0.2)
    assert ckpt.alive and ckpt.checkpoints == 0
    store = SqliteStore(str(path))  # creates the folder and the database
    deadline = time.monotonic() + 10
    while ckpt.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ckpt.checkpoints >= 1
    ckpt.close()
    store.close()
