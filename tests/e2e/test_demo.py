"""The README's run command: `mlcycle demo` goes through the whole lifecycle on its own.

In: a fresh SQLite MLflow store and state folder in tmp. Out: a trained, promoted model, a served
sample request, clean then drifted traffic, and two drift runs with the expected verdicts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_trains_serves_and_flags_drift(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLCYCLE_HOME": str(tmp_path),
    }
    for name in ("MLCYCLE_REPORTS_DIR", "MLCYCLE_PREDICTION_LOG_URL", "MLCYCLE_API_KEYS"):
        env.pop(name, None)
    args = ["--port", str(port), "--epochs", "2", "--duration", "4", "--rate", "50"]
    out = subprocess.run(
        [sys.executable, "-m", "mlcycle", "demo", *args, "--batch", "10", "--no-keep-serving"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert '"probability"' in out.stdout, "the sample request's answer is printed"
    reports = tmp_path / ".mlcycle" / "reports"
    runs = json.loads((reports / "index.json").read_text())["runs"]  # newest first
    assert [r["dataset_drift"] for r in runs] == [True, False], runs
    assert (reports / "latest.html").is_file()
