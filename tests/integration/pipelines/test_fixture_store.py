"""The shared `trained_store` fixture yields a loadable, promoted model (fast smoke check)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest


@pytest.mark.slow
def test_trained_store_has_v1_in_production_by_stage_and_alias(trained_store):
    import mlflow

    client = mlflow.MlflowClient(trained_store.tracking_uri)
    alias = client.get_model_version_by_alias(trained_store.model_name, "production")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mv = client.get_model_version(trained_store.model_name, trained_store.version)
    assert str(alias.version) == trained_store.version == "1"
    assert mv.current_stage == "Production"
    assert mv.run_id == trained_store.run_id
    assert mv.tags["mlcycle.reference_uri"].endswith("reference/reference.parquet")


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
def test_train_another_version_respects_the_gate_margin(trained_store, train_another_version):
    import mlflow

    version = train_another_version(promote_margin=1.0)
    client = mlflow.MlflowClient(trained_store.tracking_uri)
    assert version == "2"
    assert (
        str(client.get_model_version_by_alias(trained_store.model_name, "production").version)
        == "1"
    )
    assert (
        str(client.get_model_version_by_alias(trained_store.model_name, "staging").version) == "2"
    )
