"""Behavioural tests of the trained network on the bundled synthetic data.

A small but real training (5,000 rows, 6 epochs, no MLflow) checked like Made-With-ML's
tests/model: a performance floor that a broken pipeline misses, directional expectations
(more late payments or higher utilisation never lowers the risk much) and invariances.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.core.synthetic import generate
from pipelines.data import column_roles
from pipelines.evaluate import metrics
from pipelines.model_code import TabularNetModel
from pipelines.preprocess import fit_spec, split, transform
from pipelines.train import fit_network

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained():
    df = generate(5_000, seed=11)
    parts = split(df, "default", seed=11)
    spec = fit_spec(parts.train, column_roles(df, "default"))
    x_train, x_val = transform(spec, parts.train), transform(spec, parts.val)
    fitted = fit_network(
        x_train,
        parts.train["default"].to_numpy(),
        x_val,
        parts.val["default"].to_numpy(),
        hidden=(32,),
        epochs=6,
        seed=11,
    )
    return TabularNetModel().setup(spec, fitted.layers), parts


def test_validation_auc_above_floor(trained):
    model, parts = trained
    scores = metrics(parts.val["default"], model.predict(None, parts.val), "val_")
    # The generator's signal gives ~0.8; a pipeline with misaligned features or labels gives ~0.5.
    assert scores["val_auc"] > 0.72, scores


def test_labels_shuffled_would_fail_the_floor(trained):
    model, parts = trained
    shuffled = np.random.default_rng(0).permutation(parts.val["default"].to_numpy())
    assert metrics(shuffled, model.predict(None, parts.val))["auc"] < 0.6


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("num_late_payments_12m", lambda s: s + 2),
        ("credit_utilization", lambda s: (s + 0.3).clip(upper=1.0)),
        ("debt_to_income", lambda s: s + 0.2),
    ],
)
def test_more_risk_factors_do_not_lower_default_risk(trained, column, change):
    model, parts = trained
    rows = parts.test.drop(columns="default")
    before = model.predict(None, rows)
    after = model.predict(None, rows.assign(**{column: change(rows[column])}))
    assert (after - before).mean() > 0.01
    assert np.mean(after < before - 0.01) < 0.03


def test_invariant_to_row_order_and_extra_columns(trained):
    model, parts = trained
    rows = parts.test.drop(columns="default").head(300)
    base = model.predict(None, rows)
    order = np.random.default_rng(1).permutation(len(rows))
    np.testing.assert_allclose(model.predict(None, rows.iloc[order]), base[order])
    np.testing.assert_allclose(model.predict(None, rows.assign(note="x")), base)
    np.testing.assert_allclose(model.predict(None, rows[rows.columns[::-1]]), base)
