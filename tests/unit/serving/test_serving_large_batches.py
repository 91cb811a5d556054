"""Large requests take the columnar path (numpy transposition, factorised categories, pyarrow
CSV, one Arrow batch in the log): same numbers as small requests, same 4xx on bad input."""

from __future__ import annotations

import sqlite3

import numpy as np
import orjson
import pyarrow as pa
import pytest

from serving.app import create_app
from serving.schema import COLUMNAR_ROWS
from tests.unit.serving.stub import ROW, StubModel, make_service

N = 4000  # above COLUMNAR_ROWS, and a CSV of it is above the pyarrow threshold (64 KiB)


def _rows(n: int = N, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "age": None if i % 17 == 0 else int(rng.integers(18, 80)),
                "income": float(np.round(rng.normal(5e4, 2e4), 2)),
                "home": None if i % 11 == 0 else str(rng.choice(["OWN", "RENT"])),
                "purpose": str(rng.choice(["car", "edu"])),
            }
        )
    return rows


def _expected(rows: list[dict]) -> np.ndarray:
    cols = {
        k: np.array(
            [np.nan if r[k] is None and k == "age" else r[k] for r in rows],
            dtype=float if k in ("age", "income") else object,
        )
        for k in ROW
    }
    return StubModel().predict_columns(cols)


def _csv(rows: list[dict]) -> bytes:
    lines = ["age,income,home,purpose"]
    lines += [",".join("" if r[c] is None else str(r[c]) for c in ROW) for r in rows]
    return "\n".join(lines).encode()


def _body(fmt: str, rows: list[dict]) -> tuple[bytes, str]:
    if fmt == "csv":
        return _csv(rows), "text/csv"
    names = list(ROW)
    doc = {
        "dataframe_split": {"columns": names, "data": [[r[c] for c in names] for r in rows]},
        "dataframe_records": rows,
        "instances": rows,
        "inputs": {c: [r[c] for r in rows] for c in names},
    }[fmt]
    return orjson.dumps({fmt: doc}), "application/json"


def _app(settings, **changes):
    service_kwargs = changes.pop("service", {})
    app = create_app(settings.model_copy(update=changes), make_service(**service_kwargs))
    return app, app.test_client()


FORMATS = ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_large_batches_give_the_model_numbers(client, fmt):
    rows = _rows()
    body, ctype = _body(fmt, rows)
    assert N >= COLUMNAR_ROWS and len(_csv(rows)) > 64 * 1024
    resp = client.post("/invocations", data=body, content_type=ctype)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert np.allclose(resp.get_json()["predictions"], _expected(rows), atol=1e-12)


def test_a_large_request_is_logged_as_one_arrow_batch(client, settings):
    rows = _rows()
    body, ctype = _body("dataframe_split", rows)
    headers = {"X-Request-ID": "b1"}
    resp = client.post("/invocations", data=body, content_type=ctype, headers=headers)
    assert resp.status_code == 200
    conn = sqlite3.connect(settings.prediction_log_url[len("sqlite:///") :])
    assert conn.execute("SELECT COUNT(*) FROM predictions WHERE request_id='b1'").fetchone() == (0,)
    (n, fmt, version, run, blob), *more = conn.execute(
        "SELECT n_rows, format, model_version, model_run_id, data FROM prediction_batches "
        "WHERE request_id='b1'"
    ).fetchall()
    assert not more and (n, fmt, version, run) == (N, "arrow-ipc", "1", "run-1")
    table = pa.ipc.open_stream(blob).read_all()
    assert table.column_names == [*ROW, "prediction"]
    assert table.column("age").to_pylist() == [
        None if r["age"] is None else float(r["age"]) for r in rows
    ]
    assert table.column("home").to_pylist() == [r["home"] for r in rows]
    assert table.column("purpose").to_pylist() == [r["purpose"] for r in rows]
    assert np.allclose(table.column("prediction").to_numpy(), resp.get_json()["predictions"])


def test_small_requests_and_a_zero_threshold_log_one_row_per_row(settings):
    app, client = _app(settings, log_batch_rows=0)
    body, ctype = _body("inputs", _rows(600))
    assert client.post("/invocations", data=body, content_type=ctype).status_code == 200
    small, _ = _body("instances", _rows(3))
    assert client.post("/invocations", data=small, content_type=ctype).status_code == 200
    conn = sqlite3.connect(settings.prediction_log_url[len("sqlite:///") :])
    assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone() == (603,)
    assert conn.execute("SELECT COUNT(*) FROM prediction_batches").fetchone() == (0,)
    app.extensions["mlcycle"].close()


def _bad(rows, index, **changes):
    rows = [dict(r) for r in rows]
    rows[index].update(changes)
    return rows


LARGE_CASES = [
    # (name, format, rows or raw body, status, field, words in the message)
    ("string in a number column", "dataframe_records", ("age", "forty"), 400, "age", "number"),
    ("bool in a number column", "inputs", ("income", True), 400, "income", "number"),
    ("list in a number column", "dataframe_split", ("income", [1, 2]), 400, "income", "number"),
    ("unknown category", "inputs", ("home", "CASTLE"), 422, "home", "never seen in training"),
    ("number as category", "dataframe_split", ("home", 7), 400, "home", "string"),
    ("object as category", "instances", ("home", {"a": 1}), 400, "home", "string"),
    ("missing not allowed", "dataframe_records", ("purpose", None), 400, "purpose", "missing"),
]


@pytest.mark.parametrize(
    "name,fmt,change,status,field,words", LARGE_CASES, ids=[c[0] for c in LARGE_CASES]
)
def test_bad_values_in_large_batches_are_4xx(client, name, fmt, change, status, field, words):
    body, ctype = _body(fmt, _bad(_rows(), 2500, **{change[0]: change[1]}))
    resp = client.post("/invocations", data=body, content_type=ctype)
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    error = resp.get_json()
    assert error["field"] == field and words in error["message"], error


def test_a_ragged_row_in_a_large_split_is_named(client):
    names = list(ROW)
    data = [[r[c] for c in names] for r in _rows()]
    data[3000] = data[3000][:3]
    resp = client.post("/invocations", json={"dataframe_split": {"columns": names, "data": data}})
    assert resp.status_code == 400
    assert "row 3000" in resp.get_json()["message"]


@pytest.mark.parametrize(
    "edit,field,words",
    [
        (lambda lines: lines.__setitem__(2000, "35,abc,OWN,car"), "income", "'abc'"),
        (lambda lines: lines.__setitem__(2000, "35,1.5,OWN"), None, "width"),
        (lambda lines: lines.__setitem__(2000, "35,inf,OWN,car"), "income", "finite"),
        (lambda lines: lines.__setitem__(0, "age,income,home,color"), "purpose", "missing"),
    ],
    ids=["not a number", "short row", "infinite", "wrong header"],
)
def test_bad_large_csv_is_4xx(client, edit, field, words):
    lines = _csv(_rows()).decode().split("\n")
    edit(lines)
    resp = client.post("/invocations", data="\n".join(lines), content_type="text/csv")
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    error = resp.get_json()
    assert error.get("field") == field and words in error["message"], error


def test_header_only_large_csv_is_an_empty_batch(client):
    body = "age,income,home,purpose\n" + "\n" * (70 * 1024)
    resp = client.post("/invocations", data=body, content_type="text/csv")
    assert resp.status_code == 400 and "empty" in resp.get_json()["message"]


def test_large_batches_skip_the_cache_and_the_batcher_with_identical_results(settings):
    rows = _rows()
    body, ctype = _body("dataframe_split", rows)
    answers = []
    for cache, batching in ((True, True), (False, False)):
        service = {"cache_size": 100 if cache else 0, "batching": batching}
        app, client = _app(settings, service=service)
        resp = client.post("/invocations", data=body, content_type=ctype)
        answers.append(resp.get_json()["predictions"])
        svc = app.extensions["mlcycle"].state.service
        if cache:
            assert len(svc.cache) == 0  # 4000 rows > cache_max_rows: not keyed
            client.post("/invocations", data=_body("instances", rows[:5])[0], content_type=ctype)
            assert len(svc.cache) == 5
        app.extensions["mlcycle"].close()
    assert np.allclose(answers[0], answers[1], atol=0) and np.allclose(answers[0], _expected(rows))


def test_chunked_forward_pass_matches_one_pass():
    from serving import model as model_module

    svc = make_service()
    rows = _rows(model_module.CHUNK_ROWS * 2 + 5)
    columns = svc.schema.validate({c: [r[c] for r in rows] for c in ROW}, len(rows))
    assert svc.model.calls == 0
    out = svc.predict_arrays(columns)
    assert svc.model.calls == 3 and np.allclose(out, _expected(rows), atol=1e-12)
