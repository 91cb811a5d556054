"""Bounded client traffic for fault tests, and the prediction log's side of the invariant.

In: a server URL, a JSON body, a number of client threads. Out: every answer (request id,
status, when sent, when answered, error text) of one-row requests that each carry a unique
`X-Request-ID`, sent until `stop()` or a deadline; and `logged_ids(db)`: the request ids in a
SQLite prediction log, so a test can state the invariant "answered 200 == stored" after a fault.
Imported as `tests.traffic`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from mlcycle.core.prediction_log import BATCHES, ROWS


@dataclass(frozen=True)
class Answer:
    """One request's fate: `status` 0 when no HTTP answer came; `error` says why (the body of
    an answer other than 200)."""

    rid: str
    status: int
    sent: float
    done: float
    error: str = ""
    retry_after: str | None = None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


class Traffic:
    """`threads` clients posting `body` to `url` in a loop, each request with a fresh id.

    Args:
        url: the full URL to post to.
        body: the JSON body.
        threads: client threads.
        timeout: the client's own limit per request (longer than any server-side bound).
        max_seconds: a hard stop even if `stop()` is never called.
    """

    def __init__(
        self, url: str, body: dict, threads: int = 4, timeout: float = 20.0, max_seconds=120.0
    ) -> None:
        self.url, self.body, self.timeout = url, body, timeout
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop sending and wait for the clients' last answers."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _client(self) -> None:
        session = requests.Session()
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            rid = uuid.uuid4().hex
            sent = time.monotonic()
            try:
                r = session.post(
                    self.url, json=self.body, timeout=self.timeout, headers={"X-Request-ID": rid}
                )
                why = "" if r.status_code == 200 else r.text[:300]
                answer = Answer(rid, r.status_code, sent, time.monotonic(), why,
                                r.headers.get("Retry-After"))  # fmt: skip
            except requests.RequestException as exc:
                answer = Answer(rid, 0, sent, time.monotonic(), type(exc).__name__)
                session = requests.Session()
                time.sleep(0.05)  # a refused connection: do not spin
            with self._lock:
                self.answers.append(answer)

    def snapshot(self) -> list[Answer]:
        with self._lock:
            return list(self.answers)

    def since(self, t: float) -> list[Answer]:
        """Answers to requests sent at or after monotonic time `t`."""
        return [a for a in self.snapshot() if a.sent >= t]

    def ok_ids(self) -> set[str]:
        return {a.rid for a in self.snapshot() if a.status == 200}

    def summary(self, fault_end: float | None = None) -> str:
        """One line of figures for the reliability table (`pytest -s` shows it)."""
        answers = self.snapshot()
        codes: dict[int, int] = {}
        for a in answers:
            codes[a.status] = codes.get(a.status, 0) + 1
        refused = sorted(a.seconds for a in answers if a.status == 503)
        line = f"answers {dict(sorted(codes.items()))}"
        if refused:
            line += f", 503 wait median {refused[len(refused) // 2]:.2f} s max {refused[-1]:.2f} s"
        if fault_end is not None:
            first = [a.done for a in answers if a.status == 200 and a.sent > fault_end]
            if first:
                line += f", first 200 {min(first) - fault_end:.2f} s after the fault ended"
        return line

    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until `predicate(answers)` holds (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.05)
        return False


def logged_ids(db: Path) -> set[str]:
    """Request ids in a SQLite prediction log (both tables)."""
    with sqlite3.connect(db) as conn:
        ids = {r[0] for r in conn.execute(f"SELECT request_id FROM {ROWS}")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if BATCHES in tables:
            ids |= {r[0] for r in conn.execute(f"SELECT request_id FROM {BATCHES}")}
    return ids
