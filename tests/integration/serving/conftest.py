"""A real `python -m serving` process on a free loopback port against the trained store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ADMIN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            "--threads",
            "4",
        ]
        with open(self.output, "w") as out:
            self.proc = subprocess.Popen(
                cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output.read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server never ready: {self.output.read_text()[-2000:]}")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


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
