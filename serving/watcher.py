"""Follow promotions: poll the registry, load the new version in the background, swap atomically.

In: the registry (via `mlcycle.registry.resolve_production`, every `poll_interval` seconds and
on `trigger()` from `POST /admin/reload`). Out: `ServingState.service`, replaced by one
attribute assignment, so a request that already holds the old `ModelService` finishes on it.
A version that fails to load is logged, counted in `mlcycle_model_load_failures_total` and shown
in the readiness detail while the old version keeps serving; an unreachable registry is retried
on the next poll.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serving.model import ModelService
from serving.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ServingState:
    """What one worker serves now, and why it might not be what the registry says."""

    service: ModelService | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    load_error: dict | None = None
    registry_error: str | None = None
    last_check: float | None = None
    target_version: str | None = None
    loads: int = 0

    def swap(self, service: ModelService) -> ModelService | None:
        """Make `service` current; returns the one it replaces."""
        old, self.service = self.service, service
        self.loads += 1
        self.ready.set()
        return old

    def detail(self) -> dict:
        """Readiness detail for `/health` and `/v2/health/ready`."""
        svc = self.service
        return {
            "ready": svc is not None,
            "model_name": svc.name if svc else None,
            "model_version": svc.version if svc else None,
            "run_id": svc.run_id if svc else None,
            "target_version": self.target_version,
            "last_load_error": self.load_error,
            "registry_error": self.registry_error,
            "last_check": self.last_check,
        }


Loader = Callable[[str], ModelService]
Resolver = Callable[[object], tuple[str | None, object]]


class ModelWatcher:
    """A daemon thread that keeps `state.service` on the registry's production version."""

    def __init__(
        self,
        state: ServingState,
        settings: Settings,
        loader: Loader,
        resolver: Resolver,
        on_swap: Callable[[ModelService, ModelService | None], None] | None = None,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self.state = state
        self.settings = settings
        self._load = loader
        self._resolve = resolver
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._wake = threading.Event()
        self._force = False
        self._stop = False
        self._seen = None
        self._failed: str | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)

    def start(self) -> ModelWatcher:
        """Start polling in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the current check."""
        self._stop = True
        self._wake.set()

    def trigger(self) -> None:
        """Check now (and retry a version that failed before)."""
        self._force = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stop:
            self.check()
            interval = (
                self.settings.poll_interval
                if self.state.service
                else min(self.settings.poll_interval, 1.0)
            )
            # A resolver that can tell cheaply whether anything changed is asked more often.
            interval = min(interval, getattr(self._resolve, "cheap_interval", interval))
            self._wake.wait(interval)
            self._wake.clear()

    def check(self) -> str | None:
        """Look at the registry once and load a new version if it changed.

        Returns:
            The version now served (None before the first successful load).
        """
        with self._lock:
            force, self._force = self._force, False
            if force and hasattr(self._resolve, "invalidate"):
                self._resolve.invalidate()
            try:
                version, self._seen = self._resolve(self._seen)
                self.state.registry_error = None
            except Exception as exc:  # registry unreachable: keep serving, retry next poll
                self.state.registry_error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("registry check failed, keeping the current model: %s", exc)
                return self._current()
            finally:
                self.state.last_check = time.time()
            self.state.target_version = version
            if version is None or version == self._current():
                return self._current()
            if version == self._failed and not force:
                return self._current()
            self._load_version(version)
            return self._current()

    def _current(self) -> str | None:
        svc = self.state.service
        return svc.version if svc else None

    def _load_version(self, version: str) -> None:
        started = time.perf_counter()
        try:
            service = self._load(version)
            service.warm()
        except Exception as exc:
            self._failed = version
            self.state.load_error = {
                "version": version,
                "error": f"{type(exc).__name__}: {exc}"[:500],
                "at": time.time(),
            }
            log.error(
                "loading %s version %s failed; still serving %s: %s",
                self.settings.model_name,
                version,
                self._current(),
                exc,
            )
            if self._on_failure:
                self._on_failure(version)
            return
        self._failed = None
        self.state.load_error = None
        # Move everything loaded so far (mlflow, the model) out of the collector's sight, so
        # full collections stay short and do not show up as latency spikes.
        gc.collect()
        gc.freeze()
        old = self.state.swap(service)
        log.info("now serving %s (loaded in %.2fs)", service.label, time.perf_counter() - started)
        if self._on_swap:
            self._on_swap(service, old)


def registry_resolver(settings: Settings) -> Resolver:
    """A resolver over the MLflow registry for the configured model and alias/stage."""
    from mlcycle import config

    config.configure_mlflow()
    import mlflow

    client = mlflow.MlflowClient()
    alias = settings.model_alias

    if settings.model_uri:
        return lambda seen: (settings.model_uri, seen)

    if alias == "production":
        from mlcycle.registry import resolve_production

        def resolve(seen):
            state = resolve_production(client, settings.model_name, seen)
            return state.version, state

    else:

        def resolve(seen):
            mv = client.get_model_version_by_alias(settings.model_name, alias)
            return str(mv.version), seen

    uri = config.tracking_uri()
    if uri.startswith("sqlite:///"):
        return _SkipUnchanged(resolve, Path(uri[len("sqlite:///") :]))
    return resolve


class _SkipUnchanged:
    """Skip registry queries while an embedded SQLite store's files are untouched.

    A registry check costs tens of milliseconds of Python in a busy worker; a `stat` of the
    store's files costs microseconds and any promotion writes them. So the watcher stats every
    `cheap_interval` seconds and queries when the files changed (at most every `min_gap`
    seconds), at least every `max_age` seconds, and after `invalidate()` (admin reload).
    """

    cheap_interval = 0.25

    def __init__(
        self, resolve: Resolver, db: Path, max_age: float = 30.0, min_gap: float = 0.5
    ) -> None:
        self._resolve = resolve
        self._min_gap = min_gap
        self._files = [db, db.with_name(db.name + "-wal")]
        self._max_age = max_age
        self._last: tuple | None = None
        self._stamp: tuple | None = None
        self._at = 0.0

    def invalidate(self) -> None:
        self._last = None

    def _fingerprint(self) -> tuple:
        out = []
        for f in self._files:
            try:
                st = f.stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def __call__(self, seen):
        stamp = self._fingerprint()
        age = time.monotonic() - self._at
        if self._last is not None and (
            (stamp == self._stamp and age < self._max_age) or age < self._min_gap
        ):
            return self._last
        result = self._resolve(seen)
        self._last, self._stamp, self._at = result, stamp, time.monotonic()
        return result


def mlflow_loader(settings: Settings) -> Loader:
    """Load a registry version (or `MLCYCLE_MODEL_URI`) with `mlflow.pyfunc.load_model`."""
    import mlflow

    def load(version: str) -> ModelService:
        if settings.model_uri:
            uri, run_id, label = settings.model_uri, "", settings.model_uri
        else:
            uri = f"models:/{settings.model_name}/{version}"
            mv = mlflow.MlflowClient().get_model_version(settings.model_name, version)
            run_id, label = mv.run_id or "", version
        model = mlflow.pyfunc.load_model(uri)
        return ModelService(
            model,
            settings.model_name,
            label,
            run_id,
            batching=settings.batching,
            max_batch=settings.max_batch,
            max_wait_us=settings.max_wait_us,
            cache_size=settings.cache_size if settings.cache else 0,
            cache_max_rows=settings.cache_max_rows,
            range_margin=settings.out_of_range_margin,
        )

    return load
