"""The watcher: swaps on a new version, keeps serving on load or registry failures, and skips
registry queries while an embedded store is untouched."""

from __future__ import annotations

import dataclasses
import os
import time

from conftest import make_service

from serving.settings import Settings
from serving.watcher import ModelWatcher, ServingState, _SkipUnchanged


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
        dataclasses.replace(Settings(), poll_interval=0.05),
        load,
        registry,
        on_failure=failures.append,
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
        deadline = time.time() + 5
        while state.service.version != "2" and time.time() < deadline:
            time.sleep(0.02)
        assert state.service.version == "2"
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
