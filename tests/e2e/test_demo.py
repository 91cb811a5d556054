"""The README's run command: `mlcycle demo` goes through the whole lifecycle on its own.

In: a fresh SQLite MLflow store and state folder in tmp. Out: a trained, promoted model, a served
sample request, clean then drifted traffic, and two drift runs with the expected verdicts. The
demo's output goes to a file, so a demo that hangs fails with its tail instead of a bare timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, kill_tree, start

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_trains_serves_and_flags_drift(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLCYCLE_HOME": str(tmp_path),
    }
    for name in ("MLCYCLE_REPORTS_DIR", "MLCYCLE_PREDICTION_LOG_URL", "MLCYCLE_API_KEYS"):
        env.pop(name, None)
    args = ["--port", str(free_port()), "--epochs", "2", "--duration", "4", "--rate", "50"]
    cmd = [sys.executable, "-m", "mlcycle", "demo", *args, "--batch", "10", "--no-keep-serving"]
    output = tmp_path / "demo.log"
    demo = start(cmd, env, output, cwd=REPO)
    try:
        code = demo.wait(timeout=420)  # ~70 s on 2 cores; under pytest's 600 s
    except subprocess.TimeoutExpired:
        kill_tree(demo)
        pytest.fail(f"the demo hung; its output ends with:\n{output.read_text()[-4000:]}")
    text = output.read_text()
    assert code == 0, text[-4000:]
    assert '"probability"' in text, "the sample request's answer is printed"
    reports = tmp_path / ".mlcycle" / "reports"
    runs = json.loads((reports / "index.json").read_text())["runs"]  # newest first
    assert [r["dataset_drift"] for r in runs] == [True, False], runs
    assert (reports / "latest.html").is_file()
    assert "ALERT" in text, "live AUC falls under the concept shift"
    assert "serving v2 (was v1)" in text, "retrain-on-drift promoted v2 and serving follows it"
    live = json.loads((reports / "performance-latest.json").read_text())["versions"]
    auc = {str(v["version"]): v["overall"]["auc"] for v in live}
    assert auc["2"] > auc["1"] + 0.1, auc
    left = subprocess.run(
        ["pgrep", "-f", "--", f"--port {args[1]}"], capture_output=True, text=True
    )
    assert not left.stdout.strip(), f"the demo left its server running: {left.stdout}"
