"""A tiny real model for serving unit tests (no MLflow, no training): its preprocessing spec,
one valid row, and `make_service`, a `ModelService` around it."""

from __future__ import annotations

import numpy as np

from serving.model import ModelService

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
