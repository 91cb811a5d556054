"""`--every`: runs repeat, a failing run does not stop the loop, a stop event ends it."""

from __future__ import annotations

import os
import signal
import threading

from monitoring.schedule import run_every


def test_runs_repeat_and_survive_failures() -> None:
    calls = []

    def job() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return 0

    assert run_every(0.01, job, max_runs=4) == 0
    assert len(calls) == 4


def test_stop_event_ends_the_wait() -> None:
    stop = threading.Event()
    calls = []

    def job() -> int:
        calls.append(1)
        stop.set()
        return 1

    assert run_every(3600, job, stop=stop) == 0  # returns at once, not after an hour
    assert calls == [1]


def test_sigterm_stops_the_loop_after_the_current_run() -> None:
    calls = []

    def job() -> int:
        calls.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        return 0

    previous = signal.getsignal(signal.SIGTERM)
    assert run_every(3600, job) == 0
    assert calls == [1]
    assert signal.getsignal(signal.SIGTERM) == previous  # handlers restored
