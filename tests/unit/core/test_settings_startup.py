"""A bad setting stops every command at start-up: non-zero exit within seconds, one line
naming the variable, no traceback (real processes, as a user or a container runs them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv: list[str], env: dict[str, str], tmp_path) -> tuple[int, str, float]:
    full = {
        **{k: v for k, v in os.environ.items() if not k.upper().startswith("MLCYCLE_")},
        "MLCYCLE_HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        **env,
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *argv], env=full, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["-m", "mlcycle", "serve", "--port", "{port}"], {"MLCYCLE_WORKERS": "many"}, None),
        (["-m", "serving", "--port", "{port}"], {"MLCYCLE_BATCHING": "maybe"}, None),
        (["-m", "mlcycle", "serve", "--port", "{port}"], {"MLCYCLE_WEB_LIVE_INTERVAL": "x"}, None),
        (["-m", "mlcycle", "drift"], {"MLCYCLE_DRIFT_MIN_ROWS": "lots"}, None),
        (["-m", "monitoring", "drift"], {"MLCYCLE_DRIFT_MLFLOW": "maybe"}, None),
        (["-m", "mlcycle", "train"], {"MLCYCLE_MODEL_NAME": "a/b"}, None),
        (["-m", "pipelines", "train"], {"MLCYCLE_MODEL_NAME": "team:model"}, None),
        (
            ["-m", "mlcycle", "serve", "--port", "{port}"],
            {"MLCYCLE_SHUTDOWN_DELAY_S": "10", "MLCYCLE_SHUTDOWN_GRACE_S": "12"},
            "MLCYCLE_SHUTDOWN_GRACE_S (12) must be at least 13",
        ),
        (
            ["-m", "mlcycle", "serve", "--port", "{port}"],
            {"MLCYCLE_ADMIN_TOKEN": "short"},
            "MLCYCLE_ADMIN_TOKEN: must be at least 24 characters, got 5",
        ),
        (
            ["-m", "mlcycle", "serve", "--port", "{port}"],
            {"MLCYCLE_API_KEYS": "change-me-api-key-0123456789"},
            "MLCYCLE_API_KEYS: must not be a documented placeholder",
        ),
        (["-m", "mlcycle", "train"], {"MLCYCLE_SIGNING_KEY": "demo-key"}, "MLCYCLE_SIGNING_KEY"),
    ],
    ids=[
        "mlcycle-serve",
        "python-m-serving",
        "serve-web-setting",
        "mlcycle-drift",
        "python-m-monitoring",
        "mlcycle-train",
        "python-m-pipelines",
        "serve-cross-check",
        "serve-short-admin-token",
        "serve-placeholder-api-key",
        "train-placeholder-signing-key",
    ],
)
def test_a_bad_value_stops_the_command_at_start_up_naming_it(argv, env, named, tmp_path):
    argv = [a.replace("{port}", str(_free_port())) for a in argv]
    code, output, seconds = _run(argv, env, tmp_path)
    assert code != 0, output
    assert seconds < 30, f"took {seconds:.1f} s to refuse"
    assert "Traceback" not in output, output
    for name in env if named is None else [named]:
        assert f"error: {name}" in output, output
    assert len(output.strip().splitlines()) == 1, f"one line expected:\n{output}"
