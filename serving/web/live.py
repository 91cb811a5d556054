"""Live figures for the last hour from the server's own Prometheus metrics.

In: the `/metrics` exposition text of this server (`serving.metrics.render`: with several
workers that is the multiprocess collector's sum over all workers, so any worker sees the
whole server). Out: `LiveSampler.summary()` -> request rate, error rates, p50/p99 latency, the
score distribution and a per-interval series over the last hour.

Each worker keeps a ring buffer of snapshots of those server-wide totals, taken every
`interval` seconds by a daemon thread started on the first page view; figures are differences
between the newest snapshot and the oldest one inside the hour (before the second snapshot the
difference is against zero, i.e. since the server started). Because every snapshot is already a
sum over workers, it does not matter which worker answers the browser's poll.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

WINDOW_SECONDS = 3600.0
# Routes that are not the prediction API (pages, scrapes, probes) are left out of the rates.
NON_API_PREFIXES = ("/ui", "/static", "/metrics", "/health", "/ping", "/v2/health", "/favicon")


@dataclass
class Snapshot:
    """Server-wide totals at one moment."""

    t: float
    requests: float = 0.0
    client_errors: float = 0.0
    server_errors: float = 0.0
    latency: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    scores: dict[float, float] = field(default_factory=dict)  # le -> cumulative count


def _is_api(route: str) -> bool:
    return not any(route.startswith(p) for p in NON_API_PREFIXES)


def _le(labels: dict) -> float:
    return float(labels.get("le", "inf").replace("+Inf", "inf"))


def parse_snapshot(text: str, now: float | None = None) -> Snapshot:
    """Totals from Prometheus exposition text.

    Args:
        text: the `/metrics` body.
        now: the snapshot time (default: now).

    Returns:
        The snapshot (zeros for metrics that are absent).
    """
    from prometheus_client.parser import text_string_to_metric_families

    snap = Snapshot(t=time.time() if now is None else now)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "mlcycle_requests_total" and _is_api(labels.get("route", "")):
                snap.requests += value
                status = labels.get("status", "")
                if status.startswith("4"):
                    snap.client_errors += value
                elif status.startswith("5"):
                    snap.server_errors += value
            elif name == "mlcycle_request_duration_seconds_bucket":
                if _is_api(labels.get("route", "")):
                    le = _le(labels)
                    snap.latency[le] = snap.latency.get(le, 0.0) + value
            elif name == "mlcycle_prediction_score_bucket":
                le = _le(labels)
                snap.scores[le] = snap.scores.get(le, 0.0) + value
    return snap


def _diff(new: dict[float, float], old: dict[float, float]) -> dict[float, float]:
    return {le: max(0.0, count - old.get(le, 0.0)) for le, count in new.items()}


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """`histogram_quantile` over cumulative buckets (linear inside the bucket).

    Args:
        q: the quantile, 0..1.
        buckets: upper bound -> cumulative count (must include +Inf).

    Returns:
        The estimate in the buckets' unit, or None with no observations.
    """
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower
            inside = count - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, count
    return lower


def distribution(buckets: dict[float, float]) -> list[dict]:
    """Per-bucket counts (not cumulative) from cumulative buckets: `[{lo, hi, count}]`."""
    out, lower, below = [], 0.0, 0.0
    for le in sorted(buckets):
        count = buckets[le] - below
        if not math.isinf(le):
            out.append({"lo": lower, "hi": le, "count": max(0.0, count)})
        lower, below = le, buckets[le]
    return out


def summarize(new: Snapshot, old: Snapshot | None, started: float) -> dict:
    """The figures between two snapshots (old None: since the server started)."""
    base = old or Snapshot(t=started)
    seconds = max(new.t - base.t, 1e-9)
    requests = new.requests - base.requests
    latency = _diff(new.latency, base.latency)
    errors = (new.client_errors - base.client_errors) + (new.server_errors - base.server_errors)
    p50, p99 = quantile(0.5, latency), quantile(0.99, latency)
    return {
        "since": base.t,
        "seconds": seconds,
        "requests": requests,
        "request_rate": requests / seconds,
        "error_rate": errors / requests if requests else 0.0,
        "server_error_rate": (new.server_errors - base.server_errors) / requests
        if requests
        else 0.0,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "scores": distribution(_diff(new.scores, base.scores)),
    }


class LiveSampler:
    """A ring buffer of snapshots over the last hour, filled by a daemon thread."""

    def __init__(
        self, source: Callable[[], str], interval: float = 10.0, started: float | None = None
    ) -> None:
        self.source = source
        self.interval = interval
        self.started = time.time() if started is None else started
        self.ring: deque[Snapshot] = deque(maxlen=int(WINDOW_SECONDS / max(interval, 1.0)) + 2)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def sample(self, force: bool = True) -> Snapshot | None:
        """Take one snapshot now; None if the metrics cannot be read.

        Args:
            force: keep it in the ring even if the last one is younger than `interval`
                (browser polls pass False so they do not crowd the hour out of the ring).
        """
        try:
            snap = parse_snapshot(self.source())
        except Exception as exc:  # a bad scrape must not break the page
            log.warning("live metrics sample failed: %s", exc)
            return None
        with self._lock:
            if force or not self.ring or snap.t - self.ring[-1].t >= self.interval * 0.9:
                self.ring.append(snap)
        return snap

    def start(self) -> None:
        """Start the background thread once (idempotent)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="mlcycle-live", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            time.sleep(self.interval)

    def summary(self) -> dict:
        """Figures for the last hour plus a per-interval series for a sparkline."""
        newest = self.sample(force=False)
        with self._lock:
            ring = [s for s in self.ring if s.t >= time.time() - WINDOW_SECONDS]
        if newest is None:
            return {"error": "metrics unavailable"}
        oldest = ring[0] if len(ring) > 1 else None
        out = summarize(newest, oldest, self.started)
        out["window"] = "last hour" if oldest else "since server start"
        series = []
        for prev, cur in zip(ring, ring[1:], strict=False):
            span = max(cur.t - prev.t, 1e-9)
            p99 = quantile(0.99, _diff(cur.latency, prev.latency))
            series.append(
                {
                    "t": cur.t,
                    "rps": (cur.requests - prev.requests) / span,
                    "p99_ms": None if p99 is None else p99 * 1000,
                }
            )
        out["series"] = series
        return out
