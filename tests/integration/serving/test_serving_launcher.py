"""`mlcycle serve` as a process tree: how it stops.

In: a real launcher (`python -m serving`) running granian with two workers on loopback.
Out: a terminal's Ctrl-C (SIGINT to the whole foreground group, workers included if they shared
it), a SIGKILL of the launcher, and a second stop signal each leave no server process behind and
free the port. The server runs in a process group of its own, so a group signal reaches its main
process once, through the launcher (granian could hang when its workers died under it).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests
from processes import descendants

pytestmark = pytest.mark.slow


def _tree(server) -> list[int]:
    return [server.proc.pid, *descendants(server.proc.pid)]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":  # an unreaped zombie is gone for us
            alive.append(pid)
    return alive


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.time() + timeout
    while _alive(pids) and time.time() < deadline:
        time.sleep(0.2)
    return _alive(pids)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_ctrl_c_to_the_group_stops_every_process(start_server):
    server = start_server(workers=2)
    pids = _tree(server)
    assert len(pids) >= 4, f"launcher, granian and two workers expected: {pids}"
    requests.get(server.url + "/v2/health/ready", timeout=5).raise_for_status()
    os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert server.proc.wait(30) == 0
    assert not _wait_gone(pids, 10), server.output.read_text()[-2000:]
    assert _port_free(server.port)


def test_server_dies_with_a_killed_launcher(start_server):
    server = start_server(workers=2)
    pids = _tree(server)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    assert not _wait_gone(pids, 30), "granian outlived its launcher"
    assert _port_free(server.port)


def test_second_signal_kills_a_server_that_does_not_stop(start_server):
    server = start_server(workers=2)
    pids = _tree(server)
    granian = descendants(server.proc.pid)[0]
    os.kill(granian, signal.SIGSTOP)  # a server that cannot act on the stop signal
    os.killpg(server.proc.pid, signal.SIGTERM)
    time.sleep(1)
    assert server.proc.poll() is None, "the launcher waits for the server to stop"
    os.killpg(server.proc.pid, signal.SIGTERM)  # the impatient second Ctrl-C
    server.proc.wait(10)
    assert not _wait_gone(pids, 10)
    assert "killing the server and its workers: a second signal" in server.output.read_text()
