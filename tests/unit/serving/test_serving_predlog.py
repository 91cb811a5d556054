"""The prediction-log writer: Contract 2's tables, group commit, durability across processes,
bounded waits and recovery when the store fails."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
import threading
import time

import numpy as np
import pytest

from mlcycle.core.prediction_log import ROW_COLUMNS, build_batch, build_rows
from serving.predlog import LogHooks, LogUnavailable, PredictionLog, SqliteStore, open_store
from tests.helpers import returns_within, wait_until


class CountingStore(SqliteStore):
    def __init__(self, path, **kw):
        super().__init__(path, **kw)
        self.commits = 0

    def write(self, rows, batches=()):
        self.commits += 1
        super().write(rows, batches)


def _rows(rid, n=1):
    cols = {"a": np.arange(n, dtype=float), "b": np.array(["x"] * n, dtype=object)}
    return build_rows(rid, "m", "1", "run", ("a", "b"), cols, np.full(n, 0.25))


def _ids(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT request_id FROM predictions")}


def test_schema_matches_contract(tmp_path):
    open_store(f"sqlite:///{tmp_path / 'p.db'}").write(_rows("r1", 2))
    conn = sqlite3.connect(tmp_path / "p.db")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(predictions)")]
    assert cols == ["id", *ROW_COLUMNS]
    idx = {r[1] for r in conn.execute("PRAGMA index_list(predictions)")}
    assert {"ix_predictions_model_ts", "ix_predictions_ts"} <= idx
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT inputs FROM predictions").fetchone()[0] == '{"a":0.0,"b":"x"}'
    # `id` is SQLite's rowid (no AUTOINCREMENT: no sqlite_sequence write per commit)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "sqlite_sequence" not in tables


def test_missing_numbers_are_logged_as_null():
    rows = build_rows("r", "m", "1", "run", ("a",), {"a": np.array([np.nan])}, np.array([0.5]))
    assert rows[0][5] == '{"a":null}'


def test_group_commit_under_concurrency(tmp_path):
    stores = []

    def factory():
        stores.append(CountingStore(str(tmp_path / "p.db")))
        return stores[-1]

    log = PredictionLog(factory)
    errors = []

    def worker(k):
        for i in range(50):
            try:
                log.write(_rows(f"{k}-{i}"))
            except LogUnavailable as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    log.close()
    assert not errors
    assert len(_ids(tmp_path / "p.db")) == 400
    assert stores[0].commits < 400  # rows queued during a commit shared the next one


def test_write_failure_is_a_503_and_counted(tmp_path):
    def broken():
        raise OSError("disk gone")

    failures = []
    log = PredictionLog(broken, probe_s=3600, hooks=LogHooks(failed=lambda: failures.append(1)))
    with pytest.raises(LogUnavailable) as err:
        log.write(_rows("r"))
    assert err.value.status == 503 and err.value.headers == {"Retry-After": "1"}
    assert failures == [1] and not log.available
    with pytest.raises(LogUnavailable, match="disk gone"):  # refused at once while down
        log.write(_rows("r2"))
    assert failures == [1]


def _child(path, k):
    log = PredictionLog(lambda: open_store(f"sqlite:///{path}"))
    for i in range(100):
        log.write(_rows(f"p{k}-{i}"))
    log.close()


def test_several_processes_share_one_sqlite_file(tmp_path):
    path = str(tmp_path / "p.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child, args=(path, k)) for k in range(3)]
    [p.start() for p in procs]
    [p.join(60) for p in procs]
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(_ids(path)) == 300


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
        lambda: open_store(f"sqlite:///{tmp_path / 'p.db'}"),
        hooks=LogHooks(committed=lambda rows, seconds: committed.append(rows)),
    )
    cols = {"a": np.arange(1000, dtype=float), "b": np.array(["x"] * 1000, dtype=object)}
    batch = build_batch("big", "m", "1", "run", ("a", "b"), cols, np.full(1000, 0.5))
    log.write(_rows("small", 2), [batch])
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
    log, stores = _counting_log(tmp_path, wait_us=600_000_000)  # 10 minutes, were it ever used
    log.write(_rows("warm"))
    turn = log.expect()
    returns_within(10, "a lone request's write", log.write, _rows("lone"), (), turn)
    assert stores[0].commits == 2 and "lone" in _ids(tmp_path / "p.db")


def test_leader_waits_for_expected_requests_and_commits_them_together(tmp_path):
    log, stores = _counting_log(tmp_path, wait_us=2_000_000)
    log.write(_rows("warm"))
    before = stores[0].commits
    first, second = log.expect(), log.expect()  # a second request is being scored
    done = threading.Event()
    leader = threading.Thread(target=lambda: (log.write(_rows("a"), expected=first), done.set()))
    leader.start()
    assert not done.wait(0.2)  # the leader is gathering: nothing committed yet
    assert stores[0].commits == before
    log.write(_rows("b"), expected=second)
    leader.join(5)
    assert done.is_set() and stores[0].commits == before + 1  # one commit for both


def test_cancelled_request_releases_the_leader(tmp_path):
    log, _ = _counting_log(tmp_path, wait_us=10_000_000)
    log.write(_rows("warm"))
    first, second = log.expect(), log.expect()
    done = threading.Event()
    threading.Thread(target=lambda: (log.write(_rows("a"), expected=first), done.set())).start()
    assert not done.wait(0.1)
    second.cancel()  # the other request failed validation: nothing of it is coming
    assert done.wait(2), "the leader still waited for a request that withdrew"


def test_group_wait_is_bounded_when_an_expected_request_never_comes(tmp_path):
    log, _ = _counting_log(tmp_path, wait_us=100_000)
    log.write(_rows("warm"))
    first = log.expect()
    log.expect()  # never writes, never cancels
    returns_within(10, "a leader waiting for a request that never comes", log.write,
                   _rows("a"), (), first)  # fmt: skip
    assert "a" in _ids(tmp_path / "p.db")


def _hold_write_lock(path, seconds: float, ready, release) -> None:
    """Another process's exclusive transaction on the log (a fault, not a mock)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    release.wait(seconds)
    conn.execute("ROLLBACK")
    conn.close()


def _run_clients(client, phase: str, seconds: float, n: int = 4) -> None:
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(phase, k, until)) for k in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]


def test_a_locked_store_gives_503s_within_the_wait_and_heals_without_restart(tmp_path):
    """The wedge of issue 10: after another process's long lock, every request must succeed
    again, and exactly the requests answered OK are stored."""
    path = tmp_path / "p.db"
    log = PredictionLog(
        lambda: open_store(f"sqlite:///{path}", timeout_s=0.3), wait_s=0.5, probe_s=0.05
    )
    log.write(_rows("before"))
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_write_lock, args=(str(path), 30, ready, release))
    holder.start()
    assert ready.wait(30)
    answered: dict[str, bool] = {}
    lock = threading.Lock()

    def client(phase: str, k: int, until: float) -> None:
        i = 0
        while time.monotonic() < until:
            rid = f"{phase}{k}-{i}"
            i += 1
            started = time.monotonic()
            try:
                log.write(_rows(rid))
                ok = True
            except LogUnavailable:
                ok = False
            assert time.monotonic() - started < 2.0  # bounded: wait_s plus one store timeout
            with lock:
                answered[rid] = ok

    _run_clients(client, "d", 1.5)
    assert not any(answered.values()) and not log.available
    release.set()
    holder.join(10)
    wait_until(lambda: log.available, 5, "the log recovering after the lock's release")
    _run_clients(client, "a", 0.5)
    log.close()
    ok = {rid for rid, good in answered.items() if good}
    assert all(good for rid, good in answered.items() if rid.startswith("a")) and ok
    assert _ids(path) - {"before"} == ok  # stored exactly the requests answered OK


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
    start = quiet.stat().st_size
    _commit_singles(store, 1200)
    _commit_singles(reference, 1200)
    assert quiet.stat().st_size == start  # every page still only in the WAL
    assert auto.stat().st_size > 2 * start  # the control: commits checkpointed it themselves
    assert sqlite3.connect(quiet).execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 1200
    store.close()
    reference.close()


def _checkpoint_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "predlog-checkpoint"}


def test_checkpointer_thread_copies_the_wal_into_the_file(tmp_path):
    path = tmp_path / "p.db"
    others = _checkpoint_threads()
    store = SqliteStore(str(path), checkpoint_s=0.05)
    (thread,) = _checkpoint_threads() - others
    start = path.stat().st_size
    _commit_singles(store, 300)  # into the WAL only: the writers do not checkpoint
    wait_until(lambda: path.stat().st_size > start, 10, "the WAL copied into the file")
    store.close()
    assert not thread.is_alive()
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 300


def test_checkpointer_restarts_a_wal_that_keeps_growing(tmp_path):
    from serving.predlog.checkpoint import WalCheckpointer

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


def _checkpoint_once(ckpt) -> None:
    """One checkpoint round on a connection of this thread's own."""
    conn = ckpt.connect()
    try:
        ckpt.checkpoint(conn)
    finally:
        conn.close()


def test_restart_waits_briefly_for_a_reader_then_backs_off(tmp_path):
    from serving.predlog.checkpoint import WalCheckpointer

    path = str(tmp_path / "p.db")
    store = SqliteStore(path, checkpoint_s=3600)
    ckpt = WalCheckpointer(path, interval=3600, restart_pages=100)
    conn = ckpt.connect()
    _commit_singles(store, 100)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM predictions").fetchone()  # holds its snapshot
    _commit_singles(store, 100, prefix="more")
    # The reader keeps its snapshot until this thread lets it go: a RESTART that waited for it
    # would never return.
    returns_within(10, "a RESTART while a reader holds its snapshot", _checkpoint_once, ckpt)
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


def test_checkpointer_outlives_a_failed_round(tmp_path, caplog):
    from serving.predlog.checkpoint import WalCheckpointer

    caplog.set_level(logging.WARNING, logger="serving.predlog.checkpoint")
    path = tmp_path / "later" / "p.db"  # its folder does not exist yet: connecting fails
    ckpt = WalCheckpointer(str(path), interval=0.02)
    wait_until(lambda: "checkpoint failed" in caplog.text, 10, "a failed checkpoint round")
    assert ckpt.alive and ckpt.checkpoints == 0
    store = SqliteStore(str(path))  # creates the folder and the database
    wait_until(lambda: ckpt.checkpoints >= 1, 10, "a checkpoint once the database exists")
    ckpt.close()
    store.close()
