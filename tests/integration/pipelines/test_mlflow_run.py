"""`mlflow run . --env-manager local` end to end, in a fresh SQLite store per module.

Covers the issue's acceptance: the run's contents (params, metrics, reference sample, two
models), v1 in Production with alias `production`, both branches of the champion/challenger
gate, loading by stage and by alias, a clear error for bad input, loading without `pipelines`
importable, and training on a CSV of another domain.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import tracking_uri

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SMALL = ["-P", "epochs=2", "-P", "rows=4000"]


def _mlflow_run(store, *params: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = os.environ | {"MLFLOW_TRACKING_URI": store["uri"], "TF_CPP_MIN_LOG_LEVEL": "2"}
    # The MLproject command runs `python`: make that this interpreter (the project's venv).
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for leftover in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(leftover, None)  # another test's in-process run may have set them
    # Run from the store folder so MLflow's default experiment keeps artifacts there.
    cmd = [sys.executable, "-m", "mlflow", "run", str(REPO), "--env-manager", "local", *params]
    result = subprocess.run(
        cmd, cwd=store["root"], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def _client(store):
    import mlflow

    return mlflow.MlflowClient(store["uri"])


def _stages(store, name: str = "credit-risk") -> dict[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        versions = _client(store).search_model_versions(f"name='{name}'")
    return {str(v.version): v.current_stage for v in versions}


def _alias(store, name: str = "credit-risk") -> str:
    return str(_client(store).get_model_version_by_alias(name, "production").version)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-run")
    data = {"root": root, "uri": f"sqlite:///{root / 'mlflow.db'}"}
    _mlflow_run(data, *SMALL)
    return data


@pytest.fixture(scope="module")
def use_store(store):
    """Point the in-process MLflow client at the module's store."""
    with tracking_uri(store["uri"]):
        yield store


def test_first_run_logs_everything_and_promotes_v1(store):
    client = _client(store)
    mv = client.get_model_version("credit-risk", "1")
    run = client.get_run(mv.run_id)
    params, metrics = run.data.params, run.data.metrics
    assert (
        params["epochs"] == "2"
        and params["hidden"] == "64"
        and params["data_source"] == "synthetic"
    )
    for name in (
        "val_auc",
        "test_auc",
        "val_accuracy",
        "test_log_loss",
        "val_precision",
        "test_recall",
        "baseline_val_auc",
        "baseline_test_auc",
    ):
        assert name in metrics, name
    assert metrics["val_auc"] > 0.7 and metrics["baseline_val_auc"] > 0.7
    assert len(client.get_metric_history(run.info.run_id, "epoch_val_loss")) == 2
    reference = pd.read_parquet(
        client.download_artifacts(
            run.info.run_id, "reference/reference.parquet", str(store["root"])
        )
    )
    assert {"age", "home_ownership", "default", "prediction"} <= set(reference.columns)
    assert reference["prediction"].between(0, 1).all() and len(reference) > 2000
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id='{run.info.run_id}'"
    )
    assert sorted(m.name for m in logged) == ["baseline", "model"]
    assert _stages(store) == {"1": "Production"} and _alias(store) == "1"
    assert (
        mv.tags["mlcycle.reference_uri"] == f"runs:/{run.info.run_id}/reference/reference.parquet"
    )
    assert mv.tags["mlcycle.source_run_id"] == run.info.run_id
    assert float(mv.tags["mlcycle.val_auc"]) == pytest.approx(metrics["val_auc"], abs=1e-5)


def test_stage_and_alias_uris_load_and_predict_raw_rows(use_store):
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlcycle.core.synthetic import generate

    rows = generate(20, seed=99).drop(columns="default")
    by_stage = mlflow.pyfunc.load_model("models:/credit-risk/Production")
    by_alias = mlflow.pyfunc.load_model("models:/credit-risk@production")
    a, b = np.asarray(by_stage.predict(rows)), np.asarray(by_alias.predict(rows))
    assert a.shape == (20,) and np.all((a > 0) & (a < 1))
    np.testing.assert_array_equal(a, b)
    bad_inputs = {
        "age": rows.drop(columns="age"),
        "income": rows.assign(income="a lot"),
        "loan_purpose": rows.assign(loan_purpose="yacht"),
    }
    for column, frame in bad_inputs.items():
        with pytest.raises((MlflowException, ValueError), match=column) as info:
            by_alias.predict(frame)
        assert "tensorflow" not in str(info.value).lower()


def test_model_loads_where_pipelines_and_tensorflow_cannot_be_imported(store, tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pipelines"] = None   # any `import pipelines` now fails
        sys.modules["tensorflow"] = None
        sys.modules["keras"] = None
        import mlflow
        model = mlflow.pyfunc.load_model("models:/credit-risk@production")
        local = mlflow.artifacts.download_artifacts("models:/credit-risk@production")
        example = mlflow.models.Model.load(local).load_input_example(local)
        print(len(model.predict(example)))
        """
    )
    env = os.environ | {"MLFLOW_TRACKING_URI": store["uri"]}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "5"


def test_gate_keeps_a_worse_challenger_in_staging_then_promotes_a_better_one(store):
    _mlflow_run(store, *SMALL, "-P", "promote-margin=1.0")
    assert _stages(store) == {"1": "Production", "2": "Staging"} and _alias(store) == "1"
    assert "<=" in _client(store).get_model_version("credit-risk", "2").tags["mlcycle.gate"]
    _mlflow_run(store, *SMALL, "-P", "promote-margin=-1.0", "-P", "seed=7")
    # v3 went through Staging (archiving v2 there) and then won the gate.
    assert _stages(store) == {"1": "Archived", "2": "Archived", "3": "Production"}
    assert _alias(store) == "3"


def test_other_domain_numeric_csv_trains_with_only_data_and_target(use_store, tmp_path):
    store = use_store
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "benign"})
    path = tmp_path / "cancer.csv"
    frame.to_csv(path, index=False)
    _mlflow_run(
        store,
        "-P",
        f"data={path}",
        "-P",
        "target=benign",
        "-P",
        "epochs=5",
        "-P",
        "model-name=cancer",
    )
    client = _client(store)
    mv = client.get_model_version("cancer", "1")
    assert float(mv.tags["mlcycle.val_auc"]) > 0.9
    assert _alias(store, "cancer") == "1"
    import mlflow

    local = mlflow.artifacts.download_artifacts("models:/cancer/1")
    names = mlflow.models.Model.load(local).get_input_schema().input_names()
    assert len(names) == 30 and "mean radius" in names and "benign" not in names


def test_bad_csv_is_one_clear_error(tmp_path):
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "train", "--data", str(tmp_path / "none.csv")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "data file not found" in result.stderr
