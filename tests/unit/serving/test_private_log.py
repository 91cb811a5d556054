"""The app's prediction log with private columns: hashed ones never stored as sent, dropped
ones absent, through both request paths and in row and batch encodings."""

from __future__ import annotations

import sqlite3

import pytest

from mlcycle.core.prediction_log import LogPrivacy, decode_batch, decode_inputs
from tests.unit.serving.stub import ROW, make_service

KEY = "serving-hash-key-0123456789abcdef"


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
@pytest.mark.parametrize("rows", [1, 3], ids=["row", "batch"])
def test_hashed_and_dropped_columns_in_the_log(settings, fast_path, rows):
    from serving.app import create_app

    private = {
        "log_hash_columns": ("home",),
        "log_drop_columns": ("income",),
        "log_hash_key": KEY,
        "log_batch_rows": 2,
        "fast_path": fast_path,
    }
    app = create_app(settings.model_copy(update=private), make_service())
    records = [ROW] * rows
    resp = app.test_client().post("/invocations", json={"dataframe_records": records})
    app.extensions["mlcycle"].close()
    assert resp.status_code == 200, resp.get_json()
    db = settings.prediction_log_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        inputs = [decode_inputs(r[0]) for r in conn.execute("SELECT inputs FROM predictions")]
        blobs = [r[0] for r in conn.execute("SELECT data FROM prediction_batches")]
    hashed = LogPrivacy(("home",), (), KEY).hash_value("RENT")
    if rows == 1:
        assert inputs == [{"age": 35, "home": hashed, "purpose": "car"}]
    else:
        (blob,) = blobs
        batch = decode_batch(blob, ["age", "income", "home", "purpose"])
        assert batch["home"].tolist() == [hashed] * rows
        assert batch["income"].tolist() == [None] * rows  # absent from the batch
        assert b"RENT" not in blob
