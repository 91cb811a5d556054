"""Live-performance outputs: the JSON summary, the HTML page, performance.prom (parsed by the
Prometheus client's own parser) and the MLflow metrics of a version's run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring.performance import evaluate
from monitoring.perfreport import (
    LATEST,
    PROM,
    build_summary,
    mlflow_metrics,
    prom_text,
    publish,
    write_performance,
)


@pytest.fixture
def summary() -> dict:
    """Two versions over two hours: v1 labelled (AUC ~0.83 vs validation 0.95: alert),
    v2 with 20 labels (fewer than `min_labelled`)."""
    rng = np.random.default_rng(0)
    n = 3_000
    ts = rng.random(n) * 7_200
    versions = np.where(np.arange(n) < 2_000, "1", "2")
    p = rng.random(n)
    labels = (rng.random(n) < p).astype(float)
    labels[2_020:] = np.nan
    results = evaluate(ts, versions, p, labels, 3_600, validation_auc={"1": 0.95, "2": 0.8})
    return build_summary('credit "risk"', results, 0, 7_200, 3_600, 0.05, 100, now=10_000.0)


def _samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("model_version"))] = sample.value
            assert sample.labels["model_name"] == 'credit "risk"'  # escaped and read back
    return found


def test_prom_is_parseable_and_holds_the_gauges(summary: dict) -> None:
    got = _samples(prom_text(summary))
    one = summary["versions"][0]["overall"]
    assert got[("mlcycle_live_auc", "1")] == pytest.approx(one["auc"])
    assert ("mlcycle_live_auc", "2") not in got  # 20 labels < min_labelled
    assert got[("mlcycle_estimated_auc", "2")] == pytest.approx(
        summary["versions"][1]["overall"]["estimated_auc"]
    )
    assert got[("mlcycle_validation_auc", "1")] == 0.95
    assert got[("mlcycle_label_coverage", "2")] == pytest.approx(20 / 1_000)
    assert got[("mlcycle_performance_last_run_timestamp_seconds", "1")] == 10_000.0
    assert summary["alerts"] == ["1"]


def test_files_are_written_and_latest_copies_match(tmp_path: Path, summary: dict) -> None:
    html_path, json_path, prom_path = publish(tmp_path, summary, experiment=None)
    data = json.loads(json_path.read_text())
    assert data["kind"] == "performance" and data["mlflow_run_ids"] == {}
    assert [v["version"] for v in data["versions"]] == ["1", "2"]
    assert len(data["versions"][0]["windows"]) == 2
    assert len(data["versions"][0]["overall"]["reliability"]) == 10
    assert (tmp_path / f"{LATEST}.json").read_text() == json_path.read_text()
    page = html_path.read_text()
    assert (tmp_path / f"{LATEST}.html").read_text() == page
    assert "<h2>Version 1 <span class='alert'>" in page and "<h2>Version 2</h2>" in page
    assert page.count("<svg") == 4 and "credit &quot;risk&quot;" in page
    assert prom_path == tmp_path / PROM
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    write_performance(tmp_path, summary)  # rewriting is fine


def test_mlflow_metrics_name_range_and_window_figures(summary: dict) -> None:
    metrics = mlflow_metrics(summary["versions"][0])
    keys = {k for k, _, _, _ in metrics}
    assert {"live_auc", "live_estimated_auc", "live_label_coverage", "validation_auc"} <= keys
    windows = [(step, ts) for k, _, step, ts in metrics if k == "window_auc"]
    assert windows == [(0, 0), (1, 3_600_000)]
    assert ("alert", 1.0) in {(k, v) for k, v, _, _ in metrics}
