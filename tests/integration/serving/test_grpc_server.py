"""`mlcycle serve --grpc-port` with the trained model, `tritonclient.grpc` as the peer: gRPC
answers agree with the pyfunc, are logged, refuse bad input with INVALID_ARGUMENT naming the
column, follow a promotion, and turn NOT_SERVING while the server drains, then it exits 0."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import grpc
import mlflow
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from serving.oip.contract import SERVICE
from tests.helpers import MLCYCLE_SERVE, Server, free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def grpc_server(
    store, folder, workers: int = 2, **env
) -> tuple[Server, tg.InferenceServerClient, int]:
    port = free_port()
    server = Server(store, folder, workers, MLCYCLE_SERVE, ("--grpc-port", str(port)), **env)
    return server, tg.InferenceServerClient(f"127.0.0.1:{port}"), port


def health_status(port: int, service: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status


def drain_and_stop(server: Server, client, port: int, frame: pd.DataFrame) -> None:
    """SIGTERM: during the shutdown delay gRPC readiness and health turn NOT_SERVING while
    calls are still answered; then the server exits 0 within its grace period."""
    assert health_status(port) == health_pb2.HealthCheckResponse.SERVING
    started = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    wait_until(lambda: not client.is_server_ready(), 3, "gRPC ServerReady false when draining")
    assert health_status(port, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert infer(client, frame.head(3))[0].shape == (3,)  # still answered in the delay
    server.proc.wait(20)
    assert server.proc.returncode == 0 and time.monotonic() - started < 15


def tensors(frame: pd.DataFrame) -> list[tg.InferInput]:
    """One tensor per column: BYTES for text, INT64 for integers, FP64 for the rest."""
    out = []
    for name in frame.columns:
        col = frame[name].to_numpy()
        if col.dtype.kind in "OUS":
            dtype, values = "BYTES", col.astype(object)
        elif col.dtype.kind in "iu":
            dtype, values = "INT64", col.astype(np.int64)
        else:
            dtype, values = "FP64", col.astype(np.float64)
        tensor = tg.InferInput(name, [len(frame)], dtype)
        tensor.set_data_from_numpy(values)
        out.append(tensor)
    return out


def jittered(example: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    frame = pd.concat([example] * (rows // len(example) + 1), ignore_index=True).head(rows)
    rng = np.random.default_rng(seed)
    for name in frame.columns:
        if frame[name].dtype.kind == "f":
            frame[name] = frame[name] * rng.uniform(0.8, 1.2, len(frame))
    return frame


def pyfunc_probabilities(store, version: str, frame: pd.DataFrame) -> np.ndarray:
    model = mlflow.pyfunc.load_model(f"models:/{store.model_name}/{version}")
    out = np.asarray(model.predict(frame), dtype=np.float64)
    return out[:, -1] if out.ndim == 2 else out


def infer(client, frame: pd.DataFrame, **kwargs) -> tuple[np.ndarray, str]:
    result = client.infer("credit-risk", tensors(frame), **kwargs)
    return result.as_numpy("probability"), result.get_response(as_json=True)["model_version"]


def test_grpc_beside_http_agrees_with_the_pyfunc_logs_and_refuses(
    trained_store, example_rows, tmp_path
):
    server, client, port = grpc_server(trained_store, tmp_path, MLCYCLE_SHUTDOWN_DELAY_S=4)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("credit-risk", trained_store.version)
        meta = client.get_model_metadata("credit-risk", as_json=True)
        assert {t["name"] for t in meta["inputs"]} == set(example_rows.columns)
        frame = jittered(example_rows, 1000, seed=1)
        got, version = infer(client, frame, headers={"x-request-id": "grpc-1000"})
        assert version == trained_store.version
        np.testing.assert_allclose(
            got, pyfunc_probabilities(trained_store, version, frame), rtol=0, atol=1e-5
        )
        numeric = next(c for c in example_rows.columns if example_rows[c].dtype.kind in "if")
        bad = tensors(frame.head(2))
        names = [t.name() for t in bad]
        bad[names.index(numeric)] = tg.InferInput(numeric, [2], "BYTES")
        bad[names.index(numeric)].set_data_from_numpy(np.array(["x", "y"], dtype=object))
        with pytest.raises(InferenceServerException) as err:
            client.infer("credit-risk", bad)
        assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
        assert f"'{numeric}'" in err.value.message()
        drain_and_stop(server, client, port, frame)
    finally:
        client.close()
        server.stop()
    with sqlite3.connect(server.log_db) as db:
        logged = db.execute(
            "SELECT COALESCE(SUM(n_rows), 0) FROM prediction_batches WHERE request_id = ?",
            ("grpc-1000",),
        ).fetchone()[0]
        logged += db.execute(
            "SELECT COUNT(*) FROM predictions WHERE request_id = ?", ("grpc-1000",)
        ).fetchone()[0]
    assert logged == 1000


def test_a_promotion_switches_grpc_answers(
    store_copy, example_rows, train_another_version, tmp_path
):
    from mlcycle.core.registry import promote

    v2 = train_another_version(promote_margin=1.0, seed=7)  # registered, not promoted
    frame = jittered(example_rows, 50, seed=2)
    server, client, _ = grpc_server(store_copy, tmp_path, workers=1)
    try:
        before, version = infer(client, frame)
        assert version == store_copy.version
        promote(store_copy.model_name, v2, "production", "test gRPC follows promotions")
        wait_until(lambda: infer(client, frame)[1] == v2, 30, f"gRPC answers from v{v2}", 0.5)
        after, _ = infer(client, frame)
        np.testing.assert_allclose(
            after, pyfunc_probabilities(store_copy, v2, frame), rtol=0, atol=1e-5
        )
        assert not np.allclose(after, before, atol=1e-5)
        assert client.is_model_ready("credit-risk", v2)
        assert not client.is_model_ready("credit-risk", store_copy.version)
    finally:
        client.close()
        server.stop()
