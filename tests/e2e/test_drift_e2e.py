"""End to end: trained model -> real `mlcycle serve` -> `mlcycle simulate --traffic` ->
`mlcycle drift`: 2,000 undrifted rows -> exit 0 and no dataset drift; 2,000 rows with the
generator's drift knob at 1.0 -> exit 1 naming the shifted columns; reports, the MLflow
`monitoring` run and the drift gauges on serving's /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import requests

from tests.helpers import MLCYCLE_SERVE, Server

# serial: it paces its traffic (40 requests in 1 s), a rate a loaded machine can miss
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]


@pytest.fixture
def served(store_copy, tmp_path: Path) -> Iterator[dict]:
    """`mlcycle serve` (one worker) on a copy of the trained store: the drift job logs its
    `monitoring` runs there."""
    server = Server(
        store_copy,
        tmp_path,
        workers=1,
        command=MLCYCLE_SERVE,
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        MLCYCLE_API_KEYS=None,
    )
    try:
        yield {"url": server.url, "env": server.env, "root": tmp_path, "store": store_copy}
    finally:
        server.stop(timeout=20)


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
