"""The prediction-log contract round-trips (Hypothesis): what serving encodes, readers decode.

Rows (`build_rows` -> `decode_inputs`) and batches (`build_batch` -> `decode_batch`) give back
every input value and prediction, missing values included, and the two encodings of the same
rows decode to the same values; the SQLite DDL compiled from the tables holds them.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
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
