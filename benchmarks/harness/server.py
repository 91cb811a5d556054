"""Servers under measurement: started on a free loopback port, waited for, surely stopped.

In: a command line with `{port}` where the port goes, its environment and a log file. Out: a
`Server` in a session of its own whose process tree can be measured (`benchmarks.harness.
processes`), and the command lines and environment the benchmarks start their servers with:
`mlcycle serve`, `mlflow models serve` and the bare constant app (`benchmarks.bare_app`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from benchmarks.harness import processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_script(name: str) -> str:
    """The path of console script `name` of this Python environment (`mlflow`, `mlcycle`)."""
    return str(Path(sys.executable).parent / name)


def server_env(root: Path) -> dict[str, str]:
    """Environment for servers started by a benchmark: log, reports and state under `root`."""
    return dict(
        os.environ,
        MLCYCLE_PREDICTION_LOG_URL=f"sqlite:///{root / 'pred.db'}",
        MLCYCLE_REPORTS_DIR=str(root / "reports"),
        MLCYCLE_HOME=str(root),
        # `mlflow models serve` execs `uvicorn`: it must find this environment's scripts.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )


def mlcycle_serve_command(workers: int) -> list[str]:
    """`python -m serving` (= `mlcycle serve`) with `workers` workers, `{port}` left to fill in."""
    return [sys.executable, "-m", "serving", "--port", "{port}", "--workers", str(workers)]


def mlflow_serve_command(model_uri: str) -> list[str]:
    """`mlflow models serve` on loopback for `model_uri`, with `{port}` left to fill in."""
    return [
        venv_script("mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        "{port}",
    ]


def bare_app_command(server: str, workers: int, threads: int) -> list[str]:
    """The constant app `benchmarks.bare_app:app` under `server`, as `mlcycle serve` runs its own.

    Start it in the repository (`benchmarks.harness.ROOT`, also on PYTHONPATH) so that the
    server can import it.
    """
    from serving.cli import server_command

    cmd = server_command(
        server, "benchmarks.bare_app:app", "127.0.0.1", 0, workers, threads, factory=False
    )
    cmd[cmd.index("--port") + 1] = "{port}"
    return cmd


class Server:
    """A server process started in a session of its own on a free loopback port.

    Use it as a context manager (or call `stop`): leaving stops the server.
    """

    def __init__(
        self, name: str, cmd: list[str], env: dict, log_path: Path, cwd: Path | None = None
    ) -> None:
        """Start `cmd`, `{port}` in it and in `env`'s values replaced by a free port, output
        to `log_path`."""
        self.name = name
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [c.replace("{port}", str(self.port)) for c in cmd]
        env = {k: v.replace("{port}", str(self.port)) for k, v in env.items()}
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, path: str, timeout: float = 180) -> None:
        """Wait for GET `path` to answer 200, or raise with the server log's tail."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + path, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self._fail(f"{self.url}{path} never became ready in {timeout:.0f} s")

    def warm(self, body_file: Path, times: int) -> None:
        """POST `body_file` (JSON) to `/invocations` `times` times, so every worker has run it."""
        body = body_file.read_bytes()
        for _ in range(times):
            requests.post(
                self.url + "/invocations",
                data=body,
                timeout=30,
                headers={"Content-Type": "application/json"},
            )

    def _fail(self, why: str) -> None:
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not start ({why}); log tail:\n{tail}")

    def _alive(self) -> bool:
        return self.proc.poll() is None

    def memory_mb(self, key: str = "VmRSS") -> float:
        """Sum of `key` (VmRSS or VmHWM) over the server's live processes, MB."""
        return processes.tree_memory_mb(self.proc.pid, key) if self._alive() else 0.0

    def reset_peaks(self) -> None:
        """Reset every server process's VmHWM to its current RSS."""
        if self._alive():
            processes.reset_peaks(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the server's live processes."""
        return processes.tree_cpu_seconds(self.proc.pid) if self._alive() else 0.0

    def stop(self) -> None:
        """SIGTERM the group; after 20 s SIGKILL the group and every process of the tree."""
        if not self._alive():
            return
        with contextlib.suppress(ProcessLookupError):  # it may have exited since
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            left = processes.tree(self.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in left[1:]:  # `mlcycle serve` runs the server in a group of its own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.wait(5)
