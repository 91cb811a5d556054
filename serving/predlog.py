"""Durable prediction log (Contract 2): every scored row, group-committed.

In: `PredictionLog.write(rows, batches)` from request threads (rows from `build_rows`, large
requests as one columnar batch from `build_batch`).
Out: rows in table `predictions` (one row per scored row, inputs as JSON) and batches in table
`prediction_batches` (one row per large request: its inputs and predictions as an Arrow IPC
stream) of a SQLite file (WAL; the default) or any SQLAlchemy URL (PostgreSQL). Rows queued
while a commit runs go into the next single commit (group commit), made by the first waiting
request thread ("inline", the default) or by a writer thread ("thread"). `write` returns once
the rows are committed and the request answers only then, so a crash (even `kill -9`) loses no
acknowledged row. Several processes may share one SQLite file (busy timeout).
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
BATCH_COLUMNS = (
    "ts",
    "request_id",
    "model_name",
    "model_version",
    "model_run_id",
    "n_rows",
    "format",
    "data",
)
BATCH_FORMAT = "arrow-ipc"  # an Arrow IPC stream: one column per input, then `prediction`
_INSERT_BATCH = (
    "INSERT INTO prediction_batches (ts, request_id, model_name, model_version, model_run_id, "
    "n_rows, format, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
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
    "CREATE TABLE IF NOT EXISTS prediction_batches (id INTEGER PRIMARY KEY, ts REAL NOT NULL, "
    "request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
    "n_rows INTEGER NOT NULL, format TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_prediction_batches_model_ts ON prediction_batches "
    "(model_name, model_version, ts)",
    "CREATE INDEX IF NOT EXISTS ix_prediction_batches_ts ON prediction_batches (ts)",
)


class Ticket:
    """One request's rows and batches on their way to the store; `wait` blocks until `done`."""

    __slots__ = ("_lock", "error", "rows", "batches", "size", "batch")

    def __init__(self, rows: list[tuple], batches: list[tuple]) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.error: BaseException | None = None
        self.rows = rows
        self.batches = batches
        self.size = len(rows) + sum(b[5] for b in batches)  # scored rows, batches included
        self.batch: list[Ticket] | None = None

    def done(self, error: BaseException | None = None) -> None:
        self.error = error
        if self._lock.locked():
            self._lock.release()

    def wait(self, timeout: float) -> bool:
        """True once `done` (or handed a group to commit) within `timeout` seconds."""
        return self._lock.acquire(timeout=timeout)


class Store:
    """Where rows go: `write(rows, batches)` inserts both in one transaction, or raises."""

    def write(self, rows: list[tuple], batches: list[tuple] = ()) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class SqliteStore(Store):
    """A SQLite file in WAL mode; `synchronous=NORMAL` survives process crashes.

    With `checkpoint_s` set (the server's default), the WAL is checkpointed by a thread of its
    own (`WalCheckpointer`) rather than by whichever commit crosses SQLite's 1000-page mark, so
    no request waits for a checkpoint's copying and fsyncs. Commits are as durable either way.
    """

    def __init__(
        self,
        path: str,
        busy_timeout_ms: int = 30_000,
        synchronous: str = "NORMAL",
        checkpoint_s: float | None = None,
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
        self._checkpointer = None
        if checkpoint_s:
            self._conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn.execute(f"PRAGMA journal_size_limit={_wal_limit_bytes(self._conn)}")
            self._checkpointer = WalCheckpointer(path, checkpoint_s, synchronous.upper())

    def write(self, rows: list[tuple], batches: list[tuple] = ()) -> None:
        conn = self._conn
        self._begin(conn)
        try:
            if rows:
                conn.executemany(_INSERT, rows)
            if batches:
                conn.executemany(_INSERT_BATCH, batches)
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
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._conn.close()


WAL_RESTART_PAGES = 8192  # 32 MiB of 4 KiB pages: past this the checkpointer restarts the WAL


def _wal_limit_bytes(conn: sqlite3.Connection) -> int:
    return WAL_RESTART_PAGES * conn.execute("PRAGMA page_size").fetchone()[0]


class WalCheckpointer:
    """Checkpoints a SQLite WAL from a daemon thread every `interval` seconds.

    A PASSIVE checkpoint never blocks writers. But under steady writes from several processes
    a few frames land during each one, and a WAL only starts over from its beginning once it
    is fully checkpointed. So once the WAL holds more than `restart_pages` frames, one RESTART
    checkpoint holds writers back until it is done (it has little left to copy) and the next
    commit starts the WAL over; `journal_size_limit` trims the file back to that size. A
    RESTART waits at most `RESTART_WAIT_S` for readers (a drift job's long read), and after
    such a wait the next RESTART comes no sooner than `RESTART_BACKOFF_S` later.
    """

    RESTART_WAIT_S = 0.1
    RESTART_BACKOFF_S = 10.0

    def __init__(
        self,
        path: str,
        interval: float,
        synchronous: str = "NORMAL",
        restart_pages: int = WAL_RESTART_PAGES,
    ) -> None:
        self._path = path
        self._interval = interval
        self._sync = synchronous
        self._restart_pages = restart_pages
        self._restart_after = 0.0
        self._stop = threading.Event()
        self.checkpoints = 0
        self.restarts = 0
        self.busy_restarts = 0  # RESTARTs that gave up waiting for a reader
        self._thread = threading.Thread(target=self._run, name="predlog-checkpoint", daemon=True)
        self._thread.start()

    def connect(self) -> sqlite3.Connection:
        """A connection set up for checkpointing (busy wait = `RESTART_WAIT_S`)."""
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=self.RESTART_WAIT_S)
        conn.execute(f"PRAGMA synchronous={self._sync}")
        conn.execute(f"PRAGMA journal_size_limit={_wal_limit_bytes(conn)}")
        return conn

    def _run(self) -> None:
        # The writers no longer checkpoint, so this thread must outlive any one failure: a
        # broken connection is dropped and the next round opens a new one.
        conn = None
        while not self._stop.wait(self._interval):
            try:
                conn = conn or self.connect()
                self.checkpoint(conn)
            except sqlite3.Error as exc:
                log.warning("prediction log checkpoint failed, retrying: %s", exc)
                conn = _drop(conn)
        _drop(conn)

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint, and a RESTART one if the WAL is past `restart_pages`."""
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
            if frames > self._restart_pages and time.monotonic() >= self._restart_after:
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                if busy:
                    self.busy_restarts += 1
                    self._restart_after = time.monotonic() + self.RESTART_BACKOFF_S
                else:
                    self.restarts += 1
        except sqlite3.OperationalError as exc:  # busy or locked: the next round retries
            log.debug("prediction log checkpoint skipped: %s", exc)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (the last connection to close checkpoints what is left)."""
        self._stop.set()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the checkpointing thread is running."""
        return self._thread.is_alive()


class SqlAlchemyStore(Store):
    """Any SQLAlchemy URL (PostgreSQL in docker-compose); creates the table if missing."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        self._engine = sa.create_engine(url, pool_pre_ping=True)
        meta = sa.MetaData()
        self._table = sa.Table(
            "predictions",
            meta,
            *_common_columns(sa),
            sa.Column("inputs", sa.Text),
            sa.Column("prediction", sa.Float(precision=53)),
            sa.Index("ix_predictions_model_ts", "model_name", "model_version", "ts"),
            sa.Index("ix_predictions_ts", "ts"),
        )
        self._batches = sa.Table(
            "prediction_batches",
            meta,
            *_common_columns(sa),
            sa.Column("n_rows", sa.Integer, nullable=False),
            sa.Column("format", sa.Text, nullable=False),
            sa.Column("data", sa.LargeBinary, nullable=False),
            sa.Index("ix_prediction_batches_model_ts", "model_name", "model_version", "ts"),
            sa.Index("ix_prediction_batches_ts", "ts"),
        )
        meta.create_all(self._engine, checkfirst=True)

    def write(self, rows: list[tuple], batches: list[tuple] = ()) -> None:
        with self._engine.begin() as conn:
            if rows:
                conn.execute(
                    self._table.insert(), [dict(zip(COLUMNS, r, strict=True)) for r in rows]
                )
            if batches:
                conn.execute(
                    self._batches.insert(),
                    [dict(zip(BATCH_COLUMNS, b, strict=True)) for b in batches],
                )

    def close(self) -> None:
        self._engine.dispose()


def _common_columns(sa) -> list:
    """The columns both log tables start with (fresh objects: a Column has one table)."""
    return [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("model_name", sa.Text),
        sa.Column("model_version", sa.Text),
        sa.Column("model_run_id", sa.Text),
    ]


def open_store(url: str, synchronous: str = "NORMAL", checkpoint_s: float | None = None) -> Store:
    """A `Store` for a URL: `sqlite:///path` uses sqlite3 directly, anything else SQLAlchemy.

    Args:
        url: SQLAlchemy-style URL.
        synchronous: SQLite `synchronous` pragma; NORMAL and OFF both survive a killed process
            (WAL), only FULL also survives power loss.
        checkpoint_s: SQLite only: checkpoint the WAL from a background thread this often
            (seconds); None or 0 leaves it to SQLite's automatic checkpoint inside commits.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return SqliteStore(path, synchronous=synchronous, checkpoint_s=checkpoint_s)
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


def _plain(values) -> list:
    if type(values) is list:
        return values
    values = np.asarray(values)  # a pandas.Categorical becomes an object array (NaN = missing)
    if values.dtype.kind in "fO":
        return [None if v != v else v for v in values.tolist()]
    return values.tolist()


def build_batch(
    request_id: str,
    model_name: str,
    model_version: str,
    run_id: str,
    names: tuple[str, ...],
    arrays: dict,
    predictions: np.ndarray,
    ts: float | None = None,
) -> tuple:
    """The `prediction_batches` row of one large scored request (all its rows in one blob).

    Args:
        arrays: the request's validated columns (float64 arrays with NaN = missing; object
            arrays of str or `pandas.Categorical` for categories).

    Returns:
        The row, its `data` an Arrow IPC stream (LZ4-compressed buffers) of the input columns
        and `prediction`; missing values are nulls.
    """
    ts = time.time() if ts is None else ts
    blob = encode_batch(names, arrays, predictions)
    return (ts, request_id, model_name, model_version, run_id, len(predictions), BATCH_FORMAT, blob)


def encode_batch(names: tuple[str, ...], arrays: dict, predictions: np.ndarray) -> bytes:
    """Inputs and predictions as one Arrow IPC stream (categories dictionary-encoded)."""
    import pyarrow as pa

    fields = {name: _arrow_column(arrays[name]) for name in names}
    fields["prediction"] = pa.array(np.asarray(predictions, dtype=np.float64))
    table = pa.table(fields)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_column(values):
    import pyarrow as pa

    if hasattr(values, "codes") and hasattr(values, "categories"):  # pandas.Categorical
        codes = np.asarray(values.codes)
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, mask=codes < 0),
            pa.array(np.asarray(values.categories, dtype=object), type=pa.string()),
        )
    values = np.asarray(values)
    if values.dtype.kind == "O":
        return pa.array(values, type=pa.string(), from_pandas=True).dictionary_encode()
    return pa.array(values.astype(np.float64, copy=False), from_pandas=True)


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
        group_wait_us: int = 0,
    ) -> None:
        if mode not in ("inline", "thread"):
            raise ValueError(f"unknown prediction log mode {mode!r}")
        self._group_wait = max(0, group_wait_us) / 1e6
        self._expected = 0  # requests announced by `expect` whose rows have not arrived yet
        self._gathering = False
        self._factory = store_factory
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._on_failure = on_failure
        self._mode = mode
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._pending: list[Ticket] = []
        self._busy = False
        self._closed = False
        self._queue: queue.SimpleQueue[Ticket | None] = queue.SimpleQueue()
        self._thread = None
        if mode == "thread":
            self._thread = threading.Thread(target=self._run, name="predlog-writer", daemon=True)
            self._thread.start()

    def expect(self) -> None:
        """A request started whose rows will come to `write(..., expected=True)` (or that will
        `withdraw`): until they come, a commit leader waits up to `group_wait_us` for them, so
        one commit carries the rows of requests running side by side."""
        with self._lock:
            self._expected += 1

    def withdraw(self) -> None:
        """An `expect`ed request failed before writing: nothing of it is coming."""
        with self._lock:
            self._expected = max(0, self._expected - 1)
            if self._gathering:
                self._arrived.notify()

    def write(
        self,
        rows: list[tuple],
        batches: list[tuple] = (),
        timeout: float = 30.0,
        expected: bool = False,
    ) -> bool:
        """Commit `rows` and `batches` (with whatever else is queued).

        Args:
            rows: `predictions` rows.
            batches: `prediction_batches` rows.
            timeout: seconds to wait for the commit.
            expected: whether this request announced itself with `expect`.

        Returns:
            True once committed, False on failure (or after `timeout` seconds).
        """
        ticket = Ticket(rows, list(batches))
        if self._mode == "thread":
            if expected:
                self.withdraw()
            self._queue.put(ticket)
            return ticket.wait(timeout) and ticket.error is None
        with self._lock:
            if expected:
                self._expected = max(0, self._expected - 1)
            if self._busy:
                self._pending.append(ticket)
                if self._gathering:
                    self._arrived.notify()
            else:
                self._busy = True
                ticket.batch = [ticket]
        if ticket.batch is None and not ticket.wait(timeout):
            return False
        if ticket.batch is not None:
            self._gather(ticket.batch)
            self._lead(ticket.batch)
        return ticket.error is None

    def _gather(self, batch: list[Ticket]) -> None:
        """Before a commit: wait up to `group_wait_us` for the rows of expected requests, then
        add every queued ticket that fits in `max_rows` to `batch`. A lone request (nothing
        expected) never waits."""
        if self._group_wait <= 0 or not self._expected:
            return
        with self._lock:
            deadline = time.monotonic() + self._group_wait
            self._gathering = True
            try:
                while self._expected > 0:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
            finally:
                self._gathering = False
            rows = sum(t.size for t in batch)
            while self._pending and rows + self._pending[0].size <= self._max_rows:
                nxt = self._pending.pop(0)
                batch.append(nxt)
                rows += nxt.size

    @property
    def expected(self) -> int:
        """Requests announced by `expect` whose rows have not come yet."""
        return self._expected

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
                    not batch or rows + self._pending[0].size <= self._max_rows
                ):
                    nxt = self._pending.pop(0)
                    batch.append(nxt)
                    rows += nxt.size
            # Hand the next group to its first request so this one can answer now.
            batch[0].batch = batch
            batch[0].done()
            return

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, rows = [first], first.size
            while rows < self._max_rows:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._commit(batch)
                    return
                batch.append(nxt)
                rows += nxt.size
            self._commit(batch)

    def _commit(self, batch: list[Ticket]) -> None:
        rows = [r for t in batch for r in t.rows]
        batches = [b for t in batch for b in t.batches]
        error = None
        for attempt in range(3):
            try:
                if self._store is None:
                    self._store = self._factory()
                self._store.write(rows, batches)
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
            self._on_commit(sum(t.size for t in batch))
        for t in batch:
            t.done(error)


def _drop(store: Store | sqlite3.Connection | None) -> None:
    """Close a store or connection that may be broken; returns None to clear the reference."""
    if store is not None:
        try:
            store.close()
        except Exception:  # the connection is already broken; nothing else to release
            log.debug("closing a broken prediction store failed", exc_info=True)
    return None
