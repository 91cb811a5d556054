"""The MLflow store a benchmark measures, and the one-row request body of its model.

In: a temporary folder, or the URI of a store that holds `credit-risk@production`. Out: the
store's URI (a fresh empty one, or one with a small trained model), set for this process and
the servers it starts (`MLFLOW_TRACKING_URI`), and a one-row `dataframe_records` body built
from the model's input example.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MODEL_URI = "models:/credit-risk@production"


EXPERIMENT = "bench"


def empty_store(root: Path) -> str:
    """A fresh, empty SQLite store under `root` with the experiment `EXPERIMENT` (artifacts in
    `root/art`), set for this process and the servers it starts; returns its URI."""
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient(uri).create_experiment(
        EXPERIMENT, artifact_location=(root / "art").as_uri()
    )
    return uri


def train_store(root: Path) -> str:
    """Train and register a small model (bundled data) in a fresh store; returns its URI."""
    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    uri = empty_store(root)
    run(TrainConfig(rows=5000, epochs=2, experiment=EXPERIMENT))
    return uri


def use_store(root: Path, tracking_uri: str | None = None) -> str:
    """`tracking_uri` if given (it must hold `credit-risk@production`), else a fresh trained
    store under `root`; either way the store of this process and of the servers it starts."""
    if not tracking_uri:
        return train_store(root)
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    return tracking_uri


def one_row_body(root: Path) -> Path:
    """Write `root/body.json`: the production model's first input example row as
    `dataframe_records`; returns its path."""
    import mlflow
    import pandas as pd

    local = mlflow.artifacts.download_artifacts(MODEL_URI)
    ex = pd.DataFrame(mlflow.models.Model.load(local).load_input_example(local)).head(1)
    body = root / "body.json"
    body.write_text(json.dumps({"dataframe_records": json.loads(ex.to_json(orient="records"))}))
    return body
