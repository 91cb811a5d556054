"""Adaptive micro-batching: concurrent requests in one worker share one forward pass.

In: `submit(columns, n_rows)` from request threads. Out: each caller's own slice of the
predictions. A leader/follower scheme: the first caller runs at once (a lone request is never
delayed); callers that arrive while a pass runs queue up and the next leader scores all of
them (up to `max_batch` rows) in one call. When other requests are known to be on their way
(in flight but not yet queued) the leader waits at most `max_wait_us` for them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]


class _Job:
    __slots__ = ("columns", "n", "event", "result", "error", "batch")

    def __init__(self, columns: dict[str, np.ndarray], n: int) -> None:
        self.columns = columns
        self.n = n
        self.event = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None
        self.batch: list[_Job] | None = None


class MicroBatcher:
    """Combine concurrent `predict` calls into one; results are identical to unbatched calls."""

    def __init__(self, predict: Predict, max_batch: int = 256, max_wait_us: int = 500) -> None:
        self._predict = predict
        self._max_batch = max(1, max_batch)
        self._max_wait = max(0, max_wait_us) / 1e6
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[_Job] = []
        self._busy = False
        self._inflight = 0
        self.batches = 0
        self.rows = 0

    def enter(self) -> None:
        """Note a request that will call `submit` soon (lets the leader wait for it)."""
        with self._cond:
            self._inflight += 1

    def leave(self) -> None:
        """Undo `enter` once the request is done."""
        with self._cond:
            self._inflight -= 1

    def submit(self, columns: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Score `n` rows, possibly together with other threads' rows.

        Returns:
            The `n` predictions for these rows.
        """
        if n >= self._max_batch:
            return self._predict(columns)
        job = _Job(columns, n)
        with self._cond:
            if self._busy:
                self._pending.append(job)
                self._cond.notify_all()
            else:
                self._busy = True
                job.batch = [job]
        if job.batch is None:
            job.event.wait()
        if job.batch is not None:
            self._lead(job.batch)
        if job.error is not None:
            raise job.error
        return job.result

    def _lead(self, batch: list[_Job]) -> None:
        batch = self._gather(batch)
        self._run(batch)
        with self._cond:
            if not self._pending:
                self._busy = False
                return
            nxt, rows = [], 0
            while self._pending and rows + self._pending[0].n <= self._max_batch:
                job = self._pending.pop(0)
                nxt.append(job)
                rows += job.n
            if not nxt:
                nxt.append(self._pending.pop(0))
        nxt[0].batch = nxt
        nxt[0].event.set()

    def _gather(self, batch: list[_Job]) -> list[_Job]:
        if self._max_wait <= 0:
            return batch
        deadline = time.perf_counter() + self._max_wait
        with self._cond:
            while True:
                rows = sum(j.n for j in batch) + sum(j.n for j in self._pending)
                waiting_for = self._inflight - len(batch) - len(self._pending)
                left = deadline - time.perf_counter()
                if waiting_for <= 0 or rows >= self._max_batch or left <= 0:
                    break
                self._cond.wait(left)
            while self._pending and sum(j.n for j in batch) + self._pending[0].n <= self._max_batch:
                batch.append(self._pending.pop(0))
        return batch

    def _run(self, batch: list[_Job]) -> None:
        try:
            if len(batch) == 1:
                batch[0].result = np.asarray(self._predict(batch[0].columns))
            else:
                names = batch[0].columns.keys()
                merged = {k: np.concatenate([j.columns[k] for j in batch]) for k in names}
                preds = np.asarray(self._predict(merged))
                start = 0
                for j in batch:
                    j.result = preds[start : start + j.n]
                    start += j.n
            self.batches += 1
            self.rows += sum(j.n for j in batch)
        except BaseException as exc:  # delivered to every caller of the batch
            for j in batch:
                j.error = exc
        for j in batch[1:]:
            j.event.set()
