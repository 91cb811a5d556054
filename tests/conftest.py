"""Shared fixtures: one tiny trained model in a real MLflow SQLite store, per test session.

`trained_store` trains once (2,000 synthetic rows, 2 epochs, ~10 s), registers `credit-risk`
v1 in Production (stage + alias) and points `MLFLOW_TRACKING_URI` at the store for the rest of
the session. Every test shares it read-only: a test that promotes, registers, trains or logs
runs takes `store_copy` (a private copy that is the default store during the test), and the
session fails at its end if the shared store changed. `train_another_version` registers more
versions in that copy. Every test also gets its environment and MLflow's tracking URI back
afterwards (`_environment_restored`). Plain helpers are in `tests/helpers.py`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import (
    TINY,
    TrainedStore,
    copy_store,
    input_example,
    store_digest,
    tracking_uri,
)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _train(store_uri: str, experiment: str, **overrides) -> object:
    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    options = TINY | {"experiment": experiment} | overrides
    with tracking_uri(store_uri):
        return run(TrainConfig(**options))


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """What a test leaves in `os.environ` or in MLflow's global tracking URI never reaches the
    next test of the same process (an xdist worker runs files in any order): in-process
    training's `mlflow.set_experiment` exports `MLFLOW_EXPERIMENT_ID` to every later
    subprocess, and `set_tracking_uri` outlives the store it names."""
    import mlflow

    env, uri = dict(os.environ), mlflow.get_tracking_uri()
    yield
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
    os.environ.clear()
    os.environ.update(env)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedStore]:
    """Train and register one tiny model in a fresh SQLite store (once per session)."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with tracking_uri(uri):
        # Artifacts (training runs and the drift job's `monitoring` runs) go next to the
        # database, not into the working folder's ./mlruns.
        client = mlflow.MlflowClient(uri)
        for experiment in ("tests", "monitoring"):
            client.create_experiment(experiment, artifact_location=(root / "artifacts").as_uri())
        result = _train(uri, "tests")
        store = TrainedStore(uri, "credit-risk", str(result.version), result.run_id, root)
        digest = store_digest(store)
        yield store
    if store_digest(store) != digest:
        pytest.fail("a test changed the shared trained store: give it `store_copy` instead")


@pytest.fixture
def store_copy(trained_store: TrainedStore, tmp_path) -> Iterator[TrainedStore]:
    """A private copy of the trained store, MLflow's default store while the test runs."""
    store = copy_store(trained_store, tmp_path / "mlflow-store")
    with tracking_uri(store.tracking_uri):
        yield store


@pytest.fixture(scope="session")
def example_rows(trained_store: TrainedStore):
    """The trained model's input example (a DataFrame of raw rows, as MLflow logged them)."""
    return input_example(trained_store)


@pytest.fixture
def train_another_version(store_copy: TrainedStore) -> Callable[..., str]:
    """A function `train_version(**overrides) -> version` that registers one more version in
    the test's `store_copy`.

    Overrides are `pipelines.settings.TrainConfig` fields, e.g. `promote_margin=1.0` (stays in
    Staging) or `promote_margin=-1.0` (promoted), `seed=7`.
    """

    def train_version(**overrides) -> str:
        return str(_train(store_copy.tracking_uri, "tests", **overrides).version)

    return train_version
