"""The drift job against a real MLflow SQLite store (a copy of the session's trained one) and a
real prediction log: clean rows -> exit 0, shifted rows -> exit 1 naming the shifted columns, report
files, drift.prom and the MLflow `monitoring` run; could-not-judge cases -> exit 2;
the same with the report in its worker process (MLCYCLE_DRIFT_WORKER=on)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlcycle.cli import app
from monitoring.synthlog import append_rows

pytestmark = pytest.mark.slow
SHIFTED = ["age", "income", "employment_years", "loan_amount"]


@pytest.fixture
def env(store_copy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Settings for the drift job in `tmp_path`, on a copy of the trained store (the job logs
    its `monitoring` runs there), and the model's reference sample."""
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    monkeypatch.setenv("MLCYCLE_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("MLCYCLE_PREDICTION_LOG_URL", f"sqlite:///{tmp_path / 'log.db'}")
    monkeypatch.delenv("MLCYCLE_MODEL_NAME", raising=False)
    client = mlflow.MlflowClient(store_copy.tracking_uri)
    mv = client.get_model_version(store_copy.model_name, store_copy.version)
    path = mlflow.artifacts.download_artifacts(
        mv.tags["mlcycle.reference_uri"],
        dst_path=str(tmp_path / "ref"),
        tracking_uri=store_copy.tracking_uri,
    )
    reference = pd.read_parquet(path)
    inputs = reference.drop(columns=["default", "prediction"])
    return {"store": store_copy, "root": tmp_path, "ref": reference, "inputs": inputs}


def _log(env: dict, frame: pd.DataFrame, preds, version: str | None = None, run_id=None) -> None:
    store = env["store"]
    append_rows(
        env["root"] / "log.db",
        frame,
        preds,
        store.model_name,
        version or store.version,
        run_id or store.run_id,
    )


def _clean(env: dict, n: int = 1000, seed: int = 1) -> tuple[pd.DataFrame, pd.Series]:
    idx = env["ref"].sample(n, replace=True, random_state=seed).index
    return env["inputs"].loc[idx], env["ref"]["prediction"].loc[idx]


def _drift(*args: str):
    return CliRunner().invoke(app, ["drift", *args])


def test_clean_then_shifted_traffic(env: dict) -> None:
    frame, preds = _clean(env)
    _log(env, frame, preds)
    result = _drift("--last", "1000")
    assert result.exit_code == 0, result.output
    assert "no drift" in result.output
    reports = env["root"] / "reports"
    first = json.loads((reports / "latest.json").read_text())
    assert first["dataset_drift"] is False and first["drifted_columns"] == []
    assert first["rows"] == {
        "window": 1000,
        "current": 1000,
        "reference": len(env["ref"]),
        "reference_total": len(env["ref"]),
    }

    shifted, preds = _clean(env, seed=2)
    for col in SHIFTED:
        shifted[col] = shifted[col] + 2 * shifted[col].std()
    _log(env, shifted, preds)
    result = _drift("--last", "1000")
    assert result.exit_code == 1, result.output
    summary = json.loads((reports / "latest.json").read_text())
    assert summary["dataset_drift"] is True and summary["verdict"] == "drift"
    assert summary["drifted_columns"] == SHIFTED
    assert all(summary["columns"][c]["drifted"] for c in SHIFTED)
    assert summary["columns"]["age"]["method"].startswith("Wasserstein")
    assert (reports / summary["html"]).stat().st_size > 10_000
    assert (reports / "latest.html").read_bytes() == (reports / summary["html"]).read_bytes()
    index = json.loads((reports / "index.json").read_text())["runs"]
    assert [r["id"] for r in index] == [summary["id"], first["id"]]
    prom = (reports / "drift.prom").read_text()
    labels = f'model_name="credit-risk",model_version="{summary["model_version"]}"'
    assert f"mlcycle_drift_detected{{{labels}}} 1" in prom

    run = mlflow.MlflowClient().get_run(summary["mlflow_run_id"])
    experiment = mlflow.MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == "monitoring"
    assert run.data.metrics["dataset_drift"] == 1.0
    assert run.data.metrics["drift_share"] == pytest.approx(summary["drift_share"])
    assert run.data.metrics["drift_score.age"] > 0.5
    assert run.data.tags["mlcycle.model_version"] == env["store"].version
    assert run.data.tags["mlcycle.window"] == "last 1000 rows"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "drift")}
    assert artifacts == {f"drift/{summary['html']}", f"drift/{summary['json']}"}


def test_sampled_window_keeps_the_verdict(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    frame, preds = _clean(env, n=3000, seed=3)
    for col in SHIFTED:
        frame[col] = frame[col] + 2 * frame[col].std()
    _log(env, frame, preds)
    monkeypatch.setenv("MLCYCLE_DRIFT_SAMPLE_ROWS", "1200")
    monkeypatch.setenv("MLCYCLE_DRIFT_WORKER", "on")  # the report in its own process
    result = _drift("--since", "1h", "--json")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["sampled"] is True and summary["rows"]["window"] == 3000
    assert 1100 <= summary["rows"]["current"] <= 1300  # hash sample of ~1200
    assert summary["drifted_columns"] == SHIFTED
    assert summary["columns"]["age"]["near_threshold"] is False  # far above 0.1
    reports = env["root"] / "reports"
    assert (reports / summary["html"]).read_bytes() == (reports / "latest.html").read_bytes()
    assert not list(reports.glob(".report.*"))  # the worker's HTML was renamed, not copied


def test_could_not_judge_with_the_report_worker_on(
    env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLCYCLE_DRIFT_WORKER", "on")  # started first, stopped unused
    result = _drift("--model-version", "999")
    assert result.exit_code == 2 and "has no version '999'" in result.output
    assert "Traceback" not in result.output


def test_could_not_judge_cases_exit_2(env: dict) -> None:
    result = _drift("--last", "1000")
    assert result.exit_code == 2 and "no prediction log" in result.output

    frame, preds = _clean(env, n=150)
    _log(env, frame, preds)
    result = _drift("--last", "1000")
    assert result.exit_code == 2 and "too few rows to judge drift: 150 logged" in result.output

    result = _drift("--model-version", "999")
    assert result.exit_code == 2 and "has no version '999'" in result.output

    # an explicit --last N below MLCYCLE_DRIFT_MIN_ROWS asks for N rows
    result = _drift("--last", "150")
    assert result.exit_code == 0, result.output

    # another store's "credit-risk v1" sharing the log is left out, and named when it matters
    _log(env, *_clean(env, n=500), run_id="some-other-run")
    result = _drift("--last", "500")
    assert result.exit_code == 2 and "150 logged" in result.output
    assert "500 rows of that name and version come from other runs" in result.output
    assert "Traceback" not in result.output


def test_default_version_is_the_one_the_log_shows_serving(env: dict) -> None:
    """Production in the registry may not be what serves (a refused, unsigned version): the
    check judges the version that scored the newest logged row."""
    frame, preds = _clean(env, n=300)
    _log(env, frame, preds)
    assert _drift("--last", "300").exit_code in (0, 1)  # judged
    _log(env, frame.head(5), preds.head(5), version="77")
    result = _drift("--last", "300")
    assert result.exit_code == 2 and "has no version '77'" in result.output


def test_hashed_and_dropped_log_columns(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hashed categorical is still judged (the reference is hashed alike), a dropped column
    is named as not judged, and the raw categories never reach the log."""
    from mlcycle.core.prediction_log import LogPrivacy

    key = "drift-hash-key-0123456789abcdef"
    monkeypatch.setenv("MLCYCLE_LOG_HASH_COLUMNS", "employment_type")
    monkeypatch.setenv("MLCYCLE_LOG_DROP_COLUMNS", "age")
    monkeypatch.setenv("MLCYCLE_LOG_HASH_KEY", key)
    privacy = LogPrivacy(("employment_type",), ("age",), key)
    frame, preds = _clean(env)
    _log(env, privacy.frame(frame), preds)
    result = _drift("--last", "1000")
    assert result.exit_code == 0, result.output
    assert "not judged (left out of the log): age" in result.output
    reports = env["root"] / "reports"
    summary = json.loads((reports / "latest.json").read_text())
    assert summary["columns_not_judged"] == ["age"] and "age" not in summary["columns"]
    assert summary["columns_hashed"] == ["employment_type"]
    assert summary["columns"]["employment_type"]["drifted"] is False
    assert "Not judged" in (reports / summary["html"]).read_text()

    shifted, preds = _clean(env, seed=2)
    shifted["employment_type"] = shifted["employment_type"].iloc[0]  # one category only
    _log(env, privacy.frame(shifted), preds)
    result = _drift("--last", "1000")
    summary = json.loads((reports / "latest.json").read_text())
    assert summary["columns"]["employment_type"]["drifted"] is True, result.output
    logged = (env["root"] / "log.db").read_bytes()
    for category in set(frame["employment_type"]):
        assert f'"{category}"'.encode() not in logged
