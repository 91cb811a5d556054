"""Fine-tuning's pure parts: growing the parent's vocabulary, the split, the command's errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from mlcycle.core.synthetic import generate
from pipelines import cli
from pipelines.data import column_roles
from pipelines.finetune import data_window, grow, split
from pipelines.model_code import TabularNetModel
from pipelines.preprocess import fit_spec


@pytest.fixture(scope="module")
def parent():
    df = generate(800, seed=3)
    spec = fit_spec(df, column_roles(df, "default"))
    rng = np.random.default_rng(0)
    n = len(spec["feature_order"])
    layers = [(rng.normal(size=(n, 6)), rng.normal(size=6)), (rng.normal(size=(6, 1)), [0.1])]
    return spec, layers


def test_new_categories_join_the_vocabulary_with_zero_weights(parent):
    spec, layers = parent
    rows = generate(300, seed=4)
    rows.loc[:9, "loan_purpose"] = "solar_panels"
    rows.loc[10:14, "home_ownership"] = "BOAT"
    rows.loc[15, "income"] = 5_000_000.0
    grown, grown_layers, added = grow(spec, layers, rows)
    assert added == {"home_ownership": ["BOAT"], "loan_purpose": ["solar_panels"]}
    assert grown["feature_order"][-2:] == ["home_ownership=BOAT", "loan_purpose=solar_panels"]
    parent_purposes = {c["name"]: c["categories"] for c in spec["categorical"]}["loan_purpose"]
    assert "solar_panels" not in parent_purposes  # the parent's spec is left alone
    w0 = grown_layers[0][0]
    assert w0.shape == (len(spec["feature_order"]) + 2, 6)
    np.testing.assert_array_equal(w0[:-2], layers[0][0])
    assert not w0[-2:].any()
    income = next(c for c in grown["numeric"] if c["name"] == "income")
    assert income["max"] == 5_000_000.0
    old, new = TabularNetModel().setup(spec, layers), TabularNetModel().setup(grown, grown_layers)
    known = rows.iloc[16:]
    np.testing.assert_allclose(new.predict(None, known), old.predict(None, known))
    # A new category scores exactly like a missing value until fine-tuning learns it.
    as_missing = rows.iloc[:10].assign(loan_purpose=None)
    np.testing.assert_allclose(new.predict(None, rows.iloc[:10]), old.predict(None, as_missing))


def test_with_timestamps_the_most_recent_rows_are_held_out():
    rows = generate(400, seed=6).assign(ts=np.arange(400, dtype=float)[::-1] + 1.7e9)
    parts = split(rows, "default", holdout=0.25, seed=1)
    assert len(parts.test) == 100
    assert parts.test["ts"].min() > max(parts.train["ts"].max(), parts.val["ts"].max())
    assert data_window(rows, "log since 7d").startswith("log since 7d 2023-11-14T22:13:20+00:00..")


def test_without_timestamps_the_holdout_is_a_stratified_share():
    rows = generate(1000, seed=6)
    parts = split(rows, "default", holdout=0.2, seed=1)
    assert len(parts.test) == 200
    assert abs(parts.test["default"].mean() - rows["default"].mean()) < 0.02
    assert data_window(rows, "") == "unspecified"


def _invoke(*args: str):
    app = typer.Typer()
    app.command("finetune")(cli.finetune)
    app.command("train")(cli.train)
    return CliRunner().invoke(app, ["finetune", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "a.csv", "--from-log"], "give either --data PATH.csv or --from-log, not both"),
        (["--from-log", "--since", "soon"], "cannot read duration 'soon'"),
        (["--data", "/nonexistent/rows.csv"], "data file not found"),
    ],
)
def test_unusable_sources_are_one_clear_error(args, message):
    result = _invoke(*args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_a_target_that_is_not_in_the_csv_is_named(tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame({"age": range(30), "y": [0, 1] * 15}).to_csv(path, index=False)
    result = _invoke("--data", str(path))
    assert result.exit_code == 1 and "target column 'default' not in rows.csv" in result.output


def test_a_class_too_rare_to_split_is_a_data_error():
    from pipelines.data import DataError

    rows = generate(200, seed=6).assign(default=0)
    rows.loc[0, "default"] = 1
    with pytest.raises(DataError, match="cannot split the labelled rows"):
        split(rows, "default", holdout=0.2, seed=1)
