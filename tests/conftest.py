"""Shared fixtures: one tiny trained model in a real MLflow SQLite store, per test session.

`trained_store` trains once (2,000 synthetic rows, 2 epochs, ~20 s), registers `credit-risk`
v1 in Production (stage + alias) and points `MLFLOW_TRACKING_URI` at the store for the rest of
the session. `train_another_version` registers more versions in the same store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = {"rows": 2_000, "epochs": 2, "hidden": (16,)}


@dataclass(frozen=True)
class TrainedStore:
    """A temporary MLflow store holding one trained, registered, promoted model."""

    tracking_uri: str
    model_name: str
    version: str
    run_id: str
    root: Path


def _train(store_uri: str, experiment: str, **overrides) -> object:
    import mlflow

    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    mlflow.set_tracking_uri(store_uri)
    os.environ["MLFLOW_TRACKING_URI"] = store_uri
    options = TINY | {"experiment": experiment} | overrides
    return run(TrainConfig(**options))


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedStore]:
    """Train and register one tiny model in a fresh SQLite store (once per session)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    # Artifacts (training runs and the drift job's `monitoring` runs) go next to the
    # database, not into the working folder's ./mlruns.
    client = mlflow.MlflowClient(uri)
    for experiment in ("tests", "monitoring"):
        client.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
    result = _train(uri, "tests")
    yield TrainedStore(uri, "credit-risk", str(result.version), result.run_id, root)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@pytest.fixture
def train_another_version(trained_store: TrainedStore) -> Callable[..., str]:
    """A function `train_version(**overrides) -> version` that registers one more version.

    Overrides are `pipelines.settings.TrainConfig` fields, e.g. `promote_margin=1.0` (stays in
    Staging) or `promote_margin=-1.0` (promoted), `seed=7`.
    """

    def train_version(**overrides) -> str:
        return str(_train(trained_store.tracking_uri, "tests", **overrides).version)

    return train_version
