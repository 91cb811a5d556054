"""The registered model's code (pipelines.model_code): same numbers on both paths, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.model_code import InputError, TabularNetModel
from pipelines.preprocess import transform
from tests.unit.pipelines.conftest import random_network


@pytest.fixture(scope="module")
def model_and_rows():
    spec, layers, rows = random_network(1_000, seed=9, hidden=8)
    return TabularNetModel().setup(spec, layers), rows.head(50), layers, spec


def test_predict_matches_predict_columns_and_a_reference_forward_pass(model_and_rows):
    model, rows, layers, spec = model_and_rows
    proba = model.predict(None, rows)
    assert proba.shape == (50,) and proba.dtype == np.float64
    columns = {c: rows[c].to_numpy() for c in rows.columns}
    columns = {c: (v.astype(np.float64) if v.dtype != object else v) for c, v in columns.items()}
    np.testing.assert_array_equal(model.predict_columns(columns), proba)
    x = transform(spec, rows)
    hidden = np.maximum(x @ layers[0][0] + layers[0][1], 0)
    expected = 1 / (1 + np.exp(-(hidden @ layers[1][0] + layers[1][1]).ravel()))
    np.testing.assert_allclose(proba, expected, rtol=1e-12)


def test_rows_are_scored_independently(model_and_rows):
    model, rows, _, _ = model_and_rows
    full = model.predict(None, rows)
    single = np.array([model.predict(None, rows.iloc[[i]])[0] for i in range(5)])
    np.testing.assert_allclose(single, full[:5])
    shuffled = rows.sample(frac=1.0, random_state=1)
    np.testing.assert_allclose(model.predict(None, shuffled), full[shuffled.index])


def test_missing_values_are_imputed(model_and_rows):
    model, rows, _, _ = model_and_rows
    row = rows.head(1).copy()
    row["income"] = np.nan
    row["loan_purpose"] = None
    assert np.isfinite(model.predict(None, row)).all()


@pytest.mark.parametrize(
    ("change", "column", "message"),
    [
        (lambda r: r.drop(columns="age"), "age", "missing column"),
        (lambda r: r.drop(columns="home_ownership"), "home_ownership", "missing column"),
        (lambda r: r.assign(income="lots"), "income", "non-numeric value 'lots'"),
        (
            lambda r: r.assign(home_ownership="CASTLE"),
            "home_ownership",
            "unknown category 'CASTLE'",
        ),
    ],
)
def test_bad_input_raises_input_error_naming_the_column(model_and_rows, change, column, message):
    model, rows, _, _ = model_and_rows
    with pytest.raises(InputError, match=message) as info:
        model.predict(None, change(rows.head(3)))
    assert info.value.column == column
    assert isinstance(info.value, ValueError)


def test_fast_path_errors(model_and_rows):
    model, rows, _, _ = model_and_rows
    columns = {c: rows[c].to_numpy() for c in rows.columns}
    with pytest.raises(InputError, match="'income': expected numbers"):
        model.predict_columns(columns | {"income": np.array(["x"] * 50, dtype=object)})
    with pytest.raises(InputError, match="'loan_purpose': unknown category"):
        model.predict_columns(columns | {"loan_purpose": np.array(["?"] * 50, dtype=object)})
    with pytest.raises(InputError, match="'age': missing column"):
        model.predict_columns({k: v for k, v in columns.items() if k != "age"})


def test_records_and_numeric_strings_are_accepted(model_and_rows):
    model, rows, _, _ = model_and_rows
    records = rows.head(2).to_dict(orient="records")
    np.testing.assert_allclose(model.predict(None, records), model.predict(None, rows.head(2)))
    as_text = rows.head(2).astype({"age": str})
    np.testing.assert_allclose(model.predict(None, as_text), model.predict(None, rows.head(2)))


def test_categorical_columns_score_like_text_columns(model_and_rows):
    import pandas as pd

    model, rows, _, spec = model_and_rows
    rows = rows.copy()
    name = spec["categorical"][0]["name"]
    rows.loc[rows.index[3], name] = None  # a missing category: code -1
    text = {c: rows[c].to_numpy() for c in rows.columns}
    text = {c: (v.astype(np.float64) if v.dtype != object else v) for c, v in text.items()}
    coded = {c: (pd.Categorical(v) if v.dtype == object else v) for c, v in text.items()}
    np.testing.assert_array_equal(model.predict_columns(coded), model.predict_columns(text))
    coded[name] = pd.Categorical(["no-such-category"] * len(rows))
    with pytest.raises(InputError, match=name):
        model.predict_columns(coded)
