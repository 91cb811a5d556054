"""Where the prediction log is written: a SQLite file, or any SQLAlchemy database.

In: a URL (`sqlite:///path`, `postgresql://...`, `postgresql+psycopg2://...`), a time limit.
Out: a `Store` whose `write(rows, batches)` inserts both in one transaction or raises within
about `timeout_s` (SQLite busy timeout; PostgreSQL `connect_timeout`, `statement_timeout` and
TCP timeouts), and whose `probe(writer)` commits the writer's heartbeat row: the cheapest
real write, used to tell when a store that failed is back. Tables per `mlcycle.core.prediction_log`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from mlcycle.core import prediction_log as contract
from mlcycle.core.logdb import engine_url
from serving.predlog.checkpoint import WAL_RESTART_PAGES, WalCheckpointer

log = logging.getLogger(__name__)

_INSERT_ROWS = contract.insert_sql(contract.ROWS)
_INSERT_BATCHES = contract.insert_sql(contract.BATCHES)
_INSERT_WRITER = contract.insert_sql(contract.WRITERS)


class Store:
    """Where rows go: `write` inserts rows and batches in one transaction, or raises."""

    def write(self, rows: list[tuple], batches: list[tuple] = ()) -> None:  # pragma: no cover
        raise NotImplementedError

    def probe(self, writer: str) -> None:  # pragma: no cover
        """Commit `writer`'s heartbeat row (`prediction_log_writers`), or raise."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections."""


class SqliteStore(Store):
    """A SQLite file in WAL mode; `synchronous=NORMAL` survives process crashes.

    With `checkpoint_s` set (the server's default), the WAL is checkpointed by a thread of its
    own (`WalCheckpointer`) rather than by whichever commit crosses SQLite's 1000-page mark, so
    no request waits for a checkpoint's copying and fsyncs. Commits are as durable either way.
    A write waits at most `timeout_s` for the write lock (another process's transaction).
    """

    def __init__(
        self,
        path: str,
        timeout_s: float = 2.0,
        synchronous: str = "NORMAL",
        checkpoint_s: float | None = None,
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL"):
            raise ValueError(f"synchronous must be OFF, NORMAL or FULL, not {synchronous!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout_s
        self._conn = sqlite3.connect(
            path, timeout=timeout_s, check_same_thread=False, isolation_level=None
        )
        self._checkpointer = None
        try:
            self._setup(synchronous.upper(), checkpoint_s)
            if checkpoint_s:
                self._checkpointer = WalCheckpointer(path, checkpoint_s, synchronous.upper())
        except BaseException:
            self._conn.close()
            raise

    def _setup(self, synchronous: str, checkpoint_s: float | None) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        for ddl in contract.sqlite_ddl():
            conn.execute(ddl)
        conn.execute("PRAGMA busy_timeout=0")  # `_begin` waits for the lock itself
        if checkpoint_s:
            page = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA journal_size_limit={WAL_RESTART_PAGES * page}")

    def write(self, rows: list[tuple], batches: list[tuple] = ()) -> None:
        self._transaction(lambda conn: _insert(conn, rows, batches))

    def probe(self, writer: str) -> None:
        self._transaction(lambda conn: conn.execute(_INSERT_WRITER, (writer, time.time())))

    def _transaction(self, work) -> None:
        conn = self._conn
        self._begin(conn)
        try:
            work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _begin(self, conn: sqlite3.Connection) -> None:
        # SQLite's own busy handler sleeps 1, 2, 5, 10... ms between tries; with several
        # worker processes committing small groups that costs more than the commits, so the
        # write lock is retried here every 100-200 microseconds instead, until `timeout_s`.
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


def _insert(conn: sqlite3.Connection, rows: list[tuple], batches: list[tuple]) -> None:
    if rows:
        conn.executemany(_INSERT_ROWS, rows)
    if batches:
        conn.executemany(_INSERT_BATCHES, batches)


class SqlAlchemyStore(Store):
    """Any SQLAlchemy URL (PostgreSQL in docker-compose); creates the tables if missing.

    On PostgreSQL every wait is bounded by about `timeout_s`: connecting (`connect_timeout`),
    each statement (`statement_timeout`), a lock (`lock_timeout`) and an unanswered socket
    (`tcp_user_timeout`, keepalives), so a dead or hung server fails a write instead of
    holding it.
    """

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        import sqlalchemy as sa

        self._engine = create_engine(url, timeout_s)
        self._rows, self._batches, self._writers, *_ = contract.tables(sa.MetaData())
        create_tables(self._engine)

    def write(self, rows: list[tuple], batches: list[tuple] = ()) -> None:
        with self._engine.begin() as conn:
            if rows:
                conn.execute(
                    self._rows.insert(),
                    [dict(zip(contract.ROW_COLUMNS, r, strict=True)) for r in rows],
                )
            if batches:
                conn.execute(
                    self._batches.insert(),
                    [dict(zip(contract.BATCH_COLUMNS, b, strict=True)) for b in batches],
                )

    def probe(self, writer: str) -> None:
        table = self._writers
        now = time.time()
        with self._engine.begin() as conn:
            done = conn.execute(table.update().where(table.c.writer == writer).values(ts=now))
            if done.rowcount == 0:
                conn.execute(table.insert().values(writer=writer, ts=now))

    def close(self) -> None:
        self._engine.dispose()


def create_engine(url: str, timeout_s: float = 2.0):
    """A SQLAlchemy engine on the log whose waits are bounded by about `timeout_s` (PostgreSQL:
    see `SqlAlchemyStore`; SQLite: the busy timeout)."""
    import sqlalchemy as sa

    parsed = engine_url(url)
    backend = parsed.get_backend_name()
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args=_connect_args(backend, timeout_s),
    )


def create_tables(engine, attempts: int = 3) -> None:
    """Create the log's tables and indexes if missing (`contract.create_schema`). Several
    replicas starting on a fresh database race to create them (PostgreSQL then refuses the
    loser's CREATE with a unique violation in its catalog): the loser looks again and finds
    them."""
    import sqlalchemy as sa

    for attempt in range(attempts):
        try:
            contract.create_schema(engine)
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _connect_args(backend: str, timeout_s: float) -> dict:
    """libpq's time limits (psycopg 2 and 3 take the same keywords); SQLite's busy timeout."""
    if backend == "sqlite":
        return {"timeout": timeout_s}
    if backend != "postgresql":
        return {}
    ms = max(1, int(timeout_s * 1000))
    return {
        "connect_timeout": max(1, round(timeout_s)),
        "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        "keepalives": 1,
        "keepalives_idle": max(1, round(timeout_s)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
    }


def open_store(
    url: str,
    synchronous: str = "NORMAL",
    checkpoint_s: float | None = None,
    timeout_s: float = 2.0,
) -> Store:
    """A `Store` for a URL: `sqlite:///path` uses sqlite3 directly, anything else SQLAlchemy.

    Args:
        url: SQLAlchemy-style URL (`postgresql://` and `postgresql+psycopg2://` both work).
        synchronous: SQLite `synchronous` pragma; NORMAL and OFF both survive a killed process
            (WAL), only FULL also survives power loss.
        checkpoint_s: SQLite only: checkpoint the WAL from a background thread this often
            (seconds); None or 0 leaves it to SQLite's automatic checkpoint inside commits.
        timeout_s: the longest a write may wait for a lock, a connection or a statement.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return SqliteStore(path, timeout_s, synchronous, checkpoint_s)
    return SqlAlchemyStore(url, timeout_s)
