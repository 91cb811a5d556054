"""Settings of the training pipeline, from environment variables and command-line options.

In: the shared `MLCYCLE_MODEL_NAME` (`mlcycle.core.settings`) and `MLCYCLE_EXPERIMENT`
(docs/settings.md, generated from this module).
Out: `Settings` (environment defaults) and `TrainConfig` (one training run's options).
Nothing is read at import: call `get_settings()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlcycle.core.settings import MODEL_NAME, ModelSettings, SettingsError

__all__ = ["Settings", "SettingsError", "TrainConfig", "get_settings", "parse_hidden"]


class Settings(ModelSettings):
    """The training pipeline: `mlcycle train` (and `mlflow run .`)."""

    experiment: str = MODEL_NAME
    """MLflow experiment for standalone runs (not under `mlflow run`); named like the default
    model."""
    gate_shadow_log_url: str | None = None
    """A prediction log whose shadow rows the gate reads (`MLCYCLE_SHADOW` in serving): when
    the challenger scored at least 100 labelled live rows there in shadow, both versions' live
    AUC on those same rows is recorded and must beat production's by the margin too."""
    optuna_storage: str = ""
    """Optuna storage of `mlcycle tune` when `--storage` is not given: a SQLAlchemy URL
    (`postgresql://user:pass@host/db`) that tuning workers on several machines share; empty:
    in memory, one process. An environment variable keeps its password out of the run's
    params."""


def get_settings() -> Settings:
    """Build the settings from the environment (read on every call, never at import).

    Raises:
        SettingsError: a variable holds a value that cannot work (the message names it).
    """
    return Settings.load()


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (see `mlcycle train --help` for each).

    Attributes:
        data: CSV path; empty for the bundled synthetic data.
        target: binary target column.
        rows: synthetic rows to generate (ignored for a CSV).
        epochs: most training epochs of the network (early stopping usually ends sooner).
        hidden: hidden layer sizes, e.g. (64,) or (64, 32).
        batch_size: minibatch size.
        learning_rate: Adam learning rate.
        seed: seed of data generation, split and training.
        patience: epochs without a better validation AUC before training stops.
        l2: L2 penalty on the hidden layers' weights.
        dropout: dropout rate after each hidden layer.
        model_name: registered model name.
        promote_margin: the challenger's AUC must exceed production's on the same rows by more.
        baseline: scikit-learn baseline, "logreg" or "gbm".
        experiment: MLflow experiment for standalone runs.
        register: register and gate the model (False: only log the run).
    """

    data: str = ""
    target: str = "default"
    rows: int = 20_000
    epochs: int = 60
    hidden: tuple[int, ...] = (64,)
    batch_size: int = 128
    learning_rate: float = 3e-3
    seed: int = 42
    patience: int = 8
    l2: float = 3e-3
    dropout: float = 0.5
    model_name: str = MODEL_NAME
    promote_margin: float = 0.0
    baseline: str = "logreg"
    experiment: str = MODEL_NAME
    register: bool = True

    def params(self) -> dict[str, object]:
        """The options as MLflow params."""
        return {
            "data_source": self.data or "synthetic",
            "target": self.target,
            "rows": self.rows,
            "epochs": self.epochs,
            "hidden": ",".join(map(str, self.hidden)),
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "patience": self.patience,
            "l2": self.l2,
            "dropout": self.dropout,
            "model_name": self.model_name,
            "promote_margin": self.promote_margin,
            "baseline": self.baseline,
        }


def parse_hidden(text: str) -> tuple[int, ...]:
    """Parse "64" or "64,32" into layer sizes.

    Raises:
        ValueError: for anything but a comma list of positive integers.
    """
    try:
        sizes = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--hidden must be a comma list of integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--hidden must be a comma list of positive integers, got {text!r}")
    return sizes
