"""The prediction-log writer: group commit that answers within its bounds, whatever the store does.

In: `PredictionLog.write(rows, batches)` from request threads (rows from
`mlcycle.core.prediction_log.build_rows`, large requests as one `build_batch`), after an optional
`expect()` when the request started.
Out: the rows committed in one transaction with every other request's queued beside them
(`serving.combiner.Combiner`: the first waiting request commits the group), or `LogUnavailable`
(a 503: this request's rows were not stored); `available` and `stalled_for()` for the
readiness and liveness probes; callbacks for the metrics.

`write` returns only once its rows are committed, so a crash (even `kill -9`) loses no
acknowledged row, and it raises only when they are not stored: a request that waited
`wait_s` while queued is withdrawn before any group takes it; a group whose commit fails
(store locked past its timeout, full disk, database down) fails all its requests. After a
failure the log is `available = False`: requests are refused at once (no thread waits on a
store known to be down) while a probe thread reopens the store and commits a heartbeat row
every `probe_s`; the first that succeeds makes it available again, with or without traffic.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from serving.combiner import Combiner, Expected, Slot, Stuck, Withdrawn
from serving.errors import Unavailable
from serving.predlog.stores import Store

log = logging.getLogger(__name__)


class LogUnavailable(Unavailable):
    """The request's rows were not stored (a 503 the client may retry)."""


@dataclass
class LogHooks:
    """What the writer reports, for metrics; each may be None."""

    committed: Callable[[int, float], None] | None = None  # rows, seconds
    failed: Callable[[], None] | None = None
    withdrawn: Callable[[], None] | None = None
    availability: Callable[[bool], None] | None = None


class PredictionLog:
    """Group commit of prediction-log rows with bounded waits and self-healing.

    Args:
        store_factory: opens the store (called again after a failure).
        max_rows: the most rows in one commit.
        group_wait_us: how long a committing request waits for `expect`ed ones beside it.
        wait_s: how long a request waits for a group to take its rows before it gives up.
        probe_s: how often a failed store is probed until it is back.
        hooks: metric callbacks.
    """

    def __init__(
        self,
        store_factory: Callable[[], Store],
        max_rows: int = 2048,
        group_wait_us: int = 0,
        wait_s: float = 5.0,
        probe_s: float = 0.5,
        hooks: LogHooks | None = None,
    ) -> None:
        self._factory = store_factory
        self._wait_s = wait_s
        self._probe_s = probe_s
        self._hooks = hooks or LogHooks()
        self._combiner = Combiner(self._commit, max_rows, max(0, group_wait_us) / 1e6)
        self._store: Store | None = None
        self._store_lock = threading.Lock()  # the committing leader, the probe, close
        self._closed = False
        self._prober: threading.Thread | None = None
        self.writer = f"{socket.gethostname()}:{os.getpid()}"
        self.available = True
        self.last_error: str | None = None
        self.unavailable_since: float | None = None

    def expect(self) -> Expected:
        """Announce a request whose rows will come to `write` (or that will `cancel`)."""
        return self._combiner.expect()

    def write(
        self, rows: list[tuple], batches: list[tuple] = (), expected: Expected | None = None
    ) -> None:
        """Commit `rows` and `batches` with whatever else is queued.

        Raises:
            LogUnavailable: the rows were not stored (queued past `wait_s`, or the commit
                failed); the message says which.
        """
        if not self.available:
            raise LogUnavailable(
                f"prediction log unavailable ({self.last_error}); nothing was recorded, retry"
            )
        size = len(rows) + sum(b[5] for b in batches)
        try:
            self._combiner.submit((rows, list(batches)), max(1, size), self._wait_s, expected)
        except Withdrawn:
            self._report(self._hooks.withdrawn)
            raise LogUnavailable(
                f"prediction log busy: not written within {self._wait_s:g} s; nothing was "
                "recorded, retry"
            ) from None
        except Stuck:
            raise  # a store that broke its own time limits: an internal error (500)
        except Exception as exc:
            raise LogUnavailable(
                f"prediction log unavailable ({type(exc).__name__}); nothing was recorded, retry"
            ) from None

    def _commit(self, group: list[Slot]) -> None:
        rows = [r for s in group for r in s.item[0]]
        batches = [b for s in group for b in s.item[1]]
        started = time.perf_counter()
        with self._store_lock:
            if self._closed:
                raise LogUnavailable("prediction log closed: the server is stopping; retry")
            try:
                if self._store is None:
                    self._store = self._factory()
                self._store.write(rows, batches)
            except Exception as exc:
                log.warning("prediction log write of %d rows failed: %s", len(group), exc)
                self._store = _drop(self._store)
                self._report(self._hooks.failed)
                self._set_unavailable(exc)
                raise
        if not self.available:
            self._set_available()
        if self._hooks.committed:
            self._hooks.committed(sum(s.size for s in group), time.perf_counter() - started)

    def _set_unavailable(self, exc: BaseException) -> None:
        """(Store lock held.) Refuse writes until a probe gets one through."""
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.available:
            self.available = False
            self.unavailable_since = time.time()
            self._report(self._hooks.availability, False)
            log.error("prediction log unavailable: %s", self.last_error)
        if self._prober is None and not self._closed:
            self._prober = threading.Thread(target=self._probe_loop, name="predlog-probe")
            self._prober.daemon = True
            self._prober.start()

    def _set_available(self) -> None:
        if not self.available:
            log.warning(
                "prediction log available again after %.1f s",
                time.time() - (self.unavailable_since or time.time()),
            )
        self.available = True
        self.last_error = None
        self.unavailable_since = None
        self._report(self._hooks.availability, True)

    def _probe_loop(self) -> None:
        """Commit a heartbeat every `probe_s` until the store takes one (or `close`).

        The thread stands down under the store lock, which a failing commit also holds when
        it asks for a probe: so a failure is never left without one.
        """
        while True:
            time.sleep(self._probe_s)
            with self._store_lock:
                if self.available or self._closed:
                    self._prober = None
                    return
                try:
                    if self._store is None:
                        self._store = self._factory()
                    self._store.probe(self.writer)
                except Exception as exc:
                    self._store = _drop(self._store)
                    self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                    continue
                self._set_available()
                self._prober = None
                return

    @staticmethod
    def _report(hook, *args) -> None:
        if hook is not None:
            hook(*args)

    def stalled_for(self) -> float:
        """Seconds requests have waited with no commit finishing (0 when none waits)."""
        return self._combiner.stalled_for()

    @property
    def expected(self) -> int:
        """Requests announced by `expect` whose rows have not come (nor been cancelled)."""
        return self._combiner.expected

    def depth(self) -> int:
        """Requests waiting for a commit now."""
        return self._combiner.waiting

    def health(self) -> dict:
        """The writer's state for the health routes."""
        return {
            "available": self.available,
            "error": self.last_error,
            "unavailable_since": self.unavailable_since,
            "waiting": self._combiner.waiting,
            "stalled_s": round(self.stalled_for(), 3),
        }

    def close(self, timeout: float = 5.0) -> None:
        """Let requests already writing (or announced) finish, then release the store.

        Waits at most `timeout` seconds for them. A write after `close` is refused (503) rather
        than reopening the store: nothing would close it again.
        """
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        while (self._combiner.waiting or self._combiner.expected) and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._store_lock:
            self._closed = True
            self._store = _drop(self._store)


def _drop(store: Store | None) -> None:
    """Close a store that may be broken; returns None to clear the reference."""
    if store is not None:
        try:
            store.close()
        except Exception:  # the connection is already broken; nothing else to release
            log.debug("closing a broken prediction store failed", exc_info=True)
    return None
