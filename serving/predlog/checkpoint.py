"""The SQLite WAL checkpointer: a thread that keeps the log's WAL short, off the request path.

In: the path of a SQLite prediction log whose writers set `wal_autocheckpoint=0`.
Out: PASSIVE checkpoints every `interval` seconds, a RESTART past `restart_pages` frames,
counters of both (`checkpoints`, `restarts`, `busy_restarts`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

log = logging.getLogger(__name__)

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
                conn = _close(conn)
        _close(conn)

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


def _close(conn: sqlite3.Connection | None) -> None:
    """Close a connection that may be broken; returns None to clear the reference."""
    if conn is not None:
        try:
            conn.close()
        except sqlite3.Error:  # already broken: nothing else to release
            log.debug("closing a broken checkpoint connection failed", exc_info=True)
    return None
