"""Follow promotions: poll the registry, load the new version in the background, swap atomically.

In: the registry (via `mlcycle.core.registry.resolve_production`, every `poll_interval` seconds, and
at once on `reload()` from `POST /admin/reload` in any worker of the server: the run folder's
`reload` token tells the others). Out: `ServingState.service`, replaced by one attribute
assignment, so a request that already holds the old `ModelService` finishes on it.
A version that fails to load is logged, counted in `mlcycle_model_load_failures_total`, shown
in the readiness detail (attempts, next try) and tried again after `load_retry_min_s`, then
twice as long each time up to `load_retry_max_s`, while the old version keeps serving; an
unreachable registry is retried on the next poll. With `MLCYCLE_SIGNING_KEY` set, the loader
downloads a version, checks its files against its signature (`mlcycle.core.signing`) and
loads it from that same folder; a version that is unsigned or was changed after signing is
refused like a failed load (the readiness detail's `last_load_error` has its `refused`
reason, `mlcycle_model_refused_total{reason}` counts it).
"""

from __future__ import annotations

import gc
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlcycle.core.signing import SIGNATURE_TAG, SignatureError, verify
from serving import rundir
from serving.explain import REFERENCE_TAG
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
RELOAD_TICK_S = 0.25  # how often a watcher looks for a reload asked in another worker


@dataclass
class _Retry:
    """A version that failed to load: how often so far, and when to try it again."""

    version: str
    attempts: int
    due: float  # time.monotonic()


class ModelWatcher:
    """A daemon thread that keeps `state.service` on the registry's production version.

    Args:
        state: where the served model goes.
        settings: poll interval, retry back-off.
        loader: loads a version (raises when it cannot).
        resolver: `resolve(seen) -> (version, seen)`: the version that should serve.
        on_swap: called with (new, old) after each swap.
        on_failure: called with the version and the exception after each failed load.
        run_dir: the launcher's run folder, shared by the server's workers (None: alone).
        role: what the loaded model does, for the log ("serving", "shadowing").
    """

    def __init__(
        self,
        state: ServingState,
        settings: Settings,
        loader: Loader,
        resolver: Resolver,
        on_swap: Callable[[ModelService, ModelService | None], None] | None = None,
        on_failure: Callable[[str, Exception], None] | None = None,
        run_dir: str | None = None,
        role: str = "serving",
    ) -> None:
        self.role = role
        self.state = state
        self.settings = settings
        self._load = loader
        self._resolve = resolver
        self._on_swap = on_swap
        self._on_failure = on_failure
        self._run_dir = run_dir
        self._reload_seen = rundir.reload_token(run_dir) if run_dir else None
        self._wake = threading.Event()
        self._force = False
        self._stop = False
        self._seen = None
        self._retry: _Retry | None = None
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
        """Check now (and retry a version that failed before, without waiting for its turn)."""
        self._force = True
        self._wake.set()

    def reload(self) -> tuple[str | None, bool]:
        """Check now in this worker, and have every other worker of the server do the same
        within `RELOAD_TICK_S` (through the run folder's reload token).

        Returns:
            (the version this worker serves now, whether the other workers were signalled).
        """
        signalled = False
        if self._run_dir:
            self._reload_seen = rundir.request_reload(self._run_dir)
            signalled = True
        self._force = True
        return self.check(), signalled

    def _run(self) -> None:
        due = 0.0  # time.monotonic() of the next registry check
        while not self._stop:
            if self._force or self._reload_asked() or time.monotonic() >= due:
                self.check()
                due = time.monotonic() + self._interval()
            wait = due - time.monotonic()
            if self._run_dir:
                wait = min(wait, RELOAD_TICK_S)
            self._wake.wait(max(wait, 0.0))
            self._wake.clear()

    def _interval(self) -> float:
        """Seconds to the next check: the poll interval, shorter before the first load, for
        a resolver that can tell cheaply whether anything changed, and for a retry due."""
        poll = self.settings.poll_interval
        interval = poll if self.state.service else min(poll, 1.0)
        interval = min(interval, getattr(self._resolve, "cheap_interval", interval))
        # A retry whose time has passed without a try (registry unreachable) waits for a poll.
        to_retry = self._retry.due - time.monotonic() if self._retry else interval
        return min(interval, to_retry) if to_retry > 0 else interval

    def _reload_asked(self) -> bool:
        """True once per reload asked in another worker since the last look."""
        if not self._run_dir:
            return False
        token = rundir.reload_token(self._run_dir)
        if token == self._reload_seen:
            return False
        self._reload_seen = token
        self._force = True
        return True

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
                self._forget_failure()  # the registry moved back: nothing left to retry
                return self._current()
            retry = self._retry
            if retry and retry.version == version and not force and time.monotonic() < retry.due:
                return self._current()
            self._load_version(version)
            return self._current()

    def _forget_failure(self) -> None:
        self._retry = None
        self.state.load_error = None

    def _current(self) -> str | None:
        svc = self.state.service
        return svc.version if svc else None

    def _load_version(self, version: str) -> None:
        started = time.perf_counter()
        try:
            service = self._load(version)
            service.warm()
        except Exception as exc:
            self._failed_to_load(version, exc)
            return
        self._forget_failure()
        # Move everything loaded so far (mlflow, the model) out of the collector's sight, so
        # full collections stay short and do not show up as latency spikes.
        gc.collect()
        gc.freeze()
        old = self.state.swap(service)
        took = time.perf_counter() - started
        log.info("now %s %s (loaded in %.2fs)", self.role, service.label, took)
        if self._on_swap:
            self._on_swap(service, old)

    def _failed_to_load(self, version: str, exc: Exception) -> None:
        """Record the failure and schedule the next try: `load_retry_min_s`, doubling each
        time, at most `load_retry_max_s`."""
        retry = self._retry
        attempts = retry.attempts + 1 if retry and retry.version == version else 1
        doubled = self.settings.load_retry_min_s * 2 ** min(attempts - 1, 32)
        wait = min(self.settings.load_retry_max_s, doubled)
        self._retry = _Retry(version, attempts, time.monotonic() + wait)
        now = time.time()
        self.state.load_error = {
            "version": version,
            "error": f"{type(exc).__name__}: {exc}"[:500],
            "at": now,
            "attempts": attempts,
            "next_retry_at": now + wait,
        }
        if isinstance(exc, SignatureError):
            self.state.load_error["refused"] = exc.reason
        log.error(
            "loading %s version %s failed (attempt %d); still serving %s; next try in %.1fs: %s",
            self.settings.model_name,
            version,
            attempts,
            self._current(),
            wait,
            exc,
        )
        if self._on_failure:
            self._on_failure(version, exc)


def registry_resolver(settings: Settings) -> Resolver:
    """A resolver over the MLflow registry for the configured model and alias/stage."""
    from mlcycle.core import config

    config.configure_mlflow()
    import mlflow

    client = mlflow.MlflowClient()
    alias = settings.model_alias

    if settings.model_uri:
        return lambda seen: (settings.model_uri, seen)

    if alias == "production":
        from mlcycle.core.registry import resolve_production

        def resolve(seen):
            state = resolve_production(client, settings.model_name, seen)
            return state.version, state

    else:

        def resolve(seen):
            mv = client.get_model_version_by_alias(settings.model_name, alias)
            return str(mv.version), seen

    return skip_unchanged(resolve)


def skip_unchanged(resolve: Resolver) -> Resolver:
    """`resolve`, queried only when an embedded SQLite store changed (`_SkipUnchanged`)."""
    from mlcycle.core import config

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
    """Load a registry version (or `MLCYCLE_MODEL_URI`) with `mlflow.pyfunc.load_model`;
    with a signing key, only after its files passed `verify` (`SignatureError` otherwise)."""
    import mlflow

    def load(version: str) -> ModelService:
        reference = None
        if settings.model_uri:
            uri, run_id, label, signed = settings.model_uri, "", settings.model_uri, None
        else:
            uri = f"models:/{settings.model_name}/{version}"
            mv = mlflow.MlflowClient().get_model_version(settings.model_name, version)
            run_id, label = mv.run_id or "", version
            signed = (mv.tags or {}).get(SIGNATURE_TAG)
            reference = (mv.tags or {}).get(REFERENCE_TAG)
        if settings.signing_key:
            model = _verified_load(uri, signed, settings.signing_key)
        else:
            model = mlflow.pyfunc.load_model(uri)
        service = ModelService(
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
        service.reference_uri = reference
        return service

    return load


def _verified_load(uri: str, signed: str | None, key: str):
    """Download `uri`, verify the folder against `signed` and load the model from it: the
    files checked are the files loaded (the model reads its artifacts while loading)."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlcycle-load-") as tmp:
        local = mlflow.artifacts.download_artifacts(uri, dst_path=tmp)
        verify(Path(local), signed, key)
        return mlflow.pyfunc.load_model(local)
