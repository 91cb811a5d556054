"""Shadow scoring: a candidate version scores live rows beside production, off the response path.

In: with `MLCYCLE_SHADOW=true`, the registry's candidate (the `MLCYCLE_SHADOW_ALIAS` alias,
default `challenger`; without it the newest version in stage Staging), followed like the
served version (`serving.watcher.ModelWatcher` with `mlflow_loader`: when the alias moves,
the shadow model changes); from each answered request, after its answer is built, its
request id, validated rows and production's probabilities (`ShadowScorer.offer`: sampled by
`MLCYCLE_SHADOW_SAMPLE`, then a non-blocking put into a bounded queue).
Out: one background thread per worker scores the queued rows with the candidate and writes
them to the log's `shadow_predictions` table (Contract 2), in transactions of its own, never
with the production rows; Prometheus `mlcycle_shadow_*` metrics (rows, decision flips, |Δp|,
drops, errors). A full queue drops the request (counted); a failing candidate is logged and
counted; neither ever reaches a client. The candidate is skipped while it is the version
production serves.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable

import numpy as np

from mlcycle.core import prediction_log as contract
from serving.model import ModelService
from serving.settings import Settings
from serving.watcher import ModelWatcher, ServingState, skip_unchanged

log = logging.getLogger(__name__)

QUEUE_REQUESTS = 256  # requests waiting for the shadow thread; past it they are dropped
WRITE_ROWS = 2048  # rows the thread gathers into one transaction at most
GATHER_S = 0.05  # after the first queued request, how long the thread waits for more
Writer = Callable[[list[tuple]], None]


class ShadowScorer:
    """The candidate model, its watcher and the thread that scores queued requests.

    Args:
        settings: serving settings (threshold, sample rate, poll interval).
        metrics: the worker's `serving.metrics.Metrics`.
        loader: loads a version (the watcher's loader).
        resolver: `resolve(seen) -> (version, seen)`: the candidate version, or None.
        write: stores `shadow_predictions` rows (`SHADOW_COLUMNS` order); raises on failure.
        queue_size: requests that may wait; more are dropped.
        sample: draws a number in [0, 1) per request (tests pass their own).
    """

    def __init__(
        self,
        settings: Settings,
        metrics,
        loader: Callable[[str], ModelService],
        resolver,
        write: Writer,
        queue_size: int = QUEUE_REQUESTS,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = ServingState()
        self.rate = settings.shadow_sample
        self.threshold = settings.threshold
        self._sample = sample
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self.watcher = ModelWatcher(
            self.state,
            settings,
            loader,
            resolver,
            self._on_swap,
            self._on_failure,
            role="shadowing",
        )
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)

    def start(self) -> ShadowScorer:
        """Follow the candidate and start scoring in the background."""
        self.watcher.start()
        self._thread.start()
        return self

    def _on_swap(self, new: ModelService, old: ModelService | None) -> None:
        if old is not None:
            self.metrics.shadow_info.labels(old.name, old.version).set(0)
        self.metrics.shadow_info.labels(new.name, new.version).set(1)
        log.info("shadow candidate is now %s", new.label)

    def _on_failure(self, version: str, exc: Exception) -> None:
        self.metrics.shadow_errors.labels("load").inc()

    @property
    def candidate(self) -> ModelService | None:
        """The candidate scoring in shadow now (None: none named, or not loaded yet)."""
        return self.state.service if self.state.target_version is not None else None

    def offer(
        self, request_id: str, production: ModelService, arrays: dict, preds: np.ndarray
    ) -> bool:
        """Queue one answered request for shadow scoring; never blocks, never raises.

        Returns:
            True when queued (sampled in, a candidate loaded, room in the queue).
        """
        if self.rate < 1.0 and self._sample() >= self.rate:
            return False
        candidate = self.candidate
        if candidate is None or candidate.version == production.version:
            return False
        item = (time.time(), request_id, production.name, production.version, arrays, preds)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.metrics.shadow_dropped.inc()
            return False
        return True

    def pending(self) -> int:
        """Requests waiting for the shadow thread."""
        return self._queue.qsize()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            # Let a few more requests arrive: one forward pass and one transaction for all of
            # them take the GIL and the log's write lock far less often than one per request.
            self._stop.wait(GATHER_S)
            items, size = [first], len(first[5])
            while size < WRITE_ROWS:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
                size += len(items[-1][5])
            self._score_and_write(items)

    def _score_and_write(self, items: list[tuple]) -> None:
        """Score the gathered requests in one forward pass (one by one if that fails, so one
        bad request costs only its own rows), then write all their rows in one transaction."""
        candidate = self.candidate
        items = [it for it in items if candidate is not None and it[3] != candidate.version]
        if not items:
            return
        try:
            shadow = self._predict(candidate, [it[4] for it in items])
        except Exception:
            shadow = None
        rows: list[tuple] = []
        scored: list[tuple[np.ndarray, np.ndarray]] = []
        start = 0
        for item in items:
            n = len(item[5])
            try:
                if shadow is None:
                    part = self._predict(candidate, [item[4]])
                else:
                    part = shadow[start : start + n]
                rows += self._rows(candidate.version, item, part)
                scored.append((part, item[5]))
            except Exception:  # a broken candidate must never reach a client: count, go on
                self.metrics.shadow_errors.labels("score").inc()
                log.exception("shadow scoring of request %s failed", item[1])
            start += n
        if not rows:
            return
        self.metrics.observe_shadow(
            candidate.version,
            np.concatenate([a for a, _ in scored]),
            np.concatenate([b for _, b in scored]),
            self.threshold,
        )
        try:
            self._write(rows)
        except Exception:
            self.metrics.shadow_errors.labels("write").inc()
            log.exception("writing %d shadow rows failed; they are dropped", len(rows))

    @staticmethod
    def _predict(candidate: ModelService, requests: list[dict]) -> np.ndarray:
        """The candidate's probabilities for the rows of several requests, in order."""
        if len(requests) == 1:
            columns = requests[0]
        else:
            columns = {name: _concat([r[name] for r in requests]) for name in requests[0]}
        return np.asarray(candidate.predict_arrays(columns), dtype=np.float64)

    def _rows(self, version: str, item: tuple, shadow: np.ndarray) -> list[tuple]:
        ts, request_id, name, production_version, _, production = item
        if shadow.shape != production.shape:
            raise ValueError(f"{len(shadow)} shadow predictions for {len(production)} rows")
        return [
            (ts, request_id, i, name, version, production_version, s, p)
            for i, (s, p) in enumerate(zip(shadow.tolist(), production.tolist(), strict=True))
        ]

    def close(self, timeout: float = 2.0) -> None:
        """Stop following and scoring (what is still queued is dropped)."""
        self.watcher.stop()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)


def _concat(parts: list) -> np.ndarray:
    """One column of several requests (a `pandas.Categorical` part as plain objects)."""
    if any(hasattr(p, "codes") for p in parts):
        parts = [np.asarray(p, dtype=object) for p in parts]
    return np.concatenate(parts)


class ShadowLog:
    """Writes `shadow_predictions` rows to the prediction log, one transaction per call, on a
    connection of its own (the production log's group commit never waits for it): sqlite3
    directly for a SQLite file (as `serving.predlog.stores.SqliteStore`), SQLAlchemy otherwise."""

    def __init__(self, url: str, timeout_s: float = 2.0, synchronous: str = "NORMAL") -> None:
        self._url, self._timeout, self._synchronous = url, timeout_s, synchronous
        self._sqlite = None
        self._engine = None
        self._table = None

    def _open(self) -> None:
        if self._url.startswith("sqlite:///"):
            import sqlite3

            conn = sqlite3.connect(
                self._url[len("sqlite:///") :],
                timeout=self._timeout,
                check_same_thread=False,
                isolation_level=None,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # As the production writer's (`MLCYCLE_PREDICTION_LOG_SYNC`): FULL would fsync every
            # shadow commit while holding the write lock the production commits wait for.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            for ddl in contract.sqlite_ddl():
                conn.execute(ddl)
            self._sqlite = conn
            return
        import sqlalchemy as sa

        from serving.predlog.stores import create_engine, create_tables

        self._engine = create_engine(self._url, self._timeout)
        create_tables(self._engine)
        self._table = contract.tables(sa.MetaData())[4]

    def __call__(self, rows: list[tuple]) -> None:
        if self._sqlite is None and self._engine is None:
            self._open()
        if self._sqlite is not None:
            conn = self._sqlite
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_INSERT, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return
        records = [dict(zip(contract.SHADOW_COLUMNS, r, strict=True)) for r in rows]
        with self._engine.begin() as conn:
            conn.execute(self._table.insert(), records)

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._engine is not None:
            self._engine.dispose()


_INSERT = contract.insert_sql(contract.SHADOW)


def candidate_resolver(settings: Settings):
    """`resolve(seen) -> (version, seen)`: the version under `MLCYCLE_SHADOW_ALIAS`, else the
    newest version in stage Staging, else None."""
    from mlcycle.core import config

    config.configure_mlflow()
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    name, alias = settings.model_name, settings.shadow_alias

    def resolve(seen):
        try:
            return str(client.get_model_version_by_alias(name, alias).version), seen
        except MlflowException:  # no such alias: fall back to Staging
            pass
        escaped = name.replace("'", "\\'")
        staging = [
            int(v.version)
            for v in client.search_model_versions(f"name='{escaped}'")
            if v.current_stage == "Staging"
        ]
        return (str(max(staging)) if staging else None), seen

    return skip_unchanged(resolve)
