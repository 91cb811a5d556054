"""A real `python -m serving` process on a free loopback port against the trained store."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from processes import free_port, kill_tree, stop, wait_http
from processes import start as start_process

ADMIN = "test-admin-token"


class Server:
    """A running server: `url`, `log_db` (the prediction log file), `proc`."""

    def __init__(self, store, tmp: Path, workers: int = 2, **env) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_db = tmp / "predictions.db"
        self.output = tmp / "server.log"
        full_env = dict(os.environ)
        full_env.update(
            {
                "MLFLOW_TRACKING_URI": store.tracking_uri,
                "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{self.log_db}",
                "MLCYCLE_REPORTS_DIR": str(tmp / "reports"),
                "MLCYCLE_ADMIN_TOKEN": ADMIN,
                "MLCYCLE_POLL_INTERVAL": "1",
                "MLCYCLE_HOME": str(tmp),
            }
        )
        full_env.update({k: str(v) for k, v in env.items()})
        cmd = [
            sys.executable,
            "-m",
            "serving",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.proc = start_process(cmd, full_env, self.output)
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        wait_http(self.url + "/v2/health/ready", self.proc, self.output, timeout)

    def kill9(self) -> None:
        kill_tree(self.proc)

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture
def start_server(trained_store, tmp_path):
    """`start_server(**env) -> Server`; every server is stopped at the end of the test."""
    servers = []

    def start(workers: int = 2, **env) -> Server:
        sub = tmp_path / f"server{len(servers)}"
        sub.mkdir()
        servers.append(Server(trained_store, sub, workers, **env))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()
