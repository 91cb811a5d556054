"""Bad inputs, one per row of the table: each gets its documented 4xx and a JSON error naming
the field; good inputs in every protocol get the stub model's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.unit.serving.stub import ROW, StubModel, make_service

JSON = "application/json"


def _rec(**changes):
    row = dict(ROW)
    for k, v in changes.items():
        if v is ...:
            row.pop(k)
        else:
            row[k] = v
    return row


def _split(rows):
    cols = list(rows[0])
    return {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}


CASES = [
    # (name, path, raw body or JSON-able, content type, status, field)
    ("malformed json", "/invocations", b"{nope", JSON, 400, None),
    ("non-utf8 bytes", "/invocations", b"\xff\xfe{", JSON, 400, None),
    ("empty body", "/invocations", b"", JSON, 400, None),
    ("xml content type", "/invocations", b"<a/>", "application/xml", 415, None),
    ("no content type", "/invocations", json.dumps({"instances": [ROW]}).encode(), None, 415, None),
    ("string body", "/invocations", "hello", JSON, 400, None),
    ("list body", "/invocations", [ROW], JSON, 400, None),
    ("empty object", "/invocations", {}, JSON, 400, None),
    ("two formats", "/invocations", {"instances": [ROW], "inputs": [ROW]}, JSON, 400, None),
    ("unknown key", "/invocations", {"rows": [ROW]}, JSON, 400, "rows"),
    ("missing column", "/invocations", {"dataframe_records": [_rec(age=...)]}, JSON, 400, "age"),
    ("extra column", "/invocations", {"dataframe_records": [_rec(zzz=1)]}, JSON, 400, "zzz"),
    ("text in numeric", "/invocations", {"dataframe_records": [_rec(age="abc")]}, JSON, 400, "age"),
    ("bool in numeric", "/invocations", {"dataframe_records": [_rec(age=True)]}, JSON, 400, "age"),
    (
        "list in numeric",
        "/invocations",
        {"dataframe_records": [_rec(age=[1, 2])]},
        JSON,
        400,
        "age",
    ),
    (
        "overflowing number",
        "/invocations",
        b'{"dataframe_records": [{"age": 1e400, "income": 1.0, "home": "OWN", "purpose": "car"}]}',
        JSON,
        400,
        "age",
    ),
    (
        "missing where not allowed",
        "/invocations",
        {"dataframe_records": [_rec(income=None)]},
        JSON,
        400,
        "income",
    ),
    (
        "unknown category",
        "/invocations",
        {"dataframe_records": [_rec(home="CASTLE")]},
        JSON,
        422,
        "home",
    ),
    (
        "number as category",
        "/invocations",
        {"dataframe_records": [_rec(purpose=3)]},
        JSON,
        400,
        "purpose",
    ),
    (
        "object as category",
        "/invocations",
        {"dataframe_records": [_rec(purpose={"a": 1})]},
        JSON,
        400,
        "purpose",
    ),
    (
        "missing category not allowed",
        "/invocations",
        {"dataframe_records": [_rec(purpose=None)]},
        JSON,
        400,
        "purpose",
    ),
    ("empty batch", "/invocations", {"dataframe_records": []}, JSON, 400, None),
    ("records not a list", "/invocations", {"dataframe_records": {"a": 1}}, JSON, 400, None),
    ("row not an object", "/invocations", {"instances": [[1, 2, 3, 4]]}, JSON, 400, None),
    (
        "nested garbage split",
        "/invocations",
        {"dataframe_split": {"columns": 5, "data": "x"}},
        JSON,
        400,
        None,
    ),
    (
        "split row too short",
        "/invocations",
        {"dataframe_split": {"columns": list(ROW), "data": [[1, 2]]}},
        JSON,
        400,
        None,
    ),
    (
        "inputs lengths differ",
        "/invocations",
        {"inputs": {"age": [1, 2], "income": [1.0], "home": ["OWN"], "purpose": ["car"]}},
        JSON,
        400,
        "income",
    ),
    (
        "csv bad number",
        "/invocations",
        b"age,income,home,purpose\nold,1.0,OWN,car\n",
        "text/csv",
        400,
        "age",
    ),
    (
        "csv missing column",
        "/invocations",
        b"age,income,home\n1,1.0,OWN\n",
        "text/csv",
        400,
        "purpose",
    ),
    ("csv header only", "/invocations", b"age,income,home,purpose\n", "text/csv", 400, None),
    ("predict: list of numbers", "/predict", [1, 2], JSON, 400, None),
    ("predict: scalar", "/predict", 5, JSON, 400, None),
    ("v2: no inputs", "/v2/models/credit-risk/infer", {"outputs": []}, JSON, 400, "inputs"),
    (
        "v2: wrong datatype",
        "/v2/models/credit-risk/infer",
        {"inputs": [{"name": "home", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        JSON,
        400,
        "home",
    ),
    (
        "v2: shape mismatch",
        "/v2/models/credit-risk/infer",
        {"inputs": [{"name": "age", "shape": [2], "datatype": "INT64", "data": [1]}]},
        JSON,
        400,
        "age",
    ),
    ("v2: unknown model", "/v2/models/other/infer", {"inputs": []}, JSON, 404, "name"),
    (
        "v2: version not loaded",
        "/v2/models/credit-risk/versions/9/infer",
        {"inputs": []},
        JSON,
        404,
        "version",
    ),
]


@pytest.mark.parametrize("name,path,body,ctype,status,field", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_documented_4xx(client, name, path, body, ctype, status, field):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": ctype} if ctype else {}
    resp = client.post(path, data=data, headers=headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    err = resp.get_json()
    assert err["message"] and err["error_code"]
    if field is not None:
        assert err.get("field") == field, err
    predlog = client.application.extensions["mlcycle"].predlog
    assert predlog.expected == 0, "a failed request left a leader waiting for its rows"


def test_at_least_twenty_kinds():
    assert len(CASES) >= 20


def test_oversized_body_is_413(settings):

    from serving.app import create_app

    app = create_app(settings.model_copy(update={"max_body_bytes": 1000}), make_service())
    body = json.dumps({"instances": [ROW] * 100}).encode()
    resp = app.test_client().post("/invocations", data=body, content_type=JSON)
    assert resp.status_code == 413
    assert "limit" in resp.get_json()["message"]
    app.extensions["mlcycle"].close()


def _expected(rows):
    cols = {
        k: np.array([r[k] for r in rows], dtype=float if k in ("age", "income") else object)
        for k in ROW
    }
    return StubModel().predict_columns(cols)


ROWS = [ROW, _rec(age=None, home=None), _rec(age=70, income=1e5, home="OWN", purpose="edu")]


@pytest.mark.parametrize(
    "fmt",
    [
        "dataframe_split",
        "dataframe_records",
        "instances",
        "inputs-columns",
        "inputs-records",
        "csv",
    ],
)
def test_every_mlflow_format_gives_the_model_numbers(client, fmt):
    if fmt == "csv":
        lines = ["age,income,home,purpose"] + [
            ",".join("" if r[c] is None else str(r[c]) for c in ROW) for r in ROWS
        ]
        resp = client.post("/invocations", data="\n".join(lines), content_type="text/csv")
    else:
        body = {
            "dataframe_split": _split(ROWS),
            "dataframe_records": ROWS,
            "instances": ROWS,
            "inputs-columns": {k: [r[k] for r in ROWS] for k in ROW},
            "inputs-records": ROWS,
        }[fmt]
        key = fmt.split("-")[0]
        resp = client.post("/invocations", json={key: body})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["X-Model-Version"] == "1"
    assert np.allclose(resp.get_json()["predictions"], _expected(ROWS), atol=1e-12)


def test_predict_one_and_many(client):
    one = client.post("/predict", json=ROW).get_json()
    p = float(_expected([ROW])[0])
    assert one["probability"] == pytest.approx(p) and one["decision"] == int(p >= 0.5)
    assert one["model_version"] == "1" and one["model_name"] == "credit-risk"
    many = client.post("/predict", json=ROWS).get_json()
    assert [x["probability"] for x in many["predictions"]] == pytest.approx(
        _expected(ROWS).tolist()
    )


def test_v2_infer_and_metadata(client):
    inputs = [
        {"name": "age", "shape": [3], "datatype": "INT64", "data": [35, None, 70]},
        {
            "name": "income",
            "shape": [3, 1],
            "datatype": "FP64",
            "data": [[42000.5], [42000.5], [1e5]],
        },
        {"name": "home", "shape": [3], "datatype": "BYTES", "data": ["RENT", None, "OWN"]},
        {"name": "purpose", "shape": [3], "datatype": "BYTES", "data": ["car", "car", "edu"]},
    ]
    resp = client.post(
        "/v2/models/credit-risk/versions/1/infer", json={"id": "x1", "inputs": inputs}
    )
    body = resp.get_json()
    assert resp.status_code == 200 and body["id"] == "x1" and body["model_version"] == "1"
    assert np.allclose(body["outputs"][0]["data"], _expected(ROWS))
    meta = client.get("/v2/models/credit-risk").get_json()
    assert {i["name"] for i in meta["inputs"]} == set(ROW)
    assert client.get("/v2/models/credit-risk/ready").status_code == 200
    assert client.get("/v2/models/nope").status_code == 404


def test_request_id_is_echoed_and_logged(client, settings):
    import sqlite3

    resp = client.post(
        "/invocations", json={"instances": [ROW, ROW]}, headers={"X-Request-ID": "req-42"}
    )
    assert resp.headers["X-Request-ID"] == "req-42"
    path = settings.prediction_log_url[len("sqlite:///") :]
    rows = (
        sqlite3.connect(path)
        .execute(
            "SELECT request_id, model_name, model_version, model_run_id, inputs, prediction "
            "FROM predictions WHERE request_id='req-42'"
        )
        .fetchall()
    )
    assert len(rows) == 2
    assert rows[0][1:4] == ("credit-risk", "1", "run-1")
    assert json.loads(rows[0][4]) == {
        k: float(v) if k in ("age", "income") else v for k, v in ROW.items()
    }
    assert rows[0][5] == pytest.approx(float(_expected([ROW])[0]))
