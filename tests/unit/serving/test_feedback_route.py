"""`POST /labels` on the real app and a real SQLite log: the receipt counts what became of each
entry, a changed label replaces the old one, bad entries never fail the rest, bad bodies are a
400, and the route follows the API keys and the log switch."""

from __future__ import annotations

import sqlite3

import pytest

from tests.unit.serving.stub import ROW


def _predict(client, rid: str, n: int) -> None:
    r = client.post(
        "/invocations", json={"dataframe_records": [ROW] * n}, headers={"X-Request-ID": rid}
    )
    assert r.status_code == 200, r.get_data(as_text=True)


def _labels(path) -> dict:
    with sqlite3.connect(path) as conn:
        return {
            (r, i): y for r, i, y in conn.execute('SELECT request_id, "row", label FROM labels')
        }


def test_labels_stored_updated_and_counted(client, settings):
    _predict(client, "req-a", 3)
    entries = [{"request_id": "req-a", "row": i, "label": i % 2} for i in range(3)]
    r = client.post("/labels", json=entries)
    assert r.status_code == 200
    assert (r.json["stored"], r.json["unknown"]) == (3, 0)
    again = client.post("/labels", json=entries).json
    assert (again["stored"], again["unchanged"]) == (0, 3)
    mixed = [
        {"request_id": "req-a", "label": 1},  # row 0 corrected: 0 -> 1
        {"request_id": "nobody", "row": 0, "label": 1},
        {"request_id": "req-a", "row": 1, "label": 7},
    ]
    out = client.post("/labels", json={"labels": mixed}).json
    assert (out["updated"], out["unknown"], out["invalid"]) == (1, 1, 1)
    assert out["unknown_ids"] == [{"request_id": "nobody", "row": 0}]
    assert out["invalid_entries"][0]["index"] == 2
    path = settings.prediction_log_url.removeprefix("sqlite:///")
    assert _labels(path) == {("req-a", 0): 1, ("req-a", 1): 1, ("req-a", 2): 0}


@pytest.mark.parametrize(
    "body", [b"not json", b'{"request_id": "a", "label": 1}', b'"labels"', b'{"labels": 3}']
)
def test_a_body_that_is_not_a_list_of_labels_is_a_400(client, body):
    r = client.post("/labels", data=body, content_type="application/json")
    assert r.status_code == 400
    assert r.json["error_code"] == "BAD_REQUEST" and r.json["request_id"]


def test_a_body_over_the_limit_is_a_413(app_with):
    client = app_with(max_body_bytes=100).test_client()
    entries = [{"request_id": f"r{i}", "label": 1} for i in range(20)]
    assert client.post("/labels", json=entries).status_code == 413
    assert client.post("/labels", json=entries[:1]).status_code == 200


def test_labels_are_json(client):
    r = client.post("/labels", data="request_id,label\nx,1\n", content_type="text/csv")
    assert r.status_code == 415 and r.json["error_code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_labels_need_an_api_key_when_keys_are_on(app_with):
    client = app_with(api_keys=("k1",)).test_client()
    assert client.post("/labels", json=[]).status_code == 401
    assert client.post("/labels", json=[], headers={"X-API-Key": "k1"}).status_code == 200


def test_no_labels_without_a_prediction_log(app_with):
    r = (
        app_with(log_predictions=False)
        .test_client()
        .post("/labels", json=[{"request_id": "a", "label": 1}])
    )
    assert r.status_code == 404 and "prediction log is off" in r.json["message"]


def test_labels_are_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json
    responses = doc["paths"]["/labels"]["post"]["responses"]
    assert {"200", "400", "404", "503"} <= set(responses)
