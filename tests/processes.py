"""Real processes for tests: servers started on a free loopback port, waited for, stopped.

In: a command, its environment and a log file. Out: a process in its own session (so stopping
it stops its workers too), a wait that fails with the log's tail when the process dies or never
answers, and a stop that escalates from SIGTERM to SIGKILL. Importable from every test folder
as `processes` (pytest puts `tests/` on `sys.path` for `tests/conftest.py`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    """Start `cmd` in a new session with stdout and stderr going to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    """Wait for GET `url` to answer 200; fail with the log's tail if `proc` exits or time is up."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop(proc)
    raise AssertionError(f"{url} not up in {timeout:.0f} s: {log_path.read_text()[-2000:]}")


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
