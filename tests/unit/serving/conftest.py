"""Fixtures for serving unit tests: a tiny real model (no MLflow, no training) and its app."""

from __future__ import annotations

import numpy as np
import pytest

from serving.model import ModelService
from serving.settings import Settings

SPEC = {
    "target": "default",
    "positive_label": 1,
    "numeric": [
        {
            "name": "age",
            "dtype": "long",
            "mean": 40.0,
            "std": 10.0,
            "median": 38.0,
            "allow_missing": True,
        },
        {
            "name": "income",
            "dtype": "double",
            "mean": 5e4,
            "std": 2e4,
            "median": 4.5e4,
            "allow_missing": False,
        },
    ],
    "categorical": [
        {"name": "home", "categories": ["OWN", "RENT"], "allow_missing": True},
        {"name": "purpose", "categories": ["car", "edu"], "allow_missing": False},
    ],
    "feature_order": ["age", "income", "home=OWN", "home=RENT", "purpose=car", "purpose=edu"],
}
ROW = {"age": 35, "income": 42000.5, "home": "RENT", "purpose": "car"}


class StubModel:
    """A logistic model over the spec's features: the `predict_columns` + `spec` contract."""

    spec = SPEC

    def __init__(self, bias: float = 0.0) -> None:
        self.bias = bias
        self.calls = 0
        self.weights = np.array([0.8, -0.5, -0.3, 0.4, 0.2, -0.6])

    def predict_columns(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        self.calls += 1
        age = np.where(np.isnan(columns["age"]), 38.0, columns["age"])
        x = [(age - 40.0) / 10.0, (columns["income"] - 5e4) / 2e4]
        for col, cats in (("home", ["OWN", "RENT"]), ("purpose", ["car", "edu"])):
            values = columns[col]
            x += [np.array([v == c for v in values], dtype=float) for c in cats]
        z = np.column_stack(x) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def make_service(version: str = "1", **kwargs) -> ModelService:
    """A `ModelService` around a fresh `StubModel`."""
    return ModelService(StubModel(), "credit-risk", version, "run-" + version, **kwargs)


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with the prediction log in a temp SQLite file and no registry watcher."""
    return Settings(
        prediction_log_url=f"sqlite:///{tmp_path / 'predictions.db'}",
        reports_dir=str(tmp_path / "reports"),
        admin_token="admin-secret",
        start_watcher=False,
    )


@pytest.fixture(params=[True, False], ids=["fast-path", "flask"])
def client(request, settings):
    """A test client of the app serving the stub model, through both request paths."""
    from serving.app import create_app

    app = create_app(settings.model_copy(update={"fast_path": request.param}), make_service())
    yield app.test_client()
    app.extensions["mlcycle"].close()


@pytest.fixture
def app_with(settings):
    """`app_with(**changes)`: the app serving the stub model with `settings` changed; every
    app built is closed after the test."""
    from serving.app import create_app

    apps = []

    def build(**changes):
        apps.append(create_app(settings.model_copy(update=changes), make_service()))
        return apps[-1]

    yield build
    for app in apps:
        app.extensions["mlcycle"].close()
