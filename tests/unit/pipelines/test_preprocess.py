"""Split and preprocessing spec (pipelines.preprocess)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlcycle.core.synthetic import generate
from pipelines.data import column_roles
from pipelines.preprocess import fit_spec, input_columns, split, transform


@pytest.fixture(scope="module")
def table():
    return generate(3_000, seed=5)


def test_split_is_stratified_and_disjoint(table):
    parts = split(table, "default", seed=1)
    sizes = [len(parts.train), len(parts.val), len(parts.test)]
    assert sum(sizes) == len(table) and sizes[0] > sizes[1] > 0
    rates = [p["default"].mean() for p in (parts.train, parts.val, parts.test)]
    assert max(rates) - min(rates) < 0.01


def test_spec_shape_matches_contract(table):
    spec = fit_spec(table, column_roles(table, "default"))
    json.dumps(spec)  # must be JSON-serialisable
    age = next(c for c in spec["numeric"] if c["name"] == "age")
    assert age["dtype"] == "long" and age["min"] >= 18 and age["std"] > 0
    assert set(age) >= {"name", "dtype", "mean", "std", "median", "min", "max", "allow_missing"}
    home = next(c for c in spec["categorical"] if c["name"] == "home_ownership")
    assert home["categories"] == sorted(home["categories"])
    assert spec["feature_order"][: len(spec["numeric"])] == [c["name"] for c in spec["numeric"]]
    assert "home_ownership=RENT" in spec["feature_order"]
    assert spec["target"] == "default" and "default" not in input_columns(spec)


def test_transform_scales_imputes_and_one_hots(table):
    spec = fit_spec(table, column_roles(table, "default"))
    x = transform(spec, table)
    n_num = len(spec["numeric"])
    np.testing.assert_allclose(x[:, :n_num].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(x[:, :n_num].std(axis=0), 1, atol=1e-9)
    # Each categorical column contributes exactly one 1 per row.
    assert np.all(x[:, n_num:].sum(axis=1) == len(spec["categorical"]))
    row = table.head(1).copy()
    row["income"] = np.nan
    row["home_ownership"] = None
    out = transform(spec, row)
    income = next(c for c in spec["numeric"] if c["name"] == "income")
    col = spec["feature_order"].index("income")
    assert out[0, col] == pytest.approx((income["median"] - income["mean"]) / income["std"])
    home = [i for i, f in enumerate(spec["feature_order"]) if f.startswith("home_ownership=")]
    assert out[0, home].sum() == 0


def test_high_cardinality_text_columns_are_dropped():
    df = pd.DataFrame({"id": [f"r{i}" for i in range(300)], "x": range(300), "y": [0, 1] * 150})
    spec = fit_spec(df, column_roles(df, "y"))
    assert input_columns(spec) == ["x"]
