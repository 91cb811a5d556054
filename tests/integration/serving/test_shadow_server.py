"""A real `mlcycle serve --grpc-port` (2 workers) with `MLCYCLE_SHADOW=true` on the trained store:
every answered request, HTTP or gRPC, is scored again by the `challenger` in shadow under the
same request id; moving the alias is followed; explanations over HTTP and gRPC add up."""

from __future__ import annotations

import json
import sqlite3

import mlflow
import pytest
import requests

from tests.helpers import add_version, records, wait_until
from tests.integration.serving.test_grpc_server import grpc_server, jittered, tensors

pytestmark = pytest.mark.slow


def _shadow_rows(path) -> list[tuple]:
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        try:
            return conn.execute(
                'SELECT request_id, "row", shadow_version, production_version '
                "FROM shadow_predictions ORDER BY id"
            ).fetchall()
        except sqlite3.OperationalError:  # the table is created with the first writer
            return []


def test_shadow_and_explanations_on_a_real_server(store_copy, example_rows, tmp_path):
    client = mlflow.MlflowClient(store_copy.tracking_uri)
    v2 = add_version(store_copy, store_copy.version)
    client.set_registered_model_alias(store_copy.model_name, "challenger", v2)
    server, grpc_client, _ = grpc_server(store_copy, tmp_path, 2, MLCYCLE_SHADOW="true")
    try:
        frame = jittered(example_rows, 40, seed=3)
        ids = []
        for i in range(0, 40, 10):
            answer = requests.post(
                server.url + "/invocations",
                json={"dataframe_records": records(frame.iloc[i : i + 10])},
                timeout=30,
            )
            assert answer.status_code == 200
            ids.append(answer.headers["X-Request-ID"])
        rows = wait_until(
            lambda: len(_shadow_rows(server.log_db)) >= 40 and _shadow_rows(server.log_db),
            30,
            "40 shadow rows from both workers",
        )
        assert sorted((r[0], r[1]) for r in rows) == sorted((i, k) for i in ids for k in range(10))
        assert {(r[2], r[3]) for r in rows} == {(v2, store_copy.version)}
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        assert f'mlcycle_shadow_rows_total{{shadow_version="{v2}"}} 40.0' in metrics

        # gRPC answers are shadowed too, and its parameter `explain` adds the attributions.
        inputs = tensors(frame.head(2))
        result = grpc_client.infer(store_copy.model_name, inputs, parameters={"explain": True})
        response = result.get_response(as_json=True)
        explained = json.loads(response["parameters"]["explanations"]["string_param"])
        probabilities = result.as_numpy("probability").reshape(-1)
        for explanation, p in zip(explained, probabilities, strict=True):
            total = sum(explanation["attributions"].values()) + explanation["base_value"]
            assert abs(total - p) < 1e-6
        wait_until(lambda: len(_shadow_rows(server.log_db)) >= 42, 30, "the gRPC rows shadowed")

        row = records(example_rows.head(1))[0]
        one = requests.post(server.url + "/predict?explain=true", json=row, timeout=60).json()
        attributions = one["explanation"]["attributions"]
        assert set(attributions) == set(example_rows.columns)
        assert (
            abs(sum(attributions.values()) + one["explanation"]["base_value"] - one["probability"])
            < 1e-6
        )

        v3 = add_version(store_copy, store_copy.version)
        client.set_registered_model_alias(store_copy.model_name, "challenger", v3)

        def v3_shadowed():
            requests.post(server.url + "/predict", json=row, timeout=30)
            return any(r[2] == v3 for r in _shadow_rows(server.log_db))

        wait_until(v3_shadowed, 60, "the challenger alias moved to v3", every=0.5)
    finally:
        server.stop()
