"""Step 3, train: the Keras network on the preprocessed features.

In: feature matrices and 0/1 labels (train and validation), the network's shape and training
options, and optionally the weights to start from (fine-tuning). Out: a `Fitted` network: its
layers as numpy (W, b) pairs (the format of weights.npz in the registered model), the per-epoch
history and the epoch whose weights were kept; per-epoch loss/AUC are logged to the active MLflow
run (`epoch_loss`, `epoch_val_auc`, ... with step = epoch).

The network is Dense(h, relu) per hidden size (L2 on its weights, dropout after it), then
Dense(1, sigmoid), trained with Adam on binary cross-entropy. Training stops once the validation
AUC has not improved for `patience` epochs and keeps the weights of the best epoch; the learning
rate drops when the validation AUC stalls. Keras is used for training only: the model serves
through a numpy forward pass (`pipelines.model_code`), never `model.predict`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# Learning-rate schedule: x0.3 after 2 epochs without a better validation AUC. Short runs (the
# tests' 2 epochs) never reach it; long runs take smaller steps near the optimum.
LR_FACTOR = 0.3
LR_PATIENCE = 2
MIN_LR = 1e-5


@dataclass(frozen=True)
class Fitted:
    """A trained network.

    Attributes:
        layers: (W, b) per dense layer, float32, input layer first.
        history: per-epoch values, e.g. `history["val_auc"][epoch]`.
        best_epoch: the epoch (0-based) whose weights `layers` holds.
        epochs_run: epochs trained before early stopping (or the limit).
    """

    layers: list[tuple[np.ndarray, np.ndarray]]
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int


def _epoch_logger(total: int):
    """A Keras callback that logs each epoch's metrics to MLflow and to the log."""
    import keras
    import mlflow

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            values = {f"epoch_{k}": float(v) for k, v in (logs or {}).items()}
            if mlflow.active_run() is not None:
                mlflow.log_metrics(values, step=epoch)
            shown = " ".join(f"{k[6:]}={v:.4f}" for k, v in values.items())
            log.info("epoch %d/%d %s", epoch + 1, total, shown)

    return EpochLogger()


def _network(n_inputs: int, hidden: tuple[int, ...], l2: float, dropout: float, frozen: int):
    """The Keras model: Dense(relu) [+ Dropout] per hidden size, then Dense(1, sigmoid)."""
    import keras

    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    layers: list = [keras.Input(shape=(n_inputs,))]
    for i, units in enumerate(hidden):
        dense = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer)
        dense.trainable = i >= frozen
        layers.append(dense)
        if dropout > 0:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers)


def _dense_layers(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def fit_network(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    hidden: tuple[int, ...] = (64,),
    epochs: int = 60,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    seed: int = 42,
    patience: int = 8,
    l2: float = 3e-3,
    dropout: float = 0.5,
    initial: list[tuple[np.ndarray, np.ndarray]] | None = None,
    frozen: int = 0,
) -> Fitted:
    """Train the network, stop early on validation AUC and keep the best epoch's weights.

    Args:
        x_train: training features.
        y_train: training labels (0/1).
        x_val: validation features (early stopping and the per-epoch validation metrics).
        y_val: validation labels.
        hidden: sizes of the ReLU hidden layers (ignored when `initial` is given).
        epochs: most passes over the training data.
        batch_size: minibatch size.
        learning_rate: Adam's initial learning rate.
        seed: seeds Python, numpy and the backend (`keras.utils.set_random_seed`).
        patience: epochs without a better validation AUC before training stops.
        l2: L2 penalty on the hidden layers' weights (0: none).
        dropout: dropout rate after each hidden layer (0: none).
        initial: (W, b) per dense layer to start from instead of a random initialisation
            (fine-tuning); their shapes set the hidden sizes.
        frozen: number of leading hidden layers whose weights stay fixed.

    Returns:
        The trained network.

    Raises:
        ValueError: if `initial` does not fit the feature count.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if initial is not None:
        if initial[0][0].shape[0] != x_train.shape[1]:
            raise ValueError(
                f"initial weights take {initial[0][0].shape[0]} features, "
                f"the data has {x_train.shape[1]}"
            )
        hidden = tuple(int(w.shape[1]) for w, _ in initial[:-1])
    keras.utils.set_random_seed(seed)
    model = _network(x_train.shape[1], hidden, l2, dropout, frozen)
    if initial is not None:
        for layer, (w, b) in zip(_dense_layers(model), initial, strict=True):
            layer.set_weights([np.asarray(w, np.float32), np.asarray(b, np.float32).ravel()])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=patience, restore_best_weights=True
    )
    slow_down = keras.callbacks.ReduceLROnPlateau(
        monitor="val_auc", mode="max", factor=LR_FACTOR, patience=LR_PATIENCE, min_lr=MIN_LR
    )
    fit = model.fit(
        x_train.astype(np.float32),
        y_train.astype(np.float32),
        validation_data=(x_val.astype(np.float32), y_val.astype(np.float32)),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[_epoch_logger(epochs), stop, slow_down],
    )
    history = {k: [float(v) for v in values] for k, values in fit.history.items()}
    weights = (layer.get_weights() for layer in _dense_layers(model))
    layers = [(np.asarray(w), np.asarray(b)) for w, b in weights]
    epochs_run = len(history.get("loss", []))
    log.info(
        "kept epoch %d of %d (val AUC %.4f)",
        stop.best_epoch + 1,
        epochs_run,
        history["val_auc"][stop.best_epoch] if history.get("val_auc") else float("nan"),
    )
    return Fitted(layers, history, int(stop.best_epoch), epochs_run)
