"""The labels store on a real SQLite log: idempotent upserts, corrections, unknown rows, invalid
entries (none of which fail the batch), batches' rows, CSV files, and a log that is missing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mlcycle.core.prediction_log import build_batch, build_rows
from serving.predlog import open_store
from serving.predlog.labels import (
    LabelError,
    LabelStore,
    load_csv,
    parse_label,
    read_csv,
    store_labels,
)

NAMES = ("a", "b")


def _columns(n: int) -> dict:
    return {"a": np.arange(n, dtype=float), "b": np.array(["x"] * n, dtype=object)}


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    """A log written by serving's store: request `r1` (3 rows), `r2` (1 row), batch `big`
    (300 rows)."""
    store = open_store(f"sqlite:///{tmp_path / 'log' / 'predictions.db'}")
    rows = build_rows("r1", "m", "1", "run", NAMES, _columns(3), np.full(3, 0.5), ts=10.0)
    rows += build_rows("r2", "m", "1", "run", NAMES, _columns(1), np.full(1, 0.5), ts=11.0)
    batch = build_batch("big", "m", "2", "run", NAMES, _columns(300), np.full(300, 0.1), ts=12.0)
    store.write(rows, [batch])
    store.close()
    return f"sqlite:///{tmp_path / 'log' / 'predictions.db'}"


def _table(url: str) -> dict:
    with sqlite3.connect(url[len("sqlite:///") :]) as conn:
        return {
            (rid, row): (label, ts)
            for rid, row, label, ts in conn.execute(
                'SELECT request_id, "row", label, ts FROM labels'
            )
        }


def test_labels_are_stored_and_a_resend_changes_nothing(log_url: str) -> None:
    batch = [
        {"request_id": "r1", "row": 0, "label": 1},
        {"request_id": "r1", "row": 2, "label": 0},
        {"request_id": "r2", "label": True},  # row defaults to 0
    ]
    first = store_labels(log_url, batch, now=100.0)
    assert (first.received, first.stored, first.updated, first.unchanged) == (3, 3, 0, 0)
    again = store_labels(log_url, batch, now=200.0)
    assert (again.stored, again.updated, again.unchanged) == (0, 0, 3)
    assert _table(log_url) == {
        ("r1", 0): (1, 100.0),
        ("r1", 2): (0, 100.0),
        ("r2", 0): (1, 100.0),
    }  # the repeat kept the first receipt's time


def test_a_different_label_for_a_key_replaces_the_old_one(log_url: str) -> None:
    store_labels(log_url, [("r1", 1, 0)], now=100.0)
    receipt = store_labels(log_url, [("r1", 1, 1)], now=300.0)
    assert (receipt.stored, receipt.updated) == (0, 1)
    assert _table(log_url) == {("r1", 1): (1, 300.0)}


def test_within_a_batch_the_last_entry_for_a_key_wins(log_url: str) -> None:
    batch = [("r1", 0, 1), ("r1", 0, 0), ("r1", 0, 1), ("r1", 1, 0)]
    receipt = store_labels(log_url, batch, now=1.0)
    assert (receipt.received, receipt.duplicates, receipt.stored) == (4, 2, 2)
    assert {k: v[0] for k, v in _table(log_url).items()} == {("r1", 0): 1, ("r1", 1): 0}


def test_unknown_rows_are_counted_and_not_stored_and_the_rest_is(log_url: str) -> None:
    batch = [
        {"request_id": "nope", "row": 0, "label": 1},
        {"request_id": "r1", "row": 3, "label": 1},  # r1 has rows 0..2
        {"request_id": "r1", "row": 1, "label": 1},
        {"request_id": "big", "row": 299, "label": 0},  # the batch's last row
        {"request_id": "big", "row": 300, "label": 0},
    ]
    receipt = store_labels(log_url, batch)
    assert receipt.stored == 2
    assert sorted(receipt.unknown) == [("big", 300), ("nope", 0), ("r1", 3)]
    assert set(_table(log_url)) == {("r1", 1), ("big", 299)}
    body = receipt.as_dict()
    assert body["unknown"] == 3 and {"request_id": "nope", "row": 0} in body["unknown_ids"]


def test_invalid_entries_are_reported_by_position_and_the_rest_is_stored(log_url: str) -> None:
    batch = [
        {"request_id": "r1", "row": 0, "label": 2},
        {"request_id": "r1", "row": -1, "label": 1},
        {"request_id": "", "label": 1},
        {"row": 0, "label": 1},
        {"request_id": "r1", "row": 1.5, "label": 1},
        {"request_id": "r1", "lable": 1},
        "r1,0,1",
        {"request_id": "r1", "row": "2", "label": "false"},  # text, as from a CSV: fine
    ]
    receipt = store_labels(log_url, batch)
    assert [e.index for e in receipt.invalid] == [0, 1, 2, 3, 4, 5, 6]
    assert "`label` must be 0 or 1" in receipt.invalid[0].reason
    assert "`row` must be an integer >= 0" in receipt.invalid[1].reason
    assert "unknown field(s) lable" in receipt.invalid[5].reason
    assert receipt.stored == 1 and _table(log_url)[("r1", 2)][0] == 0
    assert receipt.line().endswith("0 unknown, 7 invalid")


def test_parse_label_accepts_the_documented_forms() -> None:
    assert parse_label({"request_id": "x", "label": "TRUE"}) == parse_label(("x", "", 1))
    assert parse_label({"request_id": "x", "row": np.int64(4), "label": np.int64(0)}).row == 4
    with pytest.raises(ValueError, match="longer than"):
        parse_label({"request_id": "x" * 201, "label": 1})


def test_large_batches_go_in_several_transactions_with_one_receipt(log_url: str) -> None:
    store = LabelStore(log_url, chunk=2)
    try:
        batch = [("big", i, i % 2) for i in range(7)] + [("nope", 0, 1)]
        receipt = store.store(batch)
    finally:
        store.close()
    assert (receipt.received, receipt.stored, len(receipt.unknown)) == (8, 7, 1)
    assert len(_table(log_url)) == 7


def test_a_missing_log_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "none" / "predictions.db"
    with pytest.raises(LabelError, match="no prediction log at"):
        store_labels(f"sqlite:///{path}", [("r", 0, 1)])
    assert not path.exists()


def test_an_old_log_gets_the_labels_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # `predictions` as logs had it before labels
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, "
                     "request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
                     "inputs TEXT, prediction FLOAT)")  # fmt: skip
        conn.execute("INSERT INTO predictions (ts, request_id, prediction) VALUES (1, 'r', 0.5)")
    receipt = store_labels(f"sqlite:///{path}", [("r", 0, 1)])
    assert receipt.stored == 1


def test_csv_files_with_and_without_row(tmp_path: Path, log_url: str) -> None:
    with_row = tmp_path / "with.csv"
    with_row.write_text("request_id,row,label,note\nr1,0,1,x\nr1,1,0,\nnope,0,1,\nr1,2,maybe,\n")
    receipt = load_csv(log_url, with_row)
    assert (receipt.received, receipt.stored, len(receipt.unknown)) == (4, 2, 1)
    assert receipt.invalid[0].index == 3
    without_row = tmp_path / "without.csv"
    without_row.write_text("\ufefflabel, request_id\n1,r2\n")  # BOM, spaces, another order
    assert read_csv(without_row) == [{"label": "1", "request_id": "r2"}]
    assert load_csv(log_url, without_row).stored == 1


def test_csv_errors_say_what_is_wrong(tmp_path: Path, log_url: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,row,outcome\nr1,0,1\n")
    with pytest.raises(LabelError, match="needs column\\(s\\) request_id, label"):
        load_csv(log_url, bad)
    with pytest.raises(LabelError, match="cannot read labels from"):
        load_csv(log_url, tmp_path / "missing.csv")
