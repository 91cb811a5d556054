"""The labelled reader: served rows of both log tables joined with their labels by
(request id, row), windows by time, versions, logs without the newer tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.core.labelled import read_labelled, read_labelled_inputs
from mlcycle.core.logdb import LogError
from mlcycle.core.prediction_log import build_batch, build_rows
from monitoring.synthlog import append_rows
from serving.predlog import open_store
from serving.predlog.labels import store_labels

NAMES = ("a",)


def _serve(url: str, request_id: str, predictions, ts: float, version="1", batch=False) -> None:
    preds = np.asarray(predictions, dtype=float)
    cols = {"a": np.arange(len(preds), dtype=float)}
    store = open_store(url)
    if batch:
        store.write([], [build_batch(request_id, "m", version, "run", NAMES, cols, preds, ts=ts)])
    else:
        store.write(build_rows(request_id, "m", version, "run", NAMES, cols, preds, ts=ts))
    store.close()


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'predictions.db'}"
    _serve(url, "r1", [0.1, 0.2, 0.3], ts=100.0)
    _serve(url, "b1", np.linspace(0, 1, 300), ts=200.0, batch=True)
    _serve(url, "r2", [0.9], ts=300.0, version="2")
    _serve(url, "other", [0.5], ts=150.0)  # another model below
    store = open_store(url)
    store.write(build_rows("x", "other-model", "1", "run", NAMES, {"a": [1.0]}, [0.4], ts=150.0))
    store.close()
    return url


def test_rows_and_batch_rows_get_their_own_labels(url: str) -> None:
    store_labels(url, [("r1", 2, 1), ("r1", 0, 0), ("b1", 0, 1), ("b1", 299, 0), ("r2", 0, 1)])
    frame = read_labelled(url, "m", 0, 1000)
    assert list(frame.columns) == ["ts", "model_version", "prediction", "label"]
    assert len(frame) == 3 + 300 + 1 + 1
    first = frame[frame.ts == 100.0]
    assert first.prediction.tolist() == [0.1, 0.2, 0.3]
    np.testing.assert_array_equal(first.label, [0.0, np.nan, 1.0])
    batch = frame[frame.ts == 200.0]
    np.testing.assert_allclose(batch.prediction, np.linspace(0, 1, 300))
    assert batch.label.iloc[0] == 1.0 and batch.label.iloc[299] == 0.0
    assert batch.label.iloc[1:299].isna().all()
    assert frame[frame.ts == 300.0].label.tolist() == [1.0]
    assert frame.ts.is_monotonic_increasing
    assert frame.dtypes["label"] == np.float64 and frame.dtypes["ts"] == np.float64


def test_labelled_inputs_are_the_labelled_rows_with_their_inputs(url: str) -> None:
    store_labels(url, [("r1", 2, 1), ("r1", 0, 0), ("b1", 7, 1), ("b1", 299, 0)])
    frame = read_labelled_inputs(url, "m", 0, 1000, ["a", "absent"])
    assert list(frame.columns) == ["a", "absent", "ts", "model_version", "label"]
    assert frame["a"].tolist() == [0.0, 2.0, 7.0, 299.0]  # row i of a request has a == i
    assert frame["label"].tolist() == [0, 1, 1, 0]
    assert frame["ts"].tolist() == [100.0, 100.0, 200.0, 200.0]
    assert frame["absent"].isna().all()
    assert len(read_labelled_inputs(url, "m", 250, 1000, ["a"])) == 0


def test_time_window_and_versions(url: str) -> None:
    store_labels(url, [("r2", 0, 1)])
    assert len(read_labelled(url, "m", 150, 300)) == 1 + 300  # end is exclusive
    assert read_labelled(url, "m", 0, 1000, versions=["2"]).model_version.tolist() == ["2"]
    assert read_labelled(url, "m", 0, 1000, versions=[]).empty
    assert len(read_labelled(url, "other-model", 0, 1000)) == 1


def test_a_request_cut_by_the_window_keeps_its_rows_positions(tmp_path: Path) -> None:
    path = tmp_path / "synth.db"  # synthlog: one request id, one ts per row
    append_rows(path, pd.DataFrame({"a": range(10)}), np.linspace(0, 0.9, 10), "m", "1", "r",
                ts=np.arange(10.0))  # fmt: skip
    with sqlite3.connect(path) as conn:
        (rid,) = conn.execute("SELECT DISTINCT request_id FROM predictions").fetchone()
    url = f"sqlite:///{path}"
    store_labels(url, [(rid, i, i % 2) for i in range(10)])
    frame = read_labelled(url, "m", 5, 10)
    np.testing.assert_allclose(frame.prediction, np.linspace(0.5, 0.9, 5))
    assert frame.label.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_a_log_from_before_labels_and_batches_reads_as_unlabelled(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, "
                     "request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
                     "inputs TEXT, prediction FLOAT)")  # fmt: skip
        conn.execute("INSERT INTO predictions (ts, request_id, model_name, model_version, "
                     "prediction) VALUES (5, 'r', 'm', '1', 0.25)")  # fmt: skip
    frame = read_labelled(f"sqlite:///{path}", "m", 0, 10)
    assert frame.prediction.tolist() == [0.25] and frame.label.isna().all()


def test_a_missing_log_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="no prediction log"):
        read_labelled(f"sqlite:///{tmp_path / 'none.db'}", "m", 0, 1)
