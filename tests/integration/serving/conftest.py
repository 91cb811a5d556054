"""Real `python -m serving` processes on free loopback ports (`tests.helpers.Server`)."""

from __future__ import annotations

import pytest

from tests.helpers import Server


@pytest.fixture
def start_server(trained_store, tmp_path):
    """`start_server(workers=2, store=None, **env) -> Server` against `store` (the shared
    trained store unless a test passes its `store_copy`); every server is stopped at the end
    of the test."""
    servers = []

    def start(workers: int = 2, store=None, **env) -> Server:
        sub = tmp_path / f"server{len(servers)}"
        sub.mkdir()
        servers.append(Server(store or trained_store, sub, workers, **env))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
