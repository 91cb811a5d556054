"""Fine-tuning on a real SQLite MLflow store, after a concept shift (issue 12's acceptance).

v1 is trained on today's rule; the outcome's rule then changes (same inputs, `concept=1`).
Fine-tuning production on 6,000 labelled shifted rows must give a version that beats v1 on a
shifted holdout by more than 0.05 AUC, and the gate, scoring both on the same held-out rows,
must promote it. The CSV path of `python -m pipelines finetune` is run too.
"""

from __future__ import annotations

import json

import mlflow
import pytest
import typer
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from mlcycle.core import registry
from mlcycle.core.synthetic import generate
from pipelines import cli
from pipelines.finetune import FinetuneConfig, finetune
from pipelines.pipeline import run
from pipelines.settings import TrainConfig
from tests.helpers import tracking_uri

pytestmark = pytest.mark.slow

NAME = "credit-risk"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store whose v1 (production) learnt today's rule."""
    root = tmp_path_factory.mktemp("finetune")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with tracking_uri(uri):
        client = mlflow.MlflowClient(uri)
        client.create_experiment("ft", artifact_location=(root / "artifacts").as_uri())
        first = run(TrainConfig(rows=3000, epochs=8, hidden=(32,), experiment="ft"))
        assert first.version == "1" and first.promoted
        yield client, root


def _auc(version: str, rows) -> float:
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    return roc_auc_score(rows["default"], model.predict(rows.drop(columns="default")))


def test_fine_tuning_after_a_concept_shift_beats_v1_and_is_promoted(store):
    client, _ = store
    shifted = generate(6000, seed=5, concept=1.0)
    shifted.loc[:119, "loan_purpose"] = "solar_panels"  # a category v1 never saw
    result = finetune(shifted, "production", FinetuneConfig(experiment="ft", epochs=20))
    assert result.parent_version == "1" and result.version == "2"
    assert result.promoted, result.reason
    assert result.new_categories == {"loan_purpose": ["solar_panels"]}
    holdout = generate(3000, seed=9, concept=1.0)
    assert _auc("2", holdout) > _auc("1", holdout) + 0.05
    assert str(client.get_model_version_by_alias(NAME, "production").version) == "2"
    tags = client.get_model_version(NAME, "2").tags
    assert tags["mlcycle.parent_version"] == "1" and tags["mlcycle.label_count"] == "6000"
    assert tags["mlcycle.holdout_rows"] == "1200" and tags["mlcycle.data_window"] == "unspecified"
    assert json.loads(tags["mlcycle.new_categories"]) == result.new_categories
    assert tags["mlcycle.reference_uri"].endswith("reference/reference.parquet")
    assert int(tags["mlcycle.weight_bytes"]) > 0  # the Models page's size column
    # The gate compared both on the held-out rows v1 can score (not on rows with the new one).
    assert float(tags["mlcycle.gate_auc"]) > float(tags["mlcycle.gate_champion_auc"]) + 0.05
    assert "left out: unknown categories" in tags["mlcycle.gate"]
    assert registry.history(NAME, client)[-1]["gate"]["champion"] == "1"
    new_rows = mlflow.pyfunc.load_model(f"models:/{NAME}/2").predict(
        shifted.head(5).drop(columns="default")
    )
    assert len(new_rows) == 5  # the new category is scored, not refused


def test_the_csv_command_fine_tunes_a_given_version_with_lineage(store, tmp_path):
    client, _ = store
    path = tmp_path / "shifted.csv"
    generate(1500, seed=12, concept=1.0).to_csv(path, index=False)
    app = typer.Typer()
    app.command("finetune")(cli.finetune)
    app.command("train")(cli.train)
    args = ["finetune", "--data", str(path), "--parent", "1", "--epochs", "3"]
    result = CliRunner().invoke(app, [*args, "--frozen-layers", "1", "--experiment", "ft"])
    assert result.exit_code == 0, result.output
    version = max(int(v.version) for v in client.search_model_versions(f"name='{NAME}'"))
    assert f"v{version}" in result.output and "parent v1" in result.output
    tags = client.get_model_version(NAME, str(version)).tags
    assert tags["mlcycle.parent_version"] == "1" and tags["mlcycle.label_count"] == "1500"
    assert tags["mlcycle.data_window"] == "csv shifted.csv"
    assert tags["mlcycle.gate_decision"] in ("promoted", "kept")
    assert tags["mlcycle.frozen_layers"] == "1"
    first_layer = [
        mlflow.pyfunc.load_model(f"models:/{NAME}/{v}").unwrap_python_model().layers[0][0]
        for v in ("1", str(version))
    ]
    assert (first_layer[0] == first_layer[1]).all()  # frozen (float32 weights, stored as is)
    run_params = client.get_run(tags["mlcycle.source_run_id"]).data.params
    assert run_params["parent_version"] == "1" and run_params["learning_rate"] == "0.001"
