"""End to end: trained model -> real `mlcycle serve` -> `mlcycle simulate --traffic` ->
`mlcycle drift`: 2,000 undrifted rows -> exit 0 and no dataset drift; 2,000 rows with the
generator's drift knob at 1.0 -> exit 1 naming the shifted columns; reports, the MLflow
`monitoring` run and the drift gauges on serving's /metrics."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(trained_store, tmp_path: Path) -> Iterator[dict]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MLCYCLE_HOME": str(tmp_path),
        "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{tmp_path / 'predictions.db'}",
        "MLCYCLE_REPORTS_DIR": str(tmp_path / "reports"),
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("MLCYCLE_API_KEYS", None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcycle", "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            time.sleep(0.5)
        else:
            pytest.fail(
                "server never became ready: " + (tmp_path / "serve.log").read_text()[-2000:]
            )
        yield {"url": url, "env": env, "root": tmp_path, "store": trained_store}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlcycle", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _traffic(served: dict, drift: float, seed: int) -> None:
    # 40 requests x 50 rows = 2,000 rows
    proc = _run(
        [
            "simulate",
            "--traffic",
            "--url",
            served["url"],
            "--drift",
            str(drift),
            "--rate",
            "40",
            "--duration",
            "1s",
            "--batch",
            "50",
            "--seed",
            str(seed),
        ],
        served["env"],
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok 40, failed 0" in proc.stdout, proc.stdout


def test_drift_appears_with_drifted_traffic(served: dict) -> None:
    reports = served["root"] / "reports"
    _traffic(served, 0.0, seed=5)
    clean = _run(["drift", "--last", "2000"], served["env"])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    first = json.loads((reports / "latest.json").read_text())
    assert first["dataset_drift"] is False and first["rows"]["window"] == 2000

    _traffic(served, 1.0, seed=6)
    drifted = _run(["drift", "--last", "2000"], served["env"])
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    summary = json.loads((reports / "latest.json").read_text())
    assert summary["dataset_drift"] is True
    # the generator's knob moves these the most (see pipelines/data.py)
    for column in ("credit_utilization", "debt_to_income", "num_late_payments_12m", "income"):
        assert column in summary["drifted_columns"] and column in drifted.stdout
    assert "loan_term_months" not in summary["drifted_columns"]  # the knob leaves it alone
    assert (reports / summary["html"]).exists() and (reports / first["html"]).exists()

    client = mlflow.MlflowClient(served["store"].tracking_uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.metrics["dataset_drift"] == 1.0 and run.data.metrics["drift_share"] > 0.25
    assert run.data.tags["mlcycle.model_version"] == served["store"].version

    metrics = requests.get(f"{served['url']}/metrics", timeout=10).text
    lines = [x for x in metrics.splitlines() if x.startswith("mlcycle_drift_detected{")]
    assert lines and lines[0].endswith(" 1"), lines
