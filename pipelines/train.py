"""Step 3, train: the Keras network on the preprocessed features.

In: feature matrices and 0/1 labels (train and validation), hidden sizes, epochs, batch size,
learning rate, seed. Out: the trained network's layers as numpy (W, b) pairs, the format of
weights.npz in the registered model; per-epoch loss/AUC are logged to the active MLflow run
(`epoch_loss`, `epoch_val_auc`, ... with step = epoch).

The network is Dense(h, relu) per hidden size, then Dense(1, sigmoid), trained with Adam on
binary cross-entropy. Keras is used for training only: the model serves through a numpy forward
pass (`pipelines.model_code`), never `model.predict`.
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)


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


def fit_network(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    hidden: tuple[int, ...] = (64,),
    epochs: int = 20,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    seed: int = 42,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train the network and return its weights.

    Args:
        x_train: training features.
        y_train: training labels (0/1).
        x_val: validation features (for the per-epoch validation metrics).
        y_val: validation labels.
        hidden: sizes of the ReLU hidden layers.
        epochs: passes over the training data.
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        seed: seeds Python, numpy and the backend (`keras.utils.set_random_seed`).

    Returns:
        (W, b) per dense layer, float32, input layer first.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input(shape=(x_train.shape[1],))]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    model.fit(
        x_train.astype(np.float32),
        y_train.astype(np.float32),
        validation_data=(x_val.astype(np.float32), y_val.astype(np.float32)),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[_epoch_logger(epochs)],
    )
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return [(np.asarray(w), np.asarray(b)) for w, b in (layer.get_weights() for layer in dense)]
