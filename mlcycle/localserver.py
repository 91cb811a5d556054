"""A model server in a child process on a loopback port: the demo's and the notebooks' server.

In: a port (default: a free one), more `mlcycle serve` options, the environment (the stores it
serves from), a log file (default: the caller's stdout). Out: a running `mlcycle serve` that is
ready (`/v2/health/ready` answers 200) when `start()` returns, and that `stop()` ends for sure:
SIGTERM to its process group (the launcher stops the server and reaps it), SIGKILL of the group
if it hangs. `stop()` also runs when the interpreter exits, so a notebook whose kernel is shut
down or restarted does not leave a server holding the port.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


class ServerError(RuntimeError):
    """The server exited before it was ready, or was not ready in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalServer:
    """`mlcycle serve --port PORT ARGS` in a process group of its own.

    Args:
        port: loopback port (default: a free one).
        args: more `mlcycle serve` options, e.g. `("--poll-interval", "1")`.
        env: the server's environment (default: this process's).
        log_path: where its stdout and stderr go (default: this process's stdout); a failure
            to start quotes its tail.

    Attributes:
        url: `http://127.0.0.1:PORT`.
        proc: the launcher's process once started, else None.
    """

    def __init__(
        self,
        port: int | None = None,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(a) for a in args]
        self.env = env
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120.0) -> LocalServer:
        """Start the server and wait until it is ready; returns self.

        Raises:
            ServerError: it exited first or was not ready within `timeout_s` (it is stopped).
        """
        cmd = [sys.executable, "-m", "mlcycle", "serve", "--port", str(self.port), *self.args]
        out = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - Popen dups it
        try:
            self.proc = subprocess.Popen(
                cmd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
            )
        finally:
            if out:
                out.close()
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout_s)
        except ServerError:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import requests

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"the server exited before it became ready{self._tail()}")
            try:
                if requests.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise ServerError(f"the server at {self.url} was not ready after {timeout_s:.0f} s")

    def _tail(self, chars: int = 2_000) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return f"; its output ends with:\n{self.log_path.read_text(errors='replace')[-chars:]}"

    @property
    def running(self) -> bool:
        """Whether the launcher runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 40.0) -> None:
        """SIGTERM the launcher's group (it drains and stops the server); SIGKILL the group if
        it has not exited within `timeout_s`. Does nothing when it is not running."""
        atexit.unregister(self.stop)
        if not self.running:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
