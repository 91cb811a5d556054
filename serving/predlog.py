"""Durable prediction log (Contract 2): every scored row, group-committed.

In: `PredictionLog.write(rows)` from request threads (rows from `build_rows`).
Out: rows in table `predictions` of a SQLite file (WAL; the default) or any SQLAlchemy URL
(PostgreSQL). Rows queued while a commit runs go into the next single commit (group commit),
made by the first waiting request thread ("inline", the default) or by a writer thread
("thread"). `write` returns once the rows are committed and the request answers only then, so
a crash (even `kill -9`) loses no acknowledged row. Several processes may share one SQLite
file (busy timeout).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

log = logging.getLogger(__name__)

COLUMNS = (
    "ts",
    "request_id",
    "model_name",
    "model_version",
    "model_run_id",
    "inputs",
    "prediction",
)
_INSERT = (
    "INSERT INTO predictions (ts, request_id, model_name, model_version, model_run_id, "
    "inputs, prediction) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_DDL = (
    # INTEGER PRIMARY KEY is SQLite's auto-assigned rowid (what SQLAlchemy's autoincrement
    # means there); the AUTOINCREMENT keyword would add a sqlite_sequence write per commit.
    "CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY, ts REAL "
    "NOT NULL, request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
    "inputs TEXT, prediction REAL)",
    "CREATE INDEX IF NOT EXISTS ix_predictions_model_ts ON predictions "
    "(model_name, model_version, ts)",
    "CREATE INDEX IF NOT EXISTS ix_predictions_ts ON predictions (ts)",
)


class Ticket:
    """One request's rows on their way to the store; `wait` blocks until `done`."""

    __slots__ = ("_lock", "error", "rows", "batch")

    def __init__(self, rows: list[tuple]) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.error: BaseException | None = None
        self.rows = rows
        self.batch: list[Ticket] | None = None

    def done(self, error: BaseException | None = None) -> None:
        self.error = error
        if self._lock.locked():
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """True once `done` (or handed a group to commit) within `timeout` seconds."""
        return self._lock.acquire(timeout=timeout)


class Store:
    """Where rows go: `write(rows)` inserts and commits, or raises."""

    def write(self, rows: list[tuple]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class SqliteStore(Store):
    """A SQLite file in WAL mode; `synchronous=NORMAL` survives process crashes."""

    def __init__(
        self, path: str, busy_timeout_ms: int = 30_000, synchronous: str = "NORMAL"
    ) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, timeout=busy_timeout_ms / 1000, check_same_thread=False, isolation_level=None
        )
        self._conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        for ddl in _SQLITE_DDL:
            self._conn.execute(ddl)
        self._timeout = busy_timeout_ms / 1000
        self._conn.execute("PRAGMA busy_timeout=0")

    def write(self, rows: list[tuple]) -> None:
        conn = self._conn
        self._begin(conn)
        try:
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _begin(self, conn: sqlite3.Connection) -> None:
        # SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries; with several
        # worker processes committing small groups that costs more than the commits, so the
        # write lock is retried here every 100-200 microseconds instead.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.0001)

    def close(self) -> None:
        self._conn.close()


class SqlAlchemyStore(Store):
    """Any SQLAlchemy URL (PostgreSQL in docker-compose); creates the table if missing."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(url, pool_pre_ping=True)
        meta = sa.MetaData()
        self._table = sa.Table(
            "predictions",
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ts", sa.Float(precision=53), nullable=False),
            sa.Column("request_id", sa.Text),
            sa.Column("model_name", sa.Text),
            sa.Column("model_version", sa.Text),
            sa.Column("model_run_id", sa.Text),
            sa.Column("inputs", sa.Text),
            sa.Column("prediction", sa.Float(precision=53)),
            sa.Index("ix_predictions_model_ts", "model_name", "model_version", "ts"),
            sa.Index("ix_predictions_ts", "ts"),
        )
        meta.create_all(self._engine, checkfirst=True)

    def write(self, rows: list[tuple]) -> None:
        with self._engine.begin() as conn:
            conn.execute(self._table.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in rows])

    def close(self) -> None:
        self._engine.dispose()


def open_store(url: str, synchronous: str = "NORMAL") -> Store:
    """A `Store` for a URL: `sqlite:///path` uses sqlite3 directly, anything else SQLAlchemy.

    Args:
        url: SQLAlchemy-style URL.
        synchronous: SQLite `synchronous` pragma; NORMAL and OFF both survive a killed process
            (WAL), only FULL also survives power loss.
    """
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :], synchronous=synchronous)
    return SqlAlchemyStore(url)


def build_rows(
    request_id: str,
    model_name: str,
    model_version: str,
    run_id: str,
    names: tuple[str, ...],
    columns: dict[str, list | np.ndarray],
    predictions: np.ndarray,
    ts: float | None = None,
) -> list[tuple]:
    """The `predictions` rows of one scored request.

    Args:
        columns: the request's validated input values per column (lists as received, or
            arrays); each row is logged as a JSON object, NaN as null.
    """
    ts = time.time() if ts is None else ts
    lists = [_plain(columns[c]) for c in names]
    preds = predictions.tolist()
    dumps = orjson.dumps
    return [
        (
            ts,
            request_id,
            model_name,
            model_version,
            run_id,
            dumps(dict(zip(names, values, strict=True))).decode(),
            p,
        )
        for values, p in zip(zip(*lists, strict=True), preds, strict=True)
    ]


def _plain(values: list | np.ndarray) -> list:
    if type(values) is list:
        return values
    if values.dtype.kind == "f":
        return [None if v != v else v for v in values.tolist()]
    return values.tolist()


class PredictionLog:
    """Group commit: every row queued while a commit runs goes into the next single commit.

    `write(rows)` returns only after the rows are committed. Two modes, chosen by measurement
    (docs/serving.md): "inline" (default) lets the first waiting request thread commit the
    whole queued group, so a lone request pays no thread hand-off; "thread" hands every group
    to one writer thread. Both commit each group in one transaction.
    """

    def __init__(
        self,
        store_factory: Callable[[], Store],
        max_rows: int = 2048,
        on_commit: Callable[[int], None] | None = None,
        on_failure: Callable[[], None] | None = None,
        mode: str = "inline",
    ) -> None:
        if mode not in ("inline", "thread"):
            raise ValueError(f"unknown prediction log mode {mode!r}")
        self._factory = store_factory
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._mode = mode
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._pending: list[Ticket] = []
        self._busy = False
        self._closed = False
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._thread = None
        if mode == "thread":
            self._thread = threading.Thread(target=self._run, name="predlog-writer", daemon=True)
            self._thread.start()

    def write(self, rows: list[tuple], timeout: float = 30.0) -> bool:
        """Commit `rows` (with whatever else is queued); True once committed, False on failure."""
        ticket = Ticket(rows)
        if self._mode == "thread":
            self._queue.put(ticket)
            return ticket.wait(timeout) and ticket.error is None
        with self._lock:
            if self._busy:
                self._pending.append(ticket)
            else:
                self._busy = True
                ticket.batch = [ticket]
        if ticket.batch is None and not ticket.wait(timeout):
            return False
        if ticket.batch is not None:
            self._lead(ticket.batch)
        return ticket.error is None

    def depth(self) -> int:
        """Requests waiting for a commit."""
        return len(self._pending) + self._queue.qsize()

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is queued, then release the store."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
        with self._lock:
            store, self._store = self._store, None
        _drop(store)

    def _lead(self, batch: list[Ticket]) -> None:
        while True:
            self._commit(batch)
            with self._lock:
                if not self._pending:
                    self._busy = False
                    return
                batch, rows = [], 0
                while self._pending and (
                    not batch or rows + len(self._pending[0].rows) <= self._max_rows
                ):
                    nxt = self._pending.pop(0)
                    batch.append(nxt)
                    rows += len(nxt.rows)
            # Hand the next group to its first request so this one can answer now.
            batch[0].batch = batch
            batch[0].done()
            return

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, rows = [first], len(first.rows)
            while rows < self._max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._commit(batch)
                    return
                batch.append(nxt)
                rows += len(nxt.rows)
            self._commit(batch)

    def _commit(self, batch: list[Ticket]) -> None:
        rows = [r for t in batch for r in t.rows]
        error = None
        for attempt in range(3):
            try:
                if self._store is None:
                    self._store = self._factory()
                self._store.write(rows)
                error = None
                break
            except Exception as exc:
                error = exc
                log.warning("prediction log write failed (attempt %d): %s", attempt + 1, exc)
                self._store = _drop(self._store)
                time.sleep(0.05 * (attempt + 1))
        if error is not None:
            if self._on_failure:
                self._on_failure()
        elif self._on_commit:
            self._on_commit(len(rows))
        for t in batch:
            t.done(error)


def _drop(store: Store | None) -> None:
    if store is not None:
        try:
            store.close()
        except Exception:  # the connection is already broken; nothing else to release
            log.debug("closing a broken prediction store failed", exc_info=True)
    return None
