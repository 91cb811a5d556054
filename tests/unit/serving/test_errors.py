"""Error classes: only known input errors are 4xx; anything else is a 500 with the request id
in the body and in the log (with its traceback); every error body names the request."""

from __future__ import annotations

import logging

import pytest

import serving.app as app_module
from serving.app import create_app
from serving.errors import Unavailable, internal_error_body
from serving.model import ModelService, is_input_error
from tests.unit.serving.stub import ROW, SPEC, StubModel


class InputError(ValueError):
    """Shaped like the pyfunc's `InputError` (serving knows it only by its class name)."""

    def __init__(self, column: str, message: str) -> None:
        self.column = column
        super().__init__(f"column {column!r}: {message}")


class RaisingModel(StubModel):
    """The stub model, raising `error` from its forward pass."""

    spec = SPEC

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def predict_columns(self, columns):
        raise self.error


@pytest.fixture(params=[True, False], ids=["fast-path", "flask"])
def serve(request, settings):
    """`serve(model) -> test client` of the app around `model`; closed at the end."""
    apps = []

    def make(model):
        cfg = settings.model_copy(update={"fast_path": request.param, "cache": False})
        apps.append(create_app(cfg, ModelService(model, "credit-risk", "1", "run-1")))
        return apps[-1].test_client()

    yield make
    for app in apps:
        app.extensions["mlcycle"].close()


@pytest.mark.parametrize(
    "error", [ValueError("bad shape"), RuntimeError("boom"), KeyError("w0"), ZeroDivisionError()]
)
def test_a_model_bug_is_a_500_with_the_request_id_in_body_and_log(serve, caplog, error):
    client = serve(RaisingModel(error))
    with caplog.at_level(logging.ERROR, logger="serving"):
        resp = client.post("/predict", json=ROW, headers={"X-Request-ID": "rid-500"})
    assert resp.status_code == 500
    assert resp.get_json() == internal_error_body("rid-500")
    logged = [r for r in caplog.records if "rid-500" in r.getMessage()]
    assert logged and logged[0].exc_info[0] is type(error)


def test_the_model_input_error_is_a_400_naming_the_column(serve):
    client = serve(RaisingModel(InputError("home", "unknown category 'X'")))
    resp = client.post("/invocations", json={"instances": [ROW]}, headers={"X-Request-ID": "r1"})
    body = resp.get_json()
    assert resp.status_code == 400, body
    assert body["error_code"] == "BAD_REQUEST" and body["field"] == "home"
    assert "unknown category" in body["message"] and body["request_id"] == "r1"


def test_the_pipelines_input_error_is_recognised_by_name():
    from pipelines.model_code import InputError as PyfuncInputError

    class Subclass(PyfuncInputError):
        pass

    assert is_input_error(PyfuncInputError("age", "missing value"))
    assert is_input_error(Subclass(None, "input is not a table"))
    assert not is_input_error(ValueError("age"))
    assert not is_input_error(TypeError("InputError"))


def test_a_parser_bug_is_a_500_not_the_client_fault(serve, monkeypatch, caplog):
    client = serve(StubModel())

    def broken(*args):
        raise IndexError("list index out of range")

    monkeypatch.setattr(app_module.protocols, "parse_predict", broken)
    with caplog.at_level(logging.ERROR, logger="serving"):
        resp = client.post("/predict", json=ROW, headers={"X-Request-ID": "rid-parse"})
    assert resp.status_code == 500 and resp.get_json()["request_id"] == "rid-parse"
    assert any("rid-parse" in r.getMessage() and r.exc_info for r in caplog.records)


def test_a_retryable_503_carries_retry_after_and_the_request_id(serve):
    client = serve(RaisingModel(Unavailable("overloaded", retry_after=7)))
    resp = client.post("/predict", json=ROW, headers={"X-Request-ID": "rid-503"})
    assert resp.status_code == 503 and resp.headers["Retry-After"] == "7"
    assert resp.get_json() == {
        "error_code": "UNAVAILABLE",
        "message": "overloaded",
        "request_id": "rid-503",
    }


def test_every_4xx_names_the_request(serve):
    client = serve(StubModel())
    bad = client.post("/invocations", data="{", content_type="application/json")
    assert bad.status_code == 400
    assert bad.get_json()["request_id"] == bad.headers["X-Request-ID"]
    unknown = client.post("/v2/models/other/infer", json={}, headers={"X-Request-ID": "r404"})
    assert unknown.status_code == 404 and unknown.get_json()["request_id"] == "r404"
    assert unknown.get_json()["field"] == "name"


def test_flask_level_errors_are_json_with_the_request_id(serve):
    client = serve(StubModel())
    missing = client.get("/nope", headers={"X-Request-ID": "r-nope"})
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    assert missing.get_json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert missing.get_json()["request_id"] == "r-nope"
    method = client.get("/invocations")
    assert method.status_code == 405 and "POST" in method.headers["Allow"]
    assert method.get_json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert method.get_json()["request_id"] == method.headers["X-Request-ID"]


def test_a_bug_in_an_ops_route_is_a_logged_json_500(serve, monkeypatch, caplog):
    client = serve(StubModel())

    def broken(reports_dir):
        raise OSError("disk gone")

    monkeypatch.setattr(app_module, "render", broken)
    with caplog.at_level(logging.ERROR, logger="serving"):
        resp = client.get("/metrics", headers={"X-Request-ID": "rid-metrics"})
    assert resp.status_code == 500 and resp.get_json() == internal_error_body("rid-metrics")
    assert any("rid-metrics" in r.getMessage() and r.exc_info for r in caplog.records)


class NanModel(StubModel):
    """The stub model, giving NaN for the second row (as overflowing activations do)."""

    def predict_columns(self, columns):
        out = super().predict_columns(columns)
        out[1:2] = float("nan")
        return out


def test_a_non_finite_model_output_is_a_422_naming_the_row(serve):
    resp = serve(NanModel()).post("/predict", json=[ROW, ROW, ROW])
    body = resp.get_json()
    assert resp.status_code == 422, body
    assert body["error_code"] == "UNPROCESSABLE" and body["detail"] == {"rows": [1], "count": 1}
