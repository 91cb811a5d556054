"""The lifecycle loop through real processes: a served model, labelled traffic, the commands.

Concept-shifted traffic (same inputs, a new rule for the outcome) with its true labels sent to
`POST /labels` → `mlcycle retrain-on-drift` fine-tunes production on the labelled logged rows,
gates it on the most recent ones and promotes it; serving switches to it, and it beats the old
version on a fresh shifted holdout. On clean traffic nothing is promoted and the reason is
recorded. Each decision is an MLflow run linking the training run and the version.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import mlflow
import numpy as np
import pytest
import requests
from sklearn.metrics import roc_auc_score

from mlcycle.core.synthetic import TARGET, generate
from tests.helpers import Server, records, serving_version, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _labelled_traffic(url: str, frame, chunk: int = 50) -> dict:
    """POST `frame`'s inputs in requests of `chunk` rows, then their labels; the receipt."""
    labels = []
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start : start + chunk]
        rid = uuid.uuid4().hex
        body = {"dataframe_records": records(part.drop(columns=[TARGET]))}
        r = requests.post(
            f"{url}/invocations", json=body, headers={"X-Request-ID": rid}, timeout=30
        )
        assert r.status_code == 200, r.text
        labels += [
            {"request_id": rid, "row": i, "label": int(y)} for i, y in enumerate(part[TARGET])
        ]
    r = requests.post(f"{url}/labels", json=labels, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _loop(server: Server, *args: str) -> subprocess.CompletedProcess:
    env = dict(server.env, MLFLOW_DISABLE_TELEMETRY="true")
    cmd = [sys.executable, "-m", "mlcycle", "retrain-on-drift", "--min-labels", "500", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500)


def _decision_run(tracking_uri: str) -> mlflow.entities.Run:
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("monitoring").experiment_id],
        "tags.`mlcycle.job` = 'retrain-on-drift'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    assert runs, "no retrain-on-drift run recorded"
    return runs[0]


def _auc(name: str, version: str, holdout) -> float:
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    scores = np.asarray(model.predict(holdout.drop(columns=[TARGET])), dtype=float).ravel()
    return roc_auc_score(holdout[TARGET], scores)


def test_a_concept_shift_is_fine_tuned_promoted_and_served(store_copy, tmp_path):
    server = Server(store_copy, tmp_path)
    try:
        receipt = _labelled_traffic(server.url, generate(5000, seed=11, concept=1.0))
        assert receipt["stored"] == 5000 and receipt["unknown"] == 0
        done = _loop(server)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "promoted" in done.stdout and "live AUC below validation" in done.stdout
        client = mlflow.MlflowClient(store_copy.tracking_uri)
        new = str(client.get_model_version_by_alias(store_copy.model_name, "production").version)
        assert new != store_copy.version
        wait_until(lambda: serving_version(server.url) == new, 30, f"serving v{new}")
    finally:
        server.stop()
    holdout = generate(3000, seed=99, concept=1.0)
    old_auc = _auc(store_copy.model_name, store_copy.version, holdout)
    new_auc = _auc(store_copy.model_name, new, holdout)
    assert new_auc > old_auc + 0.05, (old_auc, new_auc)
    run = _decision_run(store_copy.tracking_uri)
    assert run.data.tags["mlcycle.decision"] == "promoted"
    assert run.data.tags["mlcycle.model_version"] == new
    training = client.get_run(run.data.tags["mlcycle.training_run_id"])
    assert training.data.tags["mlcycle.retrain_run_id"] == run.info.run_id
    version = client.get_model_version(store_copy.model_name, new)
    assert version.tags["mlcycle.retrain_run_id"] == run.info.run_id


def test_clean_traffic_promotes_nothing_and_says_why(store_copy, tmp_path):
    server = Server(store_copy, tmp_path)
    try:
        _labelled_traffic(server.url, generate(1500, seed=12))
        done = _loop(server)
    finally:
        server.stop()
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    assert "nothing to retrain" in done.stdout
    client = mlflow.MlflowClient(store_copy.tracking_uri)
    prod = client.get_model_version_by_alias(store_copy.model_name, "production").version
    assert str(prod) == store_copy.version
    run = _decision_run(store_copy.tracking_uri)
    assert run.data.tags["mlcycle.decision"] == "skipped"
    assert "nothing to retrain" in run.data.tags["mlcycle.reason"]
