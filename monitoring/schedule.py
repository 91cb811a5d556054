"""Run a job on a fixed interval in the foreground until SIGTERM or Ctrl-C.

In: an interval in seconds and a job returning an exit code. Out: log lines per run. A failing
run is logged with its traceback and the loop goes on; a signal stops the loop after the run in
progress (a second Ctrl-C interrupts at once). Used by `--every` of `mlcycle drift`,
`performance` and `retrain-on-drift` (`once_or_every`), e.g. as docker-compose services.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def run_every(
    interval_s: float,
    job: Callable[[], int],
    stop: threading.Event | None = None,
    max_runs: int | None = None,
) -> int:
    """Call `job` every `interval_s` seconds until stopped.

    Args:
        interval_s: seconds from the start of one run to the start of the next.
        job: the work; returns an exit code (logged).
        stop: an event that ends the loop (default: a new one set by SIGTERM/SIGINT).
        max_runs: stop after this many runs (None: run until stopped).

    Returns:
        0 once stopped.
    """
    stop = stop or threading.Event()
    restore = _install_handlers(stop)
    runs = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                code = job()
                log.info("scheduled run %d finished with exit code %s", runs + 1, code)
            except Exception:
                log.exception("scheduled run %d failed; trying again next interval", runs + 1)
            runs += 1
            if max_runs is not None and runs >= max_runs:
                break
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    finally:
        restore()
    log.info("schedule stopped after %d runs", runs)
    return 0


def _install_handlers(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM/SIGINT set `stop` (main thread only); returns a function that undoes it."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        log.info("received %s: stopping after the current run", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def once_or_every(job: Callable[[], int], interval_s: float | None, what: str) -> int:
    """Run `job` once (no interval), or `run_every(interval_s, job)`; the exit code.

    Args:
        job: the work; returns an exit code.
        interval_s: seconds between runs, or None for a single run.
        what: the job's name in the log line that starts a schedule.
    """
    if interval_s is None:
        return job()
    log.info("%s every %g s (Ctrl-C or SIGTERM stops)", what, interval_s)
    return run_every(interval_s, job)
