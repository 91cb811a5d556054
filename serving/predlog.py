"""Durable prediction log (Contract 2): every scored row, group-committed off the request path.

In: `PredictionLog.log(...)` from request threads with the validated columns and predictions.
Out: rows in table `predictions` of a SQLite file (WAL; the default) or any SQLAlchemy URL
(PostgreSQL), written by one writer thread per process that commits everything queued at once.
`log` returns a `Ticket`; the request waits on it and answers only after its rows are
committed, so a crash (even `kill -9`) loses no acknowledged row. Several processes may share
one SQLite file (busy timeout).
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
    "CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL "
    "NOT NULL, request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
    "inputs TEXT, prediction REAL)",
    "CREATE INDEX IF NOT EXISTS ix_predictions_model_ts ON predictions "
    "(model_name, model_version, ts)",
    "CREATE INDEX IF NOT EXISTS ix_predictions_ts ON predictions (ts)",
)


class Ticket:
    """Completion handle of one `log` call: `wait()` returns once the rows are committed."""

    __slots__ = ("_event", "error", "rows")

    def __init__(self, rows: list[tuple]) -> None:
        self._event = threading.Event()
        self.error: BaseException | None = None
        self.rows = rows

    def done(self, error: BaseException | None = None) -> None:
        self.error = error
        self._event.set()

    def wait(self, timeout: float | None = 30.0) -> bool:
        """True when committed; False on a write failure or timeout."""
        return self._event.wait(timeout) and self.error is None


class Store:
    """Where rows go: `write(rows)` inserts and commits, or raises."""

    def write(self, rows: list[tuple]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class SqliteStore(Store):
    """A SQLite file in WAL mode; `synchronous=NORMAL` survives process crashes."""

    def __init__(self, path: str, busy_timeout_ms: int = 30_000) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path, timeout=busy_timeout_ms / 1000, check_same_thread=False, isolation_level=None
        )
        self._conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        for ddl in _SQLITE_DDL:
            self._conn.execute(ddl)

    def write(self, rows: list[tuple]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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


def open_store(url: str) -> Store:
    """A `Store` for a URL: `sqlite:///path` uses sqlite3 directly, anything else SQLAlchemy."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    return SqlAlchemyStore(url)


def build_rows(
    request_id: str,
    model_name: str,
    model_version: str,
    run_id: str,
    names: tuple[str, ...],
    columns: dict[str, np.ndarray],
    predictions: np.ndarray,
    ts: float | None = None,
) -> list[tuple]:
    """The `predictions` rows of one scored request (inputs as JSON objects)."""
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


def _plain(arr: np.ndarray) -> list:
    if arr.dtype.kind == "f":
        return [None if v != v else v for v in arr.tolist()]
    return arr.tolist()


class PredictionLog:
    """Group-commit writer: requests enqueue rows, one thread commits all queued rows at once."""

    def __init__(
        self,
        store_factory: Callable[[], Store],
        max_rows: int = 2048,
        on_commit: Callable[[int], None] | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self._factory = store_factory
        self._max_rows = max_rows
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._thread = threading.Thread(target=self._run, name="predlog-writer", daemon=True)
        self._stopped = False
        self._thread.start()

    def log(self, rows: list[tuple]) -> Ticket:
        """Queue rows for the next group commit; wait on the returned ticket before answering."""
        ticket = Ticket(rows)
        self._queue.put(ticket)
        return ticket

    def depth(self) -> int:
        """Tickets waiting for the writer."""
        return self._queue.qsize()

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is queued, then stop the writer."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        store = None
        while True:
            first = self._queue.get()
            batch = [] if first is None else [first]
            rows = len(first.rows) if first else 0
            while rows < self._max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    first = None
                    break
                batch.append(nxt)
                rows += len(nxt.rows)
            if batch:
                store = self._commit(store, batch)
            if first is None:
                if store is not None:
                    store.close()
                return

    def _commit(self, store: Store | None, batch: list[Ticket]) -> Store | None:
        rows = [r for t in batch for r in t.rows]
        for attempt in range(3):
            try:
                if store is None:
                    store = self._factory()
                store.write(rows)
                break
            except Exception as exc:
                log.warning("prediction log write failed (attempt %d): %s", attempt + 1, exc)
                store = _drop(store)
                if attempt == 2:
                    if self._on_failure:
                        self._on_failure()
                    for t in batch:
                        t.done(exc)
                    return store
                time.sleep(0.05 * (attempt + 1))
        if self._on_commit:
            self._on_commit(len(rows))
        for t in batch:
            t.done()
        return store


def _drop(store: Store | None) -> None:
    if store is not None:
        try:
            store.close()
        except Exception:  # the connection is already broken; nothing else to release
            log.debug("closing a broken prediction store failed", exc_info=True)
    return None
