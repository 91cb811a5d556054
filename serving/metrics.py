"""Prometheus metrics of the serving stage (names per Contract 3), multiprocess-safe.

In: calls from the app (requests, scores, model swaps, log commits, out-of-range rows) and
from the prediction cache (hits and misses).
Out: `render(reports_dir)` -> the `/metrics` text: all workers' series when the launcher set
`PROMETHEUS_MULTIPROC_DIR` (prometheus multiprocess mode), this process's otherwise, followed
by `<reports dir>/drift.prom` and `performance.prom` when the monitoring jobs have written them.
Created lazily by `get_metrics()`: importing this module creates nothing.
"""

from __future__ import annotations

import glob
import os
import re
import threading
from pathlib import Path

import numpy as np

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(x, 2) for x in np.linspace(0.05, 1.0, 20))
DELTA_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# Prometheus text files of the monitoring jobs (drift, live performance), appended to /metrics.
MONITORING_FILES = ("drift.prom", "performance.prom")


class Metrics:
    """The metric objects plus cached label children for the hot path."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.requests = Counter(
            "mlcycle_requests_total",
            "HTTP requests served.",
            ["route", "method", "status", "model_version"],
        )
        self.latency = Histogram(
            "mlcycle_request_duration_seconds",
            "Request latency in seconds.",
            ["route", "model_version"],
            buckets=LATENCY_BUCKETS,
        )
        self.score = Histogram(
            "mlcycle_prediction_score",
            "Predicted probabilities.",
            ["model_version"],
            buckets=SCORE_BUCKETS,
        )
        self.model_info = Gauge(
            "mlcycle_model_info",
            "The model version being served (1).",
            ["model_name", "model_version", "run_id"],
            multiprocess_mode="livemax",
        )
        self.model_ready = Gauge(
            "mlcycle_model_ready", "1 once a model is loaded.", multiprocess_mode="livemin"
        )
        self.load_failures = Counter(
            "mlcycle_model_load_failures", "Model versions that failed to load.", ["model_version"]
        )
        self.model_refused = Counter(
            "mlcycle_model_refused",
            "Versions refused before loading: unsigned, or changed after signing.",
            ["model_version", "reason"],
        )
        self.queue_depth = Gauge(
            "mlcycle_prediction_log_queue_depth",
            "Prediction-log requests waiting for the writer.",
            multiprocess_mode="livesum",
        )
        self.log_rows = Counter("mlcycle_prediction_log_rows", "Prediction-log rows committed.")
        self.log_failures = Counter(
            "mlcycle_prediction_log_write_failures", "Failed prediction-log group commits."
        )
        self.log_commit_seconds = Histogram(
            "mlcycle_prediction_log_commit_seconds",
            "Prediction-log group commit latency in seconds (successful commits).",
            buckets=LATENCY_BUCKETS,
        )
        self.log_withdrawn = Counter(
            "mlcycle_prediction_log_withdrawn",
            "Requests that gave up waiting for a prediction-log commit (answered 503, not stored).",
        )
        self.log_unavailable = Gauge(
            "mlcycle_prediction_log_store_unavailable",
            "1 while a worker's prediction-log store refuses writes.",
            multiprocess_mode="livemax",
        )
        self.cache_hits = Counter("mlcycle_cache_hits", "Prediction cache hits.")
        self.cache_misses = Counter("mlcycle_cache_misses", "Prediction cache misses.")
        self.out_of_range = Counter(
            "mlcycle_out_of_range_rows",
            "Request rows outside the training reference (range with margin, or an unseen "
            "category), per column; flagged and refused rows alike.",
            ["column"],
        )
        self.shadow_rows = Counter(
            "mlcycle_shadow_rows",
            "Rows scored in shadow by the candidate version (MLCYCLE_SHADOW).",
            ["shadow_version"],
        )
        self.shadow_flips = Counter(
            "mlcycle_shadow_decision_flips",
            "Shadow rows whose decision (probability >= threshold) differs from production's.",
            ["shadow_version"],
        )
        self.shadow_delta = Histogram(
            "mlcycle_shadow_abs_delta",
            "|shadow - production| probability per shadow row.",
            ["shadow_version"],
            buckets=DELTA_BUCKETS,
        )
        self.shadow_dropped = Counter(
            "mlcycle_shadow_dropped",
            "Requests not scored in shadow because its queue was full (production unaffected).",
        )
        self.shadow_errors = Counter(
            "mlcycle_shadow_errors",
            "Shadow failures (never seen by clients), by stage: load, score, write.",
            ["stage"],
        )
        self.shadow_info = Gauge(
            "mlcycle_shadow_info",
            "The candidate version scoring in shadow (1).",
            ["model_name", "shadow_version"],
            multiprocess_mode="livemax",
        )
        self._children: dict[tuple, object] = {}

    def observe_request(
        self, route: str, method: str, status: int, version: str, seconds: float
    ) -> None:
        """Count one request and its latency (label children cached per combination)."""
        key = (route, method, status, version)
        pair = self._children.get(key)
        if pair is None:
            pair = (
                self.requests.labels(route, method, str(status), version),
                self.latency.labels(route, version),
            )
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def observe_scores(self, version: str, scores: np.ndarray) -> None:
        """Add predicted probabilities to the score histogram (vectorised for big batches)."""
        child = self._children.get(("score", version))
        if child is None:
            child = self._children[("score", version)] = self.score.labels(version)
        if len(scores) <= 8:
            for s in scores.tolist():
                child.observe(s)
            return
        _observe_many(child, SCORE_BUCKETS, scores)

    def observe_cache(self, hits: int, misses: int) -> None:
        """Count one request's prediction-cache lookups (rows found, rows not found)."""
        if hits:
            self.cache_hits.inc(hits)
        if misses:
            self.cache_misses.inc(misses)

    def observe_out_of_range(self, counts: dict[str, int]) -> None:
        """Count one request's out-of-range rows per column."""
        for column, rows in counts.items():
            child = self._children.get(("range", column))
            if child is None:
                child = self._children[("range", column)] = self.out_of_range.labels(column)
            child.inc(rows)

    def observe_shadow(
        self, version: str, shadow: np.ndarray, production: np.ndarray, threshold: float
    ) -> None:
        """Count one request's shadow rows, their decision flips and |Δp|."""
        delta = np.abs(shadow - production)
        flips = int(np.count_nonzero((shadow >= threshold) != (production >= threshold)))
        self.shadow_rows.labels(version).inc(len(shadow))
        if flips:
            self.shadow_flips.labels(version).inc(flips)
        _observe_many(self.shadow_delta.labels(version), DELTA_BUCKETS, delta)

    def set_model(
        self, name: str, version: str, run_id: str, previous: tuple[str, str, str] | None
    ) -> None:
        """Point `mlcycle_model_info` at the new version (the old one drops to 0)."""
        if previous is not None:
            self.model_info.labels(*previous).set(0)
        self.model_info.labels(name, version, run_id).set(1)
        self.model_ready.set(1)


def _observe_many(child, buckets: tuple, values: np.ndarray) -> None:
    """Observe many values in a histogram child at once (one increment per bucket)."""
    counts = np.bincount(np.searchsorted(buckets, values, side="left"), minlength=len(buckets) + 1)
    for i, c in enumerate(counts.tolist()):
        if c:
            child._buckets[i].inc(c)
    child._sum.inc(float(values.sum()))


_lock = threading.Lock()
_metrics: Metrics | None = None


def get_metrics() -> Metrics:
    """The process's `Metrics`, created on first use."""
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = Metrics()
        return _metrics


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_workers() -> None:
    """Forget live gauges of worker processes that no longer exist (e.g. after a respawn)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    from prometheus_client import multiprocess

    pids = set()
    for f in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        m = re.search(r"_(\d+)\.db$", f)
        if m:
            pids.add(int(m.group(1)))
    for pid in pids:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, path)


def render(reports_dir: str | None) -> tuple[bytes, str]:
    """The `/metrics` payload and its content type.

    Args:
        reports_dir: folder that may hold the monitoring jobs' `drift.prom` and
            `performance.prom`.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    get_metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        mark_dead_workers()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    for name in MONITORING_FILES if reports_dir else ():
        try:
            extra = (Path(reports_dir) / name).read_bytes()
        except OSError:
            extra = b""
        if extra:
            body += extra if extra.endswith(b"\n") else extra + b"\n"
    return body, CONTENT_TYPE_LATEST
