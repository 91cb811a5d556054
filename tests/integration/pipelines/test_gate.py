"""The champion/challenger gate on a real SQLite MLflow store: the same rows for both versions.

The versions are small hand-built networks (a logistic regression written as a two-unit ReLU
network, or a deliberately weak one), logged and registered exactly as training does, so the gate
loads them from `models:/credit-risk/<v>` without any Keras training.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlcycle.core import registry
from mlcycle.core.synthetic import generate
from pipelines import pipeline
from pipelines.data import column_roles
from pipelines.preprocess import fit_spec, input_columns, split, transform
from pipelines.register import gate, register
from tests.helpers import tracking_uri

pytestmark = pytest.mark.slow

NAME = "credit-risk"


@pytest.fixture(scope="module")
def data():
    df = generate(4000, seed=21)
    parts = split(df, "default", seed=21)
    return parts, fit_spec(parts.train, column_roles(df, "default"))


def _as_network(coef: np.ndarray, intercept: float) -> list:
    """sigmoid(relu(z) - relu(-z)) = sigmoid(z): a logistic regression as the served network."""
    w0 = np.stack([coef, -coef], axis=1)
    return [(w0, np.array([intercept, -intercept])), (np.array([[1.0], [-1.0]]), np.zeros(1))]


def _good(parts, spec) -> list:
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(max_iter=500).fit(transform(spec, parts.train), parts.train["default"])
    return _as_network(fit.coef_[0], float(fit.intercept_[0]))


def _weak(spec) -> list:
    """Risk read from age alone, with the wrong sign: far below the logistic regression."""
    coef = np.zeros(len(spec["feature_order"]))
    coef[spec["feature_order"].index("age")] = 0.5
    return _as_network(coef, -2.0)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """An empty store with the experiment; creating MLflow's schema takes seconds."""
    root = tmp_path_factory.mktemp("gate-template")
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    client.create_experiment("gate", artifact_location=(root / "artifacts").as_uri())
    return root / "mlflow.db"


@pytest.fixture
def store(template_db, tmp_path):
    """A fresh copy of the template store, as the client and the global tracking URI."""
    shutil.copy(template_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with tracking_uri(uri):
        client = mlflow.MlflowClient(uri)
        yield client, client.get_experiment_by_name("gate").experiment_id


def _register(store, spec, layers, test, margin=0.0, live=None):
    client, experiment = store
    with mlflow.start_run(experiment_id=experiment) as run, tempfile.TemporaryDirectory() as tmp:
        example = test[input_columns(spec)].head(3)
        info = pipeline.log_network(spec, layers, example, Path(tmp))
        return register(
            client, info.model_uri, NAME, run.info.run_id, {}, test, "default", margin, live
        )


def _auc(version: str, rows: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    return roc_auc_score(rows["default"], model.predict(rows.drop(columns="default")))


def _stage(client, version: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return client.get_model_version(NAME, version).current_stage


def test_a_better_champion_is_kept_and_both_scores_are_recorded(store, data):
    client, _ = store
    parts, spec = data
    first = _register(store, spec, _good(parts, spec), parts.test)
    assert first.promoted and first.production_before is None
    decision = _register(store, spec, _weak(spec), parts.test)
    assert not decision.promoted and decision.production_before == "1"
    # Both versions scored on the same rows: the challenger's test split.
    assert decision.rows == len(parts.test)
    assert decision.champion_auc == pytest.approx(_auc("1", parts.test), abs=1e-9)
    assert decision.challenger_auc == pytest.approx(_auc("2", parts.test), abs=1e-9)
    assert decision.challenger_auc < decision.champion_auc
    tags = client.get_model_version(NAME, "2").tags
    assert tags["mlcycle.gate_decision"] == "kept" and "<=" in tags["mlcycle.gate"]
    assert float(tags["mlcycle.gate_auc"]) == pytest.approx(decision.challenger_auc, abs=1e-6)
    assert float(tags["mlcycle.gate_champion_auc"]) == pytest.approx(
        decision.champion_auc, abs=1e-6
    )
    assert tags["mlcycle.gate_champion"] == "1" and tags["mlcycle.gate_rows"] == str(decision.rows)
    assert _stage(client, "2") == "Staging" and _stage(client, "1") == "Production"
    last = registry.history(NAME, client)[-1]
    assert last["version"] == "2" and last["to"] == "staging"
    assert last["gate"]["decision"] == "kept" and last["gate"]["champion"] == "1"
    assert last["gate"]["auc"] == pytest.approx(decision.challenger_auc, abs=1e-4)
    assert last["gate"]["champion_auc"] == pytest.approx(decision.champion_auc, abs=1e-4)


def test_a_better_challenger_is_promoted_with_both_scores_in_history(store, data):
    client, _ = store
    parts, spec = data
    assert _register(store, spec, _weak(spec), parts.test).promoted  # no production yet
    decision = _register(store, spec, _good(parts, spec), parts.test)
    assert decision.promoted and decision.challenger_auc > decision.champion_auc + 0.1
    assert _stage(client, "2") == "Production" and _stage(client, "1") == "Archived"
    assert str(client.get_model_version_by_alias(NAME, "production").version) == "2"
    assert client.get_model_version(NAME, "2").tags["mlcycle.gate_decision"] == "promoted"
    last = registry.history(NAME, client)[-1]
    assert last["to"] == "production" and last["previous"] == "1"
    assert last["gate"] | {"auc": None, "champion_auc": None} == {
        "decision": "promoted",
        "auc": None,
        "champion": "1",
        "champion_auc": None,
        "margin": 0.0,
        "rows": len(parts.test),
        "live_rows": 0,
    }
    assert last["gate"]["auc"] > last["gate"]["champion_auc"]


def test_the_margin_is_applied_to_the_same_rows_score(store, data):
    parts, spec = data
    _register(store, spec, _weak(spec), parts.test)
    decision = _register(store, spec, _good(parts, spec), parts.test, margin=0.9)
    assert not decision.promoted and "+ margin +0.9000" in decision.reason


def test_labelled_live_rows_join_the_gate_and_unknown_categories_are_left_out(store, data):
    client, _ = store
    parts, spec = data
    _register(store, spec, _good(parts, spec), parts.test)
    challenger = _register(store, spec, _weak(spec), parts.test, margin=1.0)  # stays in Staging
    live = generate(600, seed=99, concept=1.0)
    live.loc[:49, "loan_purpose"] = "solar_panels"  # neither version knows it
    decision = gate(client, NAME, challenger.version, parts.test, "default", 0.0, live=live)
    assert decision.rows == len(parts.test) + len(live) - 50
    assert "50 left out" in decision.reason
    assert decision.parts["live"]["rows"] == 550
    known = live.iloc[50:]
    assert decision.parts["live"]["champion_auc"] == pytest.approx(_auc("1", known), abs=1e-9)
    tags = client.get_model_version(NAME, challenger.version).tags
    assert tags["mlcycle.gate_live_rows"] == "550"
    assert float(tags["mlcycle.gate_live_auc"]) == pytest.approx(_auc("2", known), abs=1e-6)
    assert registry.history(NAME, client)[-1]["gate"]["live_rows"] == 550


def _shadow_log(path: Path, version: str, rows: int, seed: int = 3) -> str:
    """A prediction log where `version`, in shadow beside production v1, ranked `rows` labelled
    rows worse than production did (production's AUC 1.0, the shadow's about 0.5)."""
    import sqlite3

    import sqlalchemy as sa

    from mlcycle.core import prediction_log as contract

    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    contract.create_schema(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    labels = np.arange(rows) % 2
    production = np.where(labels == 1, 0.8, 0.2)
    shadow = rng.random(rows)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            contract.insert_sql(contract.SHADOW),
            [
                (1.0 + i, f"r{i}", 0, NAME, version, "1", float(shadow[i]), float(production[i]))
                for i in range(rows)
            ],
        )
        conn.executemany(
            contract.insert_sql(contract.LABELS),
            [(f"r{i}", 0, int(labels[i]), 2.0 + i) for i in range(rows)],
        )
    return url


def test_shadow_evidence_is_recorded_and_can_keep_a_challenger_out(store, data, tmp_path):
    client, _ = store
    parts, spec = data
    _register(store, spec, _weak(spec), parts.test)  # v1 in production
    assert not _register(store, spec, _good(parts, spec), parts.test, margin=0.9).promoted
    # Better on the test split, worse on 300 labelled live rows it scored in shadow: kept.
    many = _shadow_log(tmp_path / "many.db", "2", 300)
    kept = gate(client, NAME, "2", parts.test, margin=0.0, shadow_log_url=many)
    assert kept.challenger_auc > kept.champion_auc and not kept.promoted
    assert "kept by shadow: live AUC" in kept.reason and kept.parts["shadow"]["rows"] == 300
    tags = client.get_model_version(NAME, "2").tags
    assert tags["mlcycle.gate_shadow_rows"] == "300"
    assert float(tags["mlcycle.gate_champion_shadow_auc"]) == pytest.approx(1.0)
    assert float(tags["mlcycle.gate_shadow_auc"]) < 0.7
    assert registry.history(NAME, client)[-1]["gate"]["shadow_rows"] == 300
    # 40 labelled shadow rows are recorded but too few to decide.
    few = _shadow_log(tmp_path / "few.db", "2", 40)
    promoted = gate(client, NAME, "2", parts.test, margin=0.0, shadow_log_url=few)
    assert promoted.promoted and "shadow: live AUC" in promoted.reason
    assert promoted.parts["shadow"]["rows"] == 40
