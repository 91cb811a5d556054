"""The watcher: swaps on a new version, keeps serving on load or registry failures, retries a
failed version with back-off, hears reloads asked in another worker, and skips registry queries
while an embedded store is untouched."""

from __future__ import annotations

import os
import time

import pytest

from serving.settings import Settings
from serving.watcher import ModelWatcher, ServingState, _SkipUnchanged
from tests.helpers import wait_until
from tests.unit.serving.stub import make_service


class Registry:
    def __init__(self):
        self.version = "1"
        self.calls = 0
        self.down = False

    def __call__(self, seen):
        self.calls += 1
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.version, seen


def _watcher(registry, broken=()):
    state = ServingState()
    failures = []

    def load(version):
        if version in broken:
            raise OSError(f"cannot read weights of v{version}")
        return make_service(version)

    w = ModelWatcher(
        state,
        Settings().model_copy(update={"poll_interval": 0.05}),
        load,
        registry,
        on_failure=lambda version, _exc: failures.append(version),
    )
    return w, state, failures


def test_swaps_keeps_old_on_failure_and_survives_registry_outage():
    registry = Registry()
    w, state, failures = _watcher(registry, broken={"3"})
    assert w.check() == "1" and state.ready.is_set()
    old = state.service
    registry.version = "2"
    assert w.check() == "2" and state.service is not old
    registry.version = "3"
    assert w.check() == "2"
    assert failures == ["3"] and state.load_error["version"] == "3"
    calls = registry.calls
    assert w.check() == "2" and registry.calls == calls + 1  # no reload attempt of v3
    registry.down = True
    assert w.check() == "2" and "unreachable" in state.registry_error
    registry.down, registry.version = False, "1"
    assert w.check() == "1" and state.registry_error is None and state.load_error is None


def test_background_thread_follows_the_registry():
    registry = Registry()
    w, state, _ = _watcher(registry)
    w.start()
    try:
        assert state.ready.wait(5)
        registry.version = "2"
        wait_until(lambda: state.service.version == "2", 5, "the thread swapping to v2")
    finally:
        w.stop()


def test_skip_unchanged_queries_only_when_the_store_changes(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_text("x")
    registry = Registry()
    skip = _SkipUnchanged(registry, db, max_age=60, min_gap=0)
    assert skip(None) == ("1", None) and registry.calls == 1
    registry.version = "2"
    assert skip(None) == ("1", None) and registry.calls == 1  # untouched: no query
    db.write_text("xy")
    os.utime(db, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert skip(None) == ("2", None) and registry.calls == 2
    skip.invalidate()
    assert skip(None) == ("2", None) and registry.calls == 3


class FlakyLoader:
    """Loads real `ModelService`s; `broken` versions fail while they are broken."""

    def __init__(self, broken=(), fail_times: int | None = None):
        self.broken = set(broken)
        self.fail_times = fail_times  # None: fail as long as the version is in `broken`
        self.attempts: list[tuple[str, float]] = []

    def __call__(self, version):
        self.attempts.append((version, time.monotonic()))
        tries = sum(v == version for v, _ in self.attempts)
        if version in self.broken and (self.fail_times is None or tries <= self.fail_times):
            raise OSError(f"cannot read weights of v{version}")
        return make_service(version)


def _retrying(registry, loader, run_dir=None, **settings):
    state, failures = ServingState(), []
    options = {"poll_interval": 60.0, "load_retry_min_s": 0.2, "load_retry_max_s": 0.8}
    w = ModelWatcher(
        state,
        Settings().model_copy(update=options | settings),
        loader,
        registry,
        on_failure=lambda version, _exc: failures.append(version),
        run_dir=run_dir,
    )
    return w, state, failures


def test_a_version_that_fails_to_load_once_is_served_after_its_retry():
    registry, loader = Registry(), FlakyLoader(broken={"2"}, fail_times=1)
    w, state, failures = _retrying(registry, loader)
    assert w.check() == "1"
    registry.version = "2"
    assert w.check() == "1", "the old version keeps serving"
    error = state.load_error
    assert failures == ["2"] and error["version"] == "2" and error["attempts"] == 1
    assert error["next_retry_at"] - error["at"] == pytest.approx(0.2)
    assert w.check() == "1" and len(loader.attempts) == 2, "not retried before its time"
    w.start()  # no promotion, no trigger: only the retry can load it
    try:
        wait_until(lambda: state.service.version == "2", 3, lambda: f"v2: {state.load_error}")
    finally:
        w.stop()
    (_, failed_at), (_, retried_at) = loader.attempts[1:3]
    assert retried_at - failed_at >= 0.2
    assert state.load_error is None and failures == ["2"]


def test_retries_back_off_exponentially_up_to_the_cap():
    registry, loader = Registry(), FlakyLoader(broken={"2"})
    w, state, failures = _retrying(registry, loader)
    assert w.check() == "1"
    registry.version = "2"
    waits = []
    for _ in range(5):
        w.trigger()  # an admin reload tries at once, and still counts the attempt
        assert w.check() == "1"
        waits.append(round(state.load_error["next_retry_at"] - state.load_error["at"], 3))
    assert waits == [0.2, 0.4, 0.8, 0.8, 0.8]
    assert state.load_error["attempts"] == 5 and failures == ["2"] * 5
    registry.version = "1"  # rolled back: nothing left to retry
    assert w.check() == "1" and state.load_error is None


def test_a_reload_in_one_worker_reaches_the_others(tmp_path):
    """Two watchers sharing a run folder stand for two workers of one server."""
    registry = Registry()
    loader = FlakyLoader(broken={"2"})
    slow = {"load_retry_min_s": 60.0, "load_retry_max_s": 60.0}  # no retry within the test
    here, here_state, _ = _retrying(registry, loader, str(tmp_path), **slow)
    other, other_state, _ = _retrying(registry, loader, str(tmp_path), **slow)
    assert here.check() == "1"
    other.start()
    try:
        assert other_state.ready.wait(5)
        registry.version = "2"
        here.trigger()
        assert here.check() == "1" and here_state.load_error["version"] == "2"
        other.trigger()
        wait_until(lambda: other_state.load_error is not None, 3, "the other's failed load")
        loader.broken.clear()  # the artifact is fixed; the next try would work, in 60 s
        time.sleep(0.5)  # a window in which nothing may happen
        assert other_state.service.version == "1", "nothing retries on its own yet"
        assert here.reload() == ("2", True)
        wait_until(lambda: other_state.service.version == "2", 2, "the reload reaching the other")
    finally:
        other.stop()
    assert other_state.load_error is None
