"""OIP v2 over gRPC in one process: the app around the stub model with `grpc_port` set, and
`tritonclient.grpc` (and plain gRPC stubs, for typed contents, health and reflection) as the
peer. Same answers, log rows and error classes as the REST API; the real model and a real
`mlcycle serve` are in tests/integration/serving/test_grpc_server.py."""

from __future__ import annotations

import sqlite3

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from serving.errors import Unavailable
from serving.model import ModelService
from tests.helpers import free_port
from tests.unit.serving.stub import ROW, StubModel
from tests.unit.serving.test_errors import RaisingModel

ROWS = [ROW, {"age": 52, "income": 61000.0, "home": "OWN", "purpose": "edu"}]


@pytest.fixture
def grpc_app(settings):
    """`grpc_app(model=None, **changes) -> (app, tritonclient, channel)`: the app serving the
    stub model (or `model`) with its gRPC service on a free port; all closed at the end."""
    from serving.app import create_app

    opened = []

    def build(model=None, **changes):
        port = free_port()
        cfg = settings.model_copy(update={"grpc_port": port, "cache": False, **changes})
        app = create_app(cfg, ModelService(model or StubModel(), "credit-risk", "1", "run-1"))
        client = tg.InferenceServerClient(f"127.0.0.1:{port}")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        opened.append((app, client, channel))
        return app, client, channel

    yield build
    for app, client, channel in opened:
        client.close()
        channel.close()
        app.extensions["mlcycle"].close()


def tensors(rows: list[dict], **override: tuple[str, np.ndarray]) -> list[tg.InferInput]:
    """One raw tensor per column (INT64 age, FP64 income, BYTES categories); `override`
    replaces a column's (datatype, values)."""
    cols = {
        "age": ("INT64", np.array([r["age"] for r in rows], dtype=np.int64)),
        "income": ("FP64", np.array([r["income"] for r in rows], dtype=np.float64)),
        "home": ("BYTES", np.array([r["home"] for r in rows], dtype=object)),
        "purpose": ("BYTES", np.array([r["purpose"] for r in rows], dtype=object)),
    } | override
    out = []
    for name, (dtype, values) in cols.items():
        t = tg.InferInput(name, [len(values)], dtype)
        t.set_data_from_numpy(values)
        out.append(t)
    return out


def rest_probabilities(app, rows: list[dict]) -> np.ndarray:
    resp = app.test_client().post("/invocations", json={"dataframe_records": rows})
    assert resp.status_code == 200, resp.get_json()
    return np.array(resp.get_json()["predictions"])


def refused(client, inputs, **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as err:
        client.infer("credit-risk", inputs, **kwargs)
    return err.value


def test_health_metadata_and_readiness_answer_like_the_rest_api(grpc_app):
    app, client, _ = grpc_app()
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("credit-risk") and client.is_model_ready("credit-risk", "1")
    assert not client.is_model_ready("credit-risk", "2") and not client.is_model_ready("other")
    assert client.get_server_metadata(as_json=True)["name"] == "mlcycle"
    meta = client.get_model_metadata("credit-risk", as_json=True)
    rest = app.test_client().get("/v2/models/credit-risk").get_json()
    assert meta["versions"] == rest["versions"] == ["1"]
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [
        (t["name"], t["datatype"]) for t in rest["inputs"]
    ]
    with pytest.raises(InferenceServerException) as err:
        client.get_model_metadata("other")
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_infer_with_raw_int64_fp64_and_bytes_inputs_matches_the_rest_answer(grpc_app):
    app, client, _ = grpc_app()
    rows = ROWS * 300  # 600 rows: the columnar validation path
    result = client.infer("credit-risk", tensors(rows), request_id="mine")
    got = result.as_numpy("probability")
    assert got.dtype == np.float64 and got.shape == (len(rows),)
    np.testing.assert_allclose(got, rest_probabilities(app, rows), rtol=0, atol=1e-12)
    response = result.get_response(as_json=True)
    assert response["model_version"] == "1" and response["id"] == "mine"


def test_typed_contents_are_answered_in_typed_contents(grpc_app):
    app, _, channel = grpc_app()
    request = service_pb2.ModelInferRequest(model_name="credit-risk")
    contents = {
        "age": ("INT32", "int_contents", [r["age"] for r in ROWS]),
        "income": ("FP32", "fp32_contents", [r["income"] for r in ROWS]),
        "home": ("BYTES", "bytes_contents", [r["home"].encode() for r in ROWS]),
        "purpose": ("BYTES", "bytes_contents", [r["purpose"].encode() for r in ROWS]),
    }
    for name, (dtype, field, values) in contents.items():
        tensor = request.inputs.add(name=name, datatype=dtype, shape=[len(values)])
        getattr(tensor.contents, field).extend(values)
    response, call = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer.with_call(
        request, metadata=(("x-request-id", "typed-1"),)
    )
    assert not response.raw_output_contents
    got = np.array(response.outputs[0].contents.fp64_contents)
    np.testing.assert_allclose(got, rest_probabilities(app, ROWS), rtol=0, atol=1e-12)
    trailers = dict(call.trailing_metadata())
    assert trailers["x-request-id"] == "typed-1" and trailers["x-model-version"] == "1"


def test_scored_rows_are_logged_under_the_calls_request_id(grpc_app, settings):
    app, client, _ = grpc_app()
    client.infer("credit-risk", tensors(ROWS), headers={"x-request-id": "grpc-log-1"})
    app.extensions["mlcycle"].predlog.close()
    with sqlite3.connect(settings.prediction_log_url.removeprefix("sqlite:///")) as db:
        (count,) = db.execute(
            "SELECT COUNT(*) FROM predictions WHERE request_id = 'grpc-log-1'"
        ).fetchone()
    assert count == len(ROWS)
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'route="/inference.GRPCInferenceService/ModelInfer"' in metrics


@pytest.mark.parametrize(
    ("override", "column"),
    [
        ({"age": ("BYTES", np.array(["x", "y"], dtype=object))}, "age"),
        ({"home": ("FP64", np.array([1.0, 2.0]))}, "home"),
        ({"income": ("FP64", np.array([1.0, np.inf]))}, "income"),
        ({"purpose": ("BYTES", np.array(["car", "plane"], dtype=object))}, "purpose"),
        ({"income": ("FP64", np.array([1.0, 2.0, 3.0]))}, "income"),
    ],
    ids=["text-in-number", "number-in-text", "infinite", "unseen-category", "ragged"],
)
def test_bad_input_is_invalid_argument_naming_the_column(grpc_app, override, column):
    _, client, _ = grpc_app()
    err = refused(client, tensors(ROWS, **override))
    assert err.status() == "StatusCode.INVALID_ARGUMENT"
    assert f"'{column}'" in err.message()


def test_missing_column_and_malformed_message_are_invalid_argument(grpc_app):
    _, client, channel = grpc_app()
    err = refused(client, tensors(ROWS)[1:])
    assert err.status() == "StatusCode.INVALID_ARGUMENT" and "'age'" in err.message()
    infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as bad:
        infer(b"\xff\xff\xff")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed ModelInferRequest" in bad.value.details()


def test_unknown_model_or_version_is_not_found(grpc_app):
    _, client, _ = grpc_app()
    assert refused(client, tensors(ROWS), model_version="7").status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as err:
        client.infer("other", tensors(ROWS))
    assert err.value.status() == "StatusCode.NOT_FOUND"


def test_api_keys_are_read_from_metadata(grpc_app):
    _, client, _ = grpc_app(api_keys=("k1",))
    assert refused(client, tensors(ROWS)).status() == "StatusCode.UNAUTHENTICATED"
    wrong = refused(client, tensors(ROWS), headers={"x-api-key": "nope"})
    assert wrong.status() == "StatusCode.PERMISSION_DENIED"
    for headers in ({"x-api-key": "k1"}, {"authorization": "Bearer k1"}):
        result = client.infer("credit-risk", tensors(ROWS), headers=headers)
        assert result.as_numpy("probability").shape == (len(ROWS),)
    assert client.is_server_ready()  # health and metadata stay open, as over HTTP


def test_a_model_bug_is_internal_with_the_request_id(grpc_app):
    _, client, _ = grpc_app(RaisingModel(RuntimeError("boom")))
    err = refused(client, tensors(ROWS), headers={"x-request-id": "rid-grpc-500"})
    assert err.status() == "StatusCode.INTERNAL"
    assert "rid-grpc-500" in err.message() and "boom" not in err.message()


def test_overload_and_a_log_that_is_down_are_unavailable(grpc_app, tmp_path):
    _, client, _ = grpc_app(RaisingModel(Unavailable("overloaded", retry_after=3)))
    assert refused(client, tensors(ROWS)).status() == "StatusCode.UNAVAILABLE"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    _, down, _ = grpc_app(prediction_log_url=f"sqlite:///{blocker / 'p.db'}")
    err = refused(down, tensors(ROWS))
    assert err.status() == "StatusCode.UNAVAILABLE" and "prediction log" in err.message()
    assert not down.is_server_ready() and down.is_server_live()


def test_grpc_health_and_reflection(grpc_app):
    _, _, channel = grpc_app()
    check = health_pb2_grpc.HealthStub(channel).Check
    for service in ("", "inference.GRPCInferenceService"):
        status = check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = reflection_pb2.ServerReflectionRequest
    answers = list(
        stub.ServerReflectionInfo(
            iter([ask(list_services=""), ask(file_containing_symbol="inference.ModelInferRequest")])
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto


def test_serve_hands_the_grpc_port_and_host_over_and_refuses_a_taken_port(monkeypatch):
    import socket

    from typer.testing import CliRunner

    import serving.cli
    from mlcycle.cli import app as cli

    seen = {}
    monkeypatch.setattr(serving.cli, "launch", lambda t, s, h, p: seen.update(settings=s) or 0)
    port = free_port()
    ok = CliRunner().invoke(cli, ["serve", "--host", "127.0.0.1", "--grpc-port", str(port)])
    assert ok.exit_code == 0, ok.output
    assert (seen["settings"].grpc_port, seen["settings"].grpc_host) == (port, "127.0.0.1")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        taken = CliRunner().invoke(cli, ["serve", "--grpc-port", str(port)])
    assert taken.exit_code == 2
    assert f"MLCYCLE_GRPC_PORT {port}" in taken.output and "in use" in taken.output


def test_the_benchmarks_requests_answers_and_load_generator(grpc_app):
    import pandas as pd

    from benchmarks.grpc_serving import infer_request, probabilities
    from benchmarks.harness import grpc_load

    app, _, _ = grpc_app()
    target = f"127.0.0.1:{app.extensions['mlcycle'].settings.grpc_port}"
    request = infer_request(pd.DataFrame(ROWS))
    got = probabilities(grpc_load.call_once(target, request))
    np.testing.assert_allclose(got, rest_probabilities(app, ROWS), rtol=0, atol=1e-12)
    ok = grpc_load.run(target, request, streams=2, seconds=0.5)
    assert ok["requests"] > 0 and ok["errors"] == 0 and ok["p50"] <= ok["p99"]
    unknown = infer_request(pd.DataFrame(ROWS)).replace(b"credit-risk", b"credit-rusk")
    bad = grpc_load.run(target, unknown, streams=1, seconds=0.3)
    assert bad["requests"] == 0 and bad["errors"] > 0
