"""`mlcycle tune` on a real SQLite store: one parent run with a nested run per trial, the best
retrained and gated, on a user's CSV; and two worker processes sharing one PostgreSQL Optuna
storage, both adding trials to the same study and the same MLflow parent run."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlcycle.core.synthetic import generate
from tests import postgres
from tests.helpers import kill_tree, start

pytestmark = pytest.mark.slow

FAST = {"rows": 2_000, "epochs": 2, "patience": 1, "experiment": "tests"}


def _children(client, parent_run_id: str) -> list:
    experiment = client.get_run(parent_run_id).info.experiment_id
    query = f"tags.mlflow.parentRunId = '{parent_run_id}'"
    return client.search_runs([experiment], query)


def test_tune_on_a_csv_nests_each_trial_and_gates_the_retrained_best(store_copy, tmp_path):
    import mlflow

    from pipelines.compress import CompressConfig, compress
    from pipelines.settings import TrainConfig
    from pipelines.tune import TuneConfig, tune

    csv = tmp_path / "loans.csv"
    df = generate(1_500, seed=5).rename(columns={"default": "outcome"})
    df.assign(outcome=df["outcome"].map({0: "repaid", 1: "defaulted"})).to_csv(csv, index=False)
    base = TrainConfig(data=str(csv), target="outcome", **FAST)
    result = tune(base, TuneConfig(trials=2))

    client = mlflow.MlflowClient()
    trials = _children(client, result.parent_run_id)
    assert result.trials == 2 and len(trials) == 2
    assert all("val_auc" in run.data.metrics for run in trials)
    version = client.get_model_version(store_copy.model_name, result.version)
    assert version.tags["mlcycle.source_run_id"] == result.parent_run_id
    assert "mlcycle.gate_decision" in version.tags, "the best trial went through the gate"
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["data_source"] == str(csv)
    assert "best_trial_val_auc" in parent.data.metrics

    # the tuned version compresses too: its holdout is rebuilt from the same CSV
    variant = compress(CompressConfig(version=result.version, experiment="tests"))
    tags = client.get_model_version(store_copy.model_name, variant.version).tags
    assert tags["mlcycle.parent_version"] == result.version and "AUC" in tags["mlcycle.gate"]


@pytest.mark.postgres
def test_two_workers_share_one_postgres_study_and_one_parent_run(store_copy, tmp_path):
    import mlflow
    import optuna

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("tests").experiment_id
    parent = client.create_run(experiment, run_name="shared search").info.run_id
    with postgres.server() as admin, postgres.database(admin, "optuna") as url:
        optuna.create_study(storage=url, study_name=f"tune-{parent}", direction="maximize")
        plain = url.replace("postgresql+psycopg2://", "postgresql://")  # both forms work
        procs = [_worker(store_copy, parent, storage, tmp_path / f"w{i}.log")
                 for i, storage in enumerate((url, plain))]  # fmt: skip
        try:
            for i, proc in enumerate(procs):
                code = proc.wait(timeout=400)
                assert code == 0, (tmp_path / f"w{i}.log").read_text()[-3000:]
        finally:
            for proc in procs:
                kill_tree(proc)
        study = optuna.load_study(study_name=f"tune-{parent}", storage=url)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    workers = {t.user_attrs["worker"] for t in done}
    assert len(done) == 4 and len(workers) == 2, "both workers added their two trials"
    nested = _children(client, parent)
    assert {run.info.run_id for run in nested} == {t.user_attrs["mlflow_run_id"] for t in done}
    assert {run.data.tags["mlcycle.tune_worker"] for run in nested} == workers


def _worker(store, parent: str, storage: str, log_path) -> subprocess.Popen:
    """`python -m pipelines tune` joining `parent` as a worker with two tiny trials."""
    env = dict(os.environ, MLFLOW_TRACKING_URI=store.tracking_uri)
    cmd = [sys.executable, "-m", "pipelines", "tune", "--trials", "2", "--rows", "2000"]
    cmd += ["--epochs", "1", "--patience", "1", "--parent-run-id", parent, "--storage", storage]
    return start(cmd, env, log_path)
