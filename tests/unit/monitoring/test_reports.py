"""Report outputs: index, drift.prom (Prometheus text format), MLflow metric names."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitoring.reports import (
    atomic_write,
    metric_key,
    mlflow_metrics,
    prom_text,
    read_index,
    update_index,
    write_prom,
)


def _summary(rid: str, version: str, drift: bool, share: float, ts: float) -> dict:
    return {
        "id": rid,
        "created_at": "x",
        "timestamp": ts,
        "model_name": "credit-risk",
        "model_version": version,
        "verdict": "drift" if drift else "no_drift",
        "dataset_drift": drift,
        "drift_share": share,
        "drift_share_threshold": 0.25,
        "drifted_columns": ["age"] if drift else [],
        "html": f"{rid}.html",
        "json": f"{rid}.json",
        "window": {"kind": "last", "description": "last 10 rows"},
        "rows": {"window": 10, "current": 10, "reference": 20},
        "columns": {"age": {"score": 0.5}, "home": {"score": None}},
        "prediction_drift": {"score": 0.2, "drifted": True},
    }


def test_index_is_newest_first_and_bounded(tmp_path: Path) -> None:
    for i in range(5):
        update_index(tmp_path, _summary(f"r{i}", "1", False, 0.0, i), keep=3)
    runs = read_index(tmp_path)
    assert [r["id"] for r in runs] == ["r4", "r3", "r2"]
    assert runs[0]["window"] == "last 10 rows" and runs[0]["html"] == "r4.html"


def test_read_index_survives_a_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_text("{not json")
    assert read_index(tmp_path) == []


def test_drift_prom_has_newest_check_per_version(tmp_path: Path) -> None:
    update_index(tmp_path, _summary("a", "1", True, 0.5, 100.0), keep=10)
    update_index(tmp_path, _summary("b", "1", False, 0.1, 200.0), keep=10)
    runs = update_index(tmp_path, _summary("c", "2", True, 0.4, 300.0), keep=10)
    path = write_prom(tmp_path, runs)
    samples = {
        (s.name, s.labels["model_version"]): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }
    assert samples[("mlcycle_drift_detected", "1")] == 0  # the newer check of v1 wins
    assert samples[("mlcycle_drift_share", "1")] == 0.1
    assert samples[("mlcycle_drift_detected", "2")] == 1
    assert samples[("mlcycle_drift_last_run_timestamp_seconds", "2")] == 300.0
    assert "# TYPE mlcycle_drift_share gauge" in path.read_text()
    assert not list(tmp_path.glob(".drift.prom.*"))  # no temporary files left behind


def test_prom_labels_are_escaped() -> None:
    text = prom_text([_summary("a", 'v"1', True, 0.5, 1.0) | {"model_name": "a\\b"}])
    families = list(text_string_to_metric_families(text))
    assert families[0].samples[0].labels == {"model_name": "a\\b", "model_version": 'v"1'}


def test_atomic_write_replaces_content(tmp_path: Path) -> None:
    atomic_write(tmp_path / "f.txt", "one")
    atomic_write(tmp_path / "f.txt", "two")
    assert (tmp_path / "f.txt").read_text() == "two"


def test_mlflow_metrics_names() -> None:
    metrics = mlflow_metrics(_summary("a", "1", True, 0.5, 1.0))
    assert metrics["drift_share"] == 0.5 and metrics["dataset_drift"] == 1.0
    assert metrics["drift_score.age"] == 0.5 and "drift_score.home" not in metrics
    assert metrics["prediction_drift"] == 1.0
    assert metric_key("drift_score", "a:b(c)") == "drift_score.a_b_c_"


def test_concurrent_checks_keep_every_index_entry(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    def add(i):
        update_index(tmp_path, _summary(f"c{i}", "1", False, 0.0, float(i)), keep=100)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(add, range(40)))
    ids = {r["id"] for r in read_index(tmp_path)}
    assert ids == {f"c{i}" for i in range(40)}
