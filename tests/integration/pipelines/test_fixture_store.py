"""The shared `trained_store` fixture yields a loadable, promoted model (fast smoke check)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


@pytest.mark.slow
def test_trained_store_has_v1_with_stage_and_alias_in_agreement(trained_store):
    import mlflow

    client = mlflow.MlflowClient(trained_store.tracking_uri)
    name = trained_store.model_name
    assert trained_store.version == "1"
    alias = client.get_model_version_by_alias(name, "production")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        production = [
            str(v.version)
            for v in client.search_model_versions(f"name='{name}'")
            if v.current_stage == "Production"
        ]
        mv = client.get_model_version(name, "1")
    # v1 is in Production and stays there: tests that promote work on copies.
    assert production == [str(alias.version)] == ["1"]
    assert mv.run_id == trained_store.run_id
    assert mv.tags["mlcycle.reference_uri"].endswith("reference/reference.parquet")
    assert mv.tags["mlcycle.promoted_to"] == "production"


@pytest.mark.slow
def test_trained_store_model_predicts_raw_rows(trained_store):
    import mlflow

    uri = f"models:/{trained_store.model_name}@production"
    model = mlflow.pyfunc.load_model(uri)
    local = mlflow.artifacts.download_artifacts(uri)
    example = mlflow.models.Model.load(local).load_input_example(local)
    proba = np.asarray(model.predict(example))
    assert proba.shape == (len(example),)
    assert np.all((proba > 0) & (proba < 1))
    fast = model.unwrap_python_model().predict_columns(
        {c: example[c].to_numpy() for c in example.columns}
    )
    np.testing.assert_allclose(fast, proba)


@pytest.mark.slow
def test_train_another_version_respects_the_gate_margin(
    trained_store, store_copy, train_another_version
):
    import mlflow

    client = mlflow.MlflowClient(store_copy.tracking_uri)
    name = store_copy.model_name
    version = train_another_version(promote_margin=1.0)
    assert version == "2"
    assert str(client.get_model_version_by_alias(name, "production").version) == "1"
    assert str(client.get_model_version_by_alias(name, "staging").version) == version
    # The copy is private: the new run's artifacts are in it, the shared store has v1 only.
    run = client.get_run(client.get_model_version(name, version).run_id)
    assert run.info.artifact_uri.startswith(store_copy.root.as_uri())
    shared = mlflow.MlflowClient(trained_store.tracking_uri)
    assert [str(v.version) for v in shared.search_model_versions(f"name='{name}'")] == ["1"]
