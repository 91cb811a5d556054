"""Real processes for tests: servers started on a free loopback port, waited for, stopped.

In: a command, its environment and a log file. Out: a process in its own session, a wait that
fails with the log's tail when the process dies or never answers, a stop that escalates from
SIGTERM to its group to SIGKILL of its whole process tree (`mlcycle serve` runs the server in a
group of its own), and that SIGKILL alone for tests of crashes. Importable from every test folder
as `processes` (pytest puts `tests/` on `sys.path` for `tests/conftest.py`).
"""

from __future__ import annotations

import contextlib
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


def start(cmd: list[str], env: dict, log_path: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session with stdout and stderr going to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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
    """SIGTERM the process group; SIGKILL the whole tree if it has not exited in `timeout` s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc` and every process below it at once (a crash of the whole server)."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


def descendants(pid: int) -> list[int]:
    """The pids of every living process below `pid` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def tree_memory_mb(proc: subprocess.Popen, key: str = "VmRSS") -> float:
    """Sum of `key` (VmRSS, or VmHWM: each process's peak) over `proc` and its descendants."""
    total = 0
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total / 1024
