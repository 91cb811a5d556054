"""The prediction-log contract round-trips (Hypothesis): what serving encodes, readers decode.

Rows (`build_rows` -> `decode_inputs`) and batches (`build_batch` -> `decode_batch`) give back
every input value and prediction, missing values included, and the two encodings of the same
rows decode to the same values; the SQLite DDL compiled from the tables holds them. Labels:
any sequence of upserts leaves the last label sent per key, a repeat changing nothing (the
sqlite3 statement and the SQLAlchemy one alike); a row's position counts its request id's rows.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlcycle.core import prediction_log as contract

PROPERTY = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
)
NAMES = ("age", "income", "home")
numbers = st.floats(allow_nan=True, allow_infinity=False, width=64)
words = st.none() | st.text(min_size=0, max_size=8)


@st.composite
def scored(draw) -> tuple[dict, np.ndarray]:
    """Validated columns as serving holds them (float64 with NaN, object or Categorical)."""
    n = draw(st.integers(1, 40))
    cols = {
        "age": np.array(draw(st.lists(numbers, min_size=n, max_size=n)), dtype=np.float64),
        "income": np.array(draw(st.lists(numbers, min_size=n, max_size=n)), dtype=np.float64),
    }
    home = draw(st.lists(words, min_size=n, max_size=n))
    cols["home"] = (
        pd.Categorical(home) if draw(st.booleans()) else np.array(home + [0], dtype=object)[:-1]
    )
    preds = np.array(draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)), dtype=np.float64)
    return cols, preds


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def _expected(cols: dict, i: int, name: str):
    value = np.asarray(cols[name], dtype=object)[i]
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


@PROPERTY
@given(scored())
def test_rows_round_trip(data):
    cols, preds = data
    rows = contract.build_rows("r", "m", "1", "run", NAMES, cols, preds, ts=1.0)
    assert len(rows) == len(preds)
    for i, row in enumerate(rows):
        assert dict(zip(contract.ROW_COLUMNS, row, strict=True))["prediction"] == preds[i]
        inputs = contract.decode_inputs(row[5])
        assert set(inputs) == set(NAMES)
        for name in NAMES:
            assert _same(inputs[name], _expected(cols, i, name)), (name, i, inputs)


@PROPERTY
@given(scored())
def test_batches_round_trip_and_match_the_rows(data):
    cols, preds = data
    batch = contract.build_batch("r", "m", "1", "run", NAMES, cols, preds, ts=1.0)
    fields = dict(zip(contract.BATCH_COLUMNS, batch, strict=True))
    assert fields["n_rows"] == len(preds) and fields["format"] == contract.BATCH_FORMAT
    decoded = contract.decode_batch(fields["data"], list(NAMES))
    np.testing.assert_array_equal(decoded["prediction"], preds)
    rows = contract.build_rows("r", "m", "1", "run", NAMES, cols, preds, ts=1.0)
    for i, row in enumerate(rows):
        inputs = contract.decode_inputs(row[5])
        for name in NAMES:
            assert _same(decoded[name][i], inputs[name]), (name, i, decoded[name][i], inputs)


@PROPERTY
@given(scored())
def test_the_sqlite_tables_hold_both_encodings(data):
    cols, preds = data
    conn = sqlite3.connect(":memory:")
    for ddl in contract.sqlite_ddl():
        conn.execute(ddl)
    rows = contract.build_rows("r", "m", "1", "run", NAMES, cols, preds, ts=2.0)
    conn.executemany(contract.insert_sql(contract.ROWS), rows)
    batch = contract.build_batch("b", "m", "1", "run", NAMES, cols, preds, ts=2.0)
    conn.execute(contract.insert_sql(contract.BATCHES), batch)
    stored = conn.execute(f"SELECT inputs, prediction FROM {contract.ROWS} ORDER BY id").fetchall()
    assert [p for _, p in stored] == preds.tolist()
    assert [contract.decode_inputs(raw) for raw, _ in stored] == [
        contract.decode_inputs(r[5]) for r in rows
    ]
    (blob,) = conn.execute(f"SELECT data FROM {contract.BATCHES}").fetchone()
    again = contract.decode_batch(blob, list(NAMES))
    np.testing.assert_array_equal(again["prediction"], preds)


def test_undecodable_inputs_read_as_empty():
    assert contract.decode_inputs("{not json") == {}
    assert contract.decode_inputs("[1, 2]") == {}
    assert contract.decode_inputs(None) == {}


label_keys = st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.integers(0, 3))
label_batches = st.lists(st.lists(st.tuples(label_keys, st.integers(0, 1)), max_size=8), max_size=6)


def _expected_labels(batches: list) -> dict:
    """What the table must hold: per key the last label sent, with the time of the batch that
    first sent that label value (a re-send of the same value keeps the old time)."""
    held: dict = {}
    for ts, batch in enumerate(batches):
        for key, label in batch:
            if key not in held or held[key][0] != label:
                held[key] = (label, float(ts))
    return held


@PROPERTY
@given(label_batches)
def test_label_upserts_keep_the_last_label_per_key_and_ignore_repeats(batches):
    conn = sqlite3.connect(":memory:")
    for ddl in contract.sqlite_ddl():
        conn.execute(ddl)
    for ts, batch in enumerate(batches):
        for (rid, row), label in batch:
            conn.execute(contract.insert_sql(contract.LABELS), (rid, row, label, float(ts)))
    stored = {
        (rid, row): (label, ts)
        for rid, row, label, ts in conn.execute(
            f'SELECT request_id, "row", label, ts FROM {contract.LABELS}'
        )
    }
    assert stored == _expected_labels(batches)


@PROPERTY
@given(label_batches)
def test_the_sqlalchemy_label_upsert_means_the_same(batches):
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    labels = contract.tables(meta)[3]
    meta.create_all(engine)
    upsert = contract.label_upsert(labels, "sqlite")
    with engine.begin() as conn:
        for ts, batch in enumerate(batches):
            for (rid, row), label in batch:
                values = {"request_id": rid, "row": row, "label": label, "ts": float(ts)}
                conn.execute(upsert, [values])
        stored = {(r.request_id, r.row): (r.label, r.ts) for r in conn.execute(labels.select())}
    assert stored == _expected_labels(batches)


def test_the_labels_table_is_the_contract_columns_and_refuses_bad_labels():
    conn = sqlite3.connect(":memory:")
    for ddl in contract.sqlite_ddl():
        conn.execute(ddl)
    columns = [r[1] for r in conn.execute(f"PRAGMA table_info({contract.LABELS})")]
    assert tuple(columns) == contract.LABEL_COLUMNS
    for bad in (("r", 0, 2, 1.0), ("r", -1, 1, 1.0), (None, 0, 1, 1.0)):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(contract.insert_sql(contract.LABELS), bad)


def test_row_positions_count_a_request_ids_rows_in_log_order():
    conn = sqlite3.connect(":memory:")
    for ddl in contract.sqlite_ddl():
        conn.execute(ddl)
    cols = {"age": np.arange(3.0), "income": np.zeros(3), "home": np.array(["a"] * 3, dtype=object)}
    for rid in ("a", "b", "a"):  # request id "a" logged twice: its rows continue counting
        rows = contract.build_rows(rid, "m", "1", "run", NAMES, cols, np.zeros(3), ts=1.0)
        conn.executemany(contract.insert_sql(contract.ROWS), rows)
    sql = contract.positioned_rows_sql("id, request_id", "SELECT 'a'")
    got = [(rid, pos) for _, rid, pos in conn.execute(sql + " ORDER BY id")]
    assert got == [("a", i) for i in range(6)]


def test_create_schema_adds_what_an_older_log_lacks(tmp_path):
    import sqlalchemy as sa

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a log from before labels: no table, no index
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts FLOAT NOT NULL, "
                     "request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
                     "inputs TEXT, prediction FLOAT)")  # fmt: skip
    engine = sa.create_engine(f"sqlite:///{path}")
    contract.create_schema(engine)
    contract.create_schema(engine)  # twice is fine
    inspector = sa.inspect(engine)
    assert {contract.ROWS, contract.BATCHES, contract.WRITERS, contract.LABELS} <= set(
        inspector.get_table_names()
    )
    indexes = {i["name"] for i in inspector.get_indexes(contract.ROWS)}
    assert {"ix_predictions_request", "ix_predictions_model_ts", "ix_predictions_ts"} <= indexes
    engine.dispose()
