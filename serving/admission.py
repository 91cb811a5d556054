"""Admission control of one worker: a bound on requests in flight, a gate for large bodies.

In: every prediction request, before its body is parsed (`Admission.enter`), and each large
body before it is scored (`Admission.large`). Out: the request goes ahead, or `Unavailable`
(503 with `Retry-After`) at once: past `max_in_flight` requests, or when a large body is
already being scored and `large_queue` more wait for their turn. Requests are refused
instead of queued, so the ones admitted keep their latency and memory stays bounded (one
large body parses into a few hundred MB of Python objects; the GIL scores one at a time anyway).
Across the worker processes of one server, at most `large_slots` large bodies are scored at
once (`flock` on slot files in the launcher's run folder), so the cores left over keep
answering small requests and refusals quickly.
Also `drain`: reading (and dropping) the body of a refused request, so the client reads the
answer instead of a reset connection, capped at `drain_bytes`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from serving.errors import Unavailable


class Admission:
    """Counts this worker's requests in flight and its large bodies.

    Args:
        max_in_flight: prediction requests inside this worker at once; more are refused.
        large_queue: large bodies that may wait while one is scored; more are refused.
        large_wait_s: the longest a large body waits for its turn before it is refused.
        slots: server-wide slots for large bodies (None: this worker's lock alone).
    """

    def __init__(
        self,
        max_in_flight: int,
        large_queue: int = 0,
        large_wait_s: float = 2.0,
        slots: ServerSlots | None = None,
    ):
        self._max = max(1, max_in_flight)
        self._large_queue = max(0, large_queue)
        self._large_wait = large_wait_s
        self._slots = slots
        self._lock = threading.Lock()
        self._large_lock = threading.Lock()
        self.in_flight = 0
        self._large_waiting = 0
        self.refused = 0

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        """Hold one of `max_in_flight` places for the request, or raise `Unavailable`."""
        with self._lock:
            if self.in_flight >= self._max:
                self.refused += 1
                raise Unavailable(
                    f"server busy: {self._max} requests in flight in this worker "
                    "(MLCYCLE_MAX_IN_FLIGHT); retry"
                )
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    @contextlib.contextmanager
    def large(self) -> Iterator[None]:
        """Score one large body at a time: wait for the turn if few wait, else refuse."""
        with self._lock:
            if self._large_waiting >= self._large_queue and self._large_lock.locked():
                self.refused += 1
                raise Unavailable(
                    "server busy: a large request is being scored and "
                    f"{self._large_waiting} wait in this worker; retry"
                )
            self._large_waiting += 1
        deadline = time.monotonic() + self._large_wait
        slot = None
        try:
            got = self._large_lock.acquire(timeout=self._large_wait)
            if got and self._slots is not None:
                slot = self._slots.acquire(deadline)
                if slot is None:
                    self._large_lock.release()
                    got = False
        finally:
            with self._lock:
                self._large_waiting -= 1
        if not got:
            with self._lock:
                self.refused += 1
            raise Unavailable(f"server busy: no turn for a large request in {self._large_wait} s")
        try:
            yield
        finally:
            if slot is not None:
                self._slots.release(slot)
            self._large_lock.release()


class ServerSlots:
    """`n` slots shared by the worker processes of one server: `flock`ed files in `folder`."""

    POLL_S = 0.002

    def __init__(self, folder: Path, n: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._fds = [os.open(folder / f"large-{i}.lock", os.O_RDWR | os.O_CREAT) for i in range(n)]

    def acquire(self, deadline: float) -> int | None:
        """A slot's file descriptor, held until `release`; None if none was free in time."""
        while True:
            for fd in self._fds:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    continue
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.POLL_S)

    @staticmethod
    def release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def drain(stream, length: int | None, cap: int) -> bool:
    """Read and drop up to `cap` bytes of a body the server will not use.

    Returns:
        True when the whole body was read (the connection can be kept), False when more
        than `cap` bytes were announced (the answer should close the connection).
    """
    if length is None or length <= 0:
        return length is not None
    left = min(length, cap)
    while left > 0:
        chunk = stream.read(min(left, 4 << 20))
        if not chunk:
            break
        left -= len(chunk)
    return length <= cap
