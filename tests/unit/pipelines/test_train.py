"""The network's training: early stopping on validation AUC keeps the best epoch's weights."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.core.synthetic import generate
from pipelines.data import column_roles
from pipelines.model_code import TabularNetModel
from pipelines.preprocess import fit_spec, split, transform
from pipelines.train import fit_network

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny():
    df = generate(1200, seed=4)
    parts = split(df, "default", seed=4)
    spec = fit_spec(parts.train, column_roles(df, "default"))
    x = (transform(spec, parts.train), transform(spec, parts.val))
    y = (parts.train["default"].to_numpy(), parts.val["default"].to_numpy())
    return spec, parts, x, y


def _keras_auc(y, proba) -> float:
    import keras

    metric = keras.metrics.AUC()  # the same estimate as the `val_auc` Keras monitored
    metric.update_state(y, proba)
    return float(metric.result())


def test_the_best_epochs_weights_are_restored_not_the_last(tiny):
    spec, parts, (x_train, x_val), (y_train, y_val) = tiny
    # A large step overshoots: validation AUC peaks early, then falls (seeded, so repeatable).
    fitted = fit_network(
        x_train, y_train, x_val, y_val, hidden=(32,), epochs=10, patience=10,
        learning_rate=0.05, l2=0.0, dropout=0.0, seed=1,
    )  # fmt: skip
    val_auc = fitted.history["val_auc"]
    assert fitted.epochs_run == 10
    assert fitted.best_epoch == int(np.argmax(val_auc)) < 9
    assert val_auc[-1] < max(val_auc) - 0.01  # the last epoch is worse: restoring matters
    proba = TabularNetModel().setup(spec, fitted.layers).predict(None, parts.val)
    assert _keras_auc(y_val, proba) == pytest.approx(max(val_auc), abs=2e-4)


def test_training_stops_once_val_auc_stops_improving(tiny):
    _, _, (x_train, x_val), (y_train, y_val) = tiny
    fitted = fit_network(x_train, y_train, x_val, y_val, hidden=(16,), epochs=60, patience=1)
    assert fitted.epochs_run < 60
    # Patience 1: the first epoch without a better val AUC is the last one.
    assert fitted.epochs_run == fitted.best_epoch + 2
    assert fitted.history["val_auc"][-1] <= max(fitted.history["val_auc"])


def test_fine_tuning_starts_from_given_weights_and_keeps_frozen_layers(tiny):
    _, _, (x_train, x_val), (y_train, y_val) = tiny
    start = fit_network(x_train, y_train, x_val, y_val, hidden=(8,), epochs=1).layers
    tuned = fit_network(
        x_train, y_train, x_val, y_val, epochs=2, learning_rate=1e-2, initial=start, frozen=1
    ).layers
    assert [w.shape for w, _ in tuned] == [w.shape for w, _ in start]
    np.testing.assert_array_equal(tuned[0][0], start[0][0])
    np.testing.assert_array_equal(tuned[0][1], start[0][1])
    assert not np.allclose(tuned[1][0], start[1][0])
    with pytest.raises(ValueError, match="features"):
        fit_network(x_train[:, :-1], y_train, x_val[:, :-1], y_val, initial=start)
