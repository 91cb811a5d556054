"""Helpers of the pipeline unit tests: a random network over a fitted synthetic spec."""

from __future__ import annotations

import numpy as np

from mlcycle.core.synthetic import generate
from pipelines.data import column_roles
from pipelines.preprocess import fit_spec


def random_network(rows: int, seed: int, hidden: int, scale: float = 1.0):
    """(spec, layers, raw input rows): a spec fitted on `rows` synthetic rows and a random
    one-hidden-layer network over its features."""
    df = generate(rows, seed=seed)
    spec = fit_spec(df, column_roles(df, "default"))
    rng = np.random.default_rng(0)
    n = len(spec["feature_order"])
    layers = [
        (rng.normal(scale=scale, size=(n, hidden)), rng.normal(scale=scale, size=hidden)),
        (rng.normal(scale=scale, size=(hidden, 1)), rng.normal(scale=scale, size=1)),
    ]
    return spec, layers, df.drop(columns="default")
