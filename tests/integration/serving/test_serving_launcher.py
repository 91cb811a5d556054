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

import pytest
import requests

from tests.helpers import alive, descendants, port_free, wait_until

pytestmark = pytest.mark.slow


def _tree(server) -> list[int]:
    return [server.proc.pid, *descendants(server.proc.pid)]


def _wait_gone(server, pids: list[int], timeout: float) -> None:
    """Wait until none of `pids` runs; fail naming the ones left and the server's output."""
    wait_until(
        lambda: not any(alive(p) for p in pids),
        timeout,
        lambda: f"{[p for p in pids if alive(p)]} gone: {server.output.read_text()[-2000:]}",
        every=0.2,
    )


def test_ctrl_c_to_the_group_stops_every_process(start_server):
    server = start_server(workers=2)
    pids = _tree(server)
    assert len(pids) >= 4, f"launcher, granian and two workers expected: {pids}"
    requests.get(server.url + "/v2/health/ready", timeout=5).raise_for_status()
    os.killpg(server.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert server.proc.wait(30) == 0
    _wait_gone(server, pids, 10)
    assert port_free(server.port)


def test_server_dies_with_a_killed_launcher(start_server):
    server = start_server(workers=2)
    pids = _tree(server)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    _wait_gone(server, pids, 30)  # granian must not outlive its launcher
    assert port_free(server.port)


def test_second_signal_kills_a_server_that_does_not_stop(start_server):
    server = start_server(workers=2)
    pids = _tree(server)
    granian = descendants(server.proc.pid)[0]
    os.kill(granian, signal.SIGSTOP)  # a server that cannot act on the stop signal
    os.killpg(server.proc.pid, signal.SIGTERM)
    wait_until(
        lambda: "stopping the server: no new connections" in server.output.read_text(),
        10,
        "the launcher passing the stop signal on",
    )
    assert server.proc.poll() is None, "the launcher waits for the server to stop"
    os.killpg(server.proc.pid, signal.SIGTERM)  # the impatient second Ctrl-C
    server.proc.wait(10)
    _wait_gone(server, pids, 10)
    assert "killing the server and its workers: a second signal" in server.output.read_text()
