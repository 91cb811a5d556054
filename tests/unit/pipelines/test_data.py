"""The synthetic generator and CSV loading (pipelines.data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.core.synthetic import generate
from pipelines.data import DataError, column_roles, load_table


def test_generate_is_deterministic_per_seed():
    a, b = generate(500, seed=3), generate(500, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not generate(500, seed=4).equals(a)


def test_generate_columns_ranges_and_default_rate():
    df = generate(5_000)
    expected = {
        "age",
        "income",
        "loan_amount",
        "loan_term_months",
        "credit_utilization",
        "debt_to_income",
        "num_late_payments_12m",
        "employment_years",
        "home_ownership",
        "loan_purpose",
        "default",
    }
    assert expected <= set(df.columns)
    assert df["age"].between(18, 80).all() and df["credit_utilization"].between(0, 1).all()
    assert set(df["default"].unique()) == {0, 1}
    assert 0.08 < df["default"].mean() < 0.25
    assert not df.isna().any().any()


def test_target_rises_with_late_payments_and_utilization():
    df = generate(20_000)
    late = df.groupby(df["num_late_payments_12m"].clip(upper=3))["default"].mean()
    assert late.is_monotonic_increasing
    high = df["credit_utilization"] > df["credit_utilization"].quantile(0.75)
    low = df["credit_utilization"] < df["credit_utilization"].quantile(0.25)
    assert df.loc[high, "default"].mean() > 1.5 * df.loc[low, "default"].mean()


def test_drift_moves_distributions_proportionally():
    base, half, full = (generate(10_000, seed=1, drift=d) for d in (0.0, 0.5, 1.0))
    assert base["income"].median() > half["income"].median() > full["income"].median()
    assert (
        base["credit_utilization"].mean()
        < half["credit_utilization"].mean()
        < full["credit_utilization"].mean()
    )
    assert base["num_late_payments_12m"].mean() < full["num_late_payments_12m"].mean()
    rent = [d["home_ownership"].eq("RENT").mean() for d in (base, half, full)]
    assert rent == sorted(rent) and rent[2] - rent[0] > 0.1
    # The category set stays the one the model knows: drift changes the mix only.
    assert set(full["loan_purpose"]) <= set(base["loan_purpose"])


def test_generate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="drift"):
        generate(10, drift=1.5)
    with pytest.raises(ValueError, match="n_rows"):
        generate(0)


def test_column_roles_numeric_bool_categorical():
    df = pd.DataFrame({"a": [1, 2], "b": [True, False], "c": ["x", "y"], "t": [0, 1]})
    roles = column_roles(df, "t")
    assert roles.numeric == ["a", "b"] and roles.categorical == ["c"] and roles.target == "t"


def _csv(tmp_path, df: pd.DataFrame):
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    return path


def test_load_table_maps_a_text_target_to_0_1(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "label": rng.choice(["no", "yes"], 40)})
    loaded = load_table(_csv(tmp_path, df), "label")
    assert loaded["label"].tolist() == (df["label"] == "yes").astype(int).tolist()
    assert loaded.attrs["positive_label"] == "yes"


def test_load_table_turns_booleans_into_numbers(tmp_path):
    df = pd.DataFrame({"flag": [True, False] * 15, "city": ["a", "b", "c"] * 10, "y": [0, 1] * 15})
    loaded = load_table(_csv(tmp_path, df), "y")
    assert loaded["flag"].dtype == np.int64
    assert column_roles(loaded, "y").numeric == ["flag"]


def test_load_table_errors_are_clear(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_table(tmp_path / "missing.csv", "y")
    df = pd.DataFrame({"x": range(30), "y": [0, 1, 2] * 10})
    with pytest.raises(DataError, match="'nope' not in data.csv; columns are: x, y"):
        load_table(_csv(tmp_path, df), "nope")
    with pytest.raises(DataError, match="exactly two distinct values, found 3"):
        load_table(_csv(tmp_path, df), "y")
    df["y"] = [0, 1] * 14 + [None, 1]
    with pytest.raises(DataError, match="missing values"):
        load_table(_csv(tmp_path, df), "y")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="cannot read"):
        load_table(empty, "y")
