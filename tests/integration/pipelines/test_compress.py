"""`mlcycle compress` on a real SQLite store: the variant registers signed with its lineage, the
gate's decision is recorded, `mlcycle serve` serves it after promotion within 0.01 of its
parent; a variant that loses too much AUC stays in Staging with the reason."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.helpers import MLCYCLE_SERVE, Server, records

pytestmark = pytest.mark.slow

KEY = "compress-test-signing-key-0123456789"


def _compress(store, *args: str):
    from typer.testing import CliRunner

    from mlcycle.cli import app

    result = CliRunner().invoke(app, ["compress", "--version", store.version, *args])
    assert result.exit_code == 0, result.output
    return result.output


def _newest(client, name: str):
    """The newest version's number (as text) and tags."""
    newest = max(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version))
    return str(newest.version), client.get_model_version(name, str(newest.version))


def test_int8_variant_is_registered_signed_gated_and_served_after_promotion(
    store_copy, example_rows, tmp_path, monkeypatch
):
    import mlflow

    from mlcycle.core import registry
    from mlcycle.core.signing import SIGNATURE_TAG

    monkeypatch.setenv("MLCYCLE_SIGNING_KEY", KEY)
    output = _compress(store_copy, "--method", "int8", "--experiment", "tests")
    client, name = mlflow.MlflowClient(), store_copy.model_name
    version, variant = _newest(client, name)
    tags = variant.tags
    assert version != store_copy.version and f"v{version}" in output
    assert tags["mlcycle.parent_version"] == store_copy.version
    assert tags["mlcycle.compression.method"] == "int8"
    assert int(tags["mlcycle.parent_weight_bytes"]) >= 3.5 * int(tags["mlcycle.weight_bytes"])
    assert int(tags["mlcycle.artifact_bytes"]) < int(tags["mlcycle.parent_artifact_bytes"])
    assert tags[SIGNATURE_TAG].startswith("hmac-sha256")
    assert tags["mlcycle.gate_decision"] in {"passed", "kept"}
    assert "AUC" in tags["mlcycle.gate"] and "us/row" in tags["mlcycle.gate"]
    assert variant.current_stage == "Staging"

    registry.promote(name, version, "production", "test: the int8 variant", client=client)
    rows = example_rows.sample(n=200, replace=True, random_state=1).reset_index(drop=True)
    parent = mlflow.pyfunc.load_model(f"models:/{name}/{store_copy.version}").predict(rows)
    server = Server(store_copy, tmp_path, workers=1, command=MLCYCLE_SERVE, MLCYCLE_SIGNING_KEY=KEY)
    try:
        r = requests.post(server.url + "/invocations", json={"dataframe_records": records(rows)})
        assert r.status_code == 200, r.text
        assert r.headers["X-Model-Version"] == version
        served = np.asarray(r.json()["predictions"], dtype=np.float64)
    finally:
        server.stop()
    assert np.abs(served - np.asarray(parent, dtype=np.float64)).max() <= 0.01


def test_a_variant_that_loses_auc_stays_in_staging_with_the_reason(store_copy):
    import mlflow

    from mlcycle.core import registry

    output = _compress(store_copy, "--method", "prune", "--sparsity", "0.99")
    client, name = mlflow.MlflowClient(), store_copy.model_name
    version, variant = _newest(client, name)
    assert "gate failed" in output
    assert variant.tags["mlcycle.gate_decision"] == "kept"
    assert "AUC drop" in variant.tags["mlcycle.gate"]
    assert variant.current_stage == "Staging"
    assert registry.resolve_production(client, name).version == store_copy.version
    last = registry.history(name, client=client)[-1]
    assert last["version"] == version and "AUC drop" in last["reason"]


def test_an_unknown_method_is_one_clear_error(store_copy):
    from typer.testing import CliRunner

    from mlcycle.cli import app

    result = CliRunner().invoke(app, ["compress", "--version", "1", "--method", "int4"])
    assert result.exit_code == 1 and "method must be one of" in result.output
