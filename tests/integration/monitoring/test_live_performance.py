"""Labels to live performance end to end, with real parts: rows served into a SQLite log by
serving's store, labels stored by the labels store, read back joined, evaluated, written as
files and logged to a real MLflow SQLite store (experiment `monitoring`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest

from mlcycle.core.labelled import read_labelled
from mlcycle.core.prediction_log import build_batch, build_rows
from monitoring.performance import evaluate, fit_calibrator
from monitoring.perfreport import build_summary, publish
from serving.predlog import open_store
from serving.predlog.labels import store_labels

pytestmark = pytest.mark.slow
NAMES = ("x",)


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[str]:
    """A fresh MLflow SQLite store as the tracking URI (the previous one restored after)."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    client.create_experiment("monitoring", artifact_location=(tmp_path / "artifacts").as_uri())
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def test_served_rows_and_late_labels_become_live_performance(tmp_path: Path, tracking: str):
    rng = np.random.default_rng(0)
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    store = open_store(url)
    truth = []
    for i in range(200):  # 200 small requests of 5 rows, over two hours, version 1
        p = rng.random(5)
        rows = build_rows(f"r{i}", "credit-risk", "1", "run", NAMES, {"x": p}, p, ts=i * 36.0)
        store.write(rows)
        truth += [(f"r{i}", j, int(rng.random() < p[j])) for j in range(5)]
    p = rng.random(400)  # one large request of version 2
    batch = build_batch("big", "credit-risk", "2", "run", NAMES, {"x": p}, p, ts=3_700.0)
    store.write([], [batch])
    store.close()
    truth += [("big", j, int(rng.random() < p[j])) for j in range(400)]
    receipt = store_labels(url, truth[::2] + [("unknown", 0, 1)])  # half the labels so far
    assert (receipt.stored, len(receipt.unknown)) == (700, 1)

    frame = read_labelled(url, "credit-risk", 0, 7_200)
    assert len(frame) == 1_400 and frame.label.notna().sum() == 700
    holdout = rng.random(2_000)
    calibrators = {"1": fit_calibrator(holdout, rng.random(2_000) < holdout)}
    results = evaluate(
        frame.ts, frame.model_version, frame.prediction, frame.label, 3_600,
        calibrators=calibrators, validation_auc={"1": 0.83, "2": 0.99},
    )  # fmt: skip
    summary = build_summary("credit-risk", results, 0, 7_200, 3_600, 0.05, 100, now=7_300.0)
    html_path, json_path, _ = publish(tmp_path / "reports", summary, experiment="monitoring")

    data = json.loads(json_path.read_text())
    assert data["alerts"] == ["2"]  # v2's live AUC (~0.8) is far below 0.99
    one = data["versions"][0]
    assert one["calibration"] == "isotonic" and one["overall"]["label_coverage"] == 0.5
    client = mlflow.MlflowClient(tracking)
    run = client.get_run(data["mlflow_run_ids"]["1"])
    assert run.data.tags["mlcycle.kind"] == "performance"
    assert run.data.tags["mlcycle.model_version"] == "1"
    assert run.data.metrics["live_auc"] == pytest.approx(one["overall"]["auc"])
    history = client.get_metric_history(run.info.run_id, "window_auc")
    assert [m.step for m in history] == [0, 1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "performance")}
    assert artifacts == {f"performance/{html_path.name}", f"performance/{json_path.name}"}
    assert run.info.status == "FINISHED"

    late = store_labels(url, truth)  # the other half arrives; the first half is unchanged
    assert (late.stored, late.unchanged) == (700, 700)
    assert read_labelled(url, "credit-risk", 0, 7_200).label.notna().all()


def test_the_check_compares_live_auc_with_the_registry(store_copy, tmp_path: Path) -> None:
    # The check logs its runs to the `monitoring` experiment: on a copy of the store.
    from monitoring.perfjob import check, load_baselines
    from monitoring.reference import read_sample

    client = mlflow.MlflowClient(store_copy.tracking_uri)
    mv = client.get_model_version(store_copy.model_name, store_copy.version)
    reference = read_sample(mv.tags["mlcycle.reference_uri"], "the reference").head(2_000)
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    names = tuple(c for c in reference.columns if c not in ("default", "prediction"))
    columns = {c: reference[c].tolist() for c in names}
    version, model = store_copy.version, store_copy.model_name
    store = open_store(url)
    store.write(build_rows("good", model, version, store_copy.run_id, names, columns,
                           reference["prediction"], ts=1_000.0))  # fmt: skip
    store.close()
    labels = reference["default"].tolist()
    store_labels(url, [("good", i, y) for i, y in enumerate(labels)])

    baseline = load_baselines(model, [version, "99"])
    assert baseline[version].validation_auc == pytest.approx(float(mv.tags["mlcycle.val_auc"]))
    assert baseline[version].calibrator.method.startswith("isotonic on the training reference")
    assert baseline["99"].validation_auc is None

    reports = tmp_path / "reports"
    fine = check(url, model, 0, 2_000, 3_600, reports, now=2_000.0)
    assert fine.exit_code == 0, fine.message
    assert f"{model} v{version}: live AUC" in fine.message and "ok" in fine.message

    flipped = [("good", i, 1 - y) for i, y in enumerate(labels)]  # the rule turned around
    store_labels(url, flipped)
    alert = check(url, model, 0, 2_000, 3_600, reports, now=2_100.0)
    assert alert.exit_code == 1 and alert.summary["alerts"] == [version]
    assert (reports / "performance.prom").read_text().count("mlcycle_live_auc{") == 1
    assert check(url, model, 5_000, 6_000, 3_600, reports).exit_code == 2  # nothing served
    missing = check(f"sqlite:///{tmp_path / 'none.db'}", model, 0, 1, 3_600, reports)
    assert missing.exit_code == 2 and "no prediction log" in missing.message
