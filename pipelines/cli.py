"""`mlcycle train|finetune|compress|tune`, `python -m pipelines ...`: the pipeline's CLI.

In: typed options (each documented in `--help`). Out: an MLflow run and a registered version
(see `pipelines.pipeline` and `pipelines.finetune`); a one-line summary on stdout. Bad input
data or a bad setting (`MLCYCLE_MODEL_NAME`, ...) prints one clear error line and exits with
code 1. Heavy libraries load only when the command runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

log = logging.getLogger(__name__)
T = TypeVar("T")


def _quiet_defaults() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


# Options several commands share, defined once (typer reads them as defaults).
DATA = typer.Option("", "--data", help="CSV to train on; empty = bundled synthetic data.")
TARGET = typer.Option("default", "--target", help="Binary target column of the data.")
ROWS = typer.Option(20_000, "--rows", min=100, help="Rows of synthetic data to generate.")
SEED = typer.Option(42, "--seed", help="Seed of data generation, split and training.")
PATIENCE = typer.Option(
    8, "--patience", min=1, help="Stop after this many epochs without a better val AUC."
)
MODEL_NAME = typer.Option(
    "", "--model-name", help="Registered model name (default: $MLCYCLE_MODEL_NAME or credit-risk)."
)
PROMOTE_MARGIN = typer.Option(
    0.0,
    "--promote-margin",
    help="Promote only if the AUC beats production's on the same test rows by more.",
)
EXPERIMENT = typer.Option(
    "", "--experiment", help="MLflow experiment for standalone runs (default: credit-risk)."
)


def _or_exit(step: Callable[[Any], T]) -> T:
    """`step(settings)`, or, for an error users cause (bad data, a bad option or setting),
    one clear error line and exit code 1."""
    from pipelines.data import DataError
    from pipelines.settings import get_settings

    try:
        return step(get_settings())
    except (DataError, ValueError) as exc:  # a SettingsError too: it names the variable
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


def train(
    data: str = DATA,
    target: str = TARGET,
    rows: int = ROWS,
    epochs: int = typer.Option(
        60, "--epochs", min=1, help="Most training epochs (early stopping usually ends sooner)."
    ),
    hidden: str = typer.Option(
        "64", "--hidden", help="Hidden layer sizes, comma list: 64 or 64,32."
    ),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Minibatch size."),
    learning_rate: float = typer.Option(
        3e-3, "--learning-rate", min=0.0, help="Adam learning rate."
    ),
    seed: int = SEED,
    patience: int = PATIENCE,
    l2: float = typer.Option(3e-3, "--l2", min=0.0, help="L2 penalty on hidden-layer weights."),
    dropout: float = typer.Option(
        0.5, "--dropout", min=0.0, max=0.95, help="Dropout rate after each hidden layer."
    ),
    model_name: str = MODEL_NAME,
    promote_margin: float = PROMOTE_MARGIN,
    baseline: str = typer.Option(
        "logreg", "--baseline", help="scikit-learn baseline: logreg or gbm."
    ),
    experiment: str = EXPERIMENT,
) -> None:
    """Train the network and the baseline, log them to MLflow, register and gate the model."""
    _quiet_defaults()

    def step(settings):
        from pipelines.baseline import BASELINES
        from pipelines.settings import TrainConfig, parse_hidden

        if baseline not in BASELINES:
            raise ValueError(f"--baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        cfg = TrainConfig(
            data=data.strip(),
            target=target,
            rows=rows,
            epochs=epochs,
            hidden=parse_hidden(hidden),
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            patience=patience,
            l2=l2,
            dropout=dropout,
            model_name=model_name or settings.model_name,
            promote_margin=promote_margin,
            baseline=baseline,
            experiment=experiment or settings.experiment,
        )
        from pipelines.pipeline import run

        return cfg, run(cfg)

    cfg, result = _or_exit(step)
    state = "promoted to production" if result.promoted else "kept in staging"
    typer.echo(
        f"run {result.run_id}: val AUC {result.metrics['val_auc']:.4f}; "
        f"{cfg.model_name} v{result.version} {state} ({result.reason})"
    )


def finetune(
    data: str = typer.Option(
        "", "--data", help="CSV of labelled rows (inputs and the target); none: --from-log."
    ),
    from_log: bool = typer.Option(
        False, "--from-log", help="Use the labelled rows of the prediction log (no --data)."
    ),
    since: str = typer.Option("7d", "--since", help="With --from-log: rows logged this recently."),
    target: str = typer.Option("default", "--target", help="The 0/1 target column."),
    parent: str = typer.Option(
        "production", "--parent", help="Version to start from: production or a number."
    ),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Most epochs on the new rows."),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Minibatch size."),
    learning_rate: float = typer.Option(
        1e-3, "--learning-rate", min=0.0, help="Adam learning rate (below training's 3e-3)."
    ),
    patience: int = typer.Option(
        5, "--patience", min=1, help="Stop after this many epochs without a better val AUC."
    ),
    frozen_layers: int = typer.Option(
        0, "--frozen-layers", min=0, help="Leading hidden layers kept fixed (1: the first)."
    ),
    holdout: float = typer.Option(
        0.2, "--holdout", min=0.05, max=0.5, help="Share of rows held out for the gate."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of the split and of training."),
    model_name: str = MODEL_NAME,
    promote_margin: float = PROMOTE_MARGIN,
    experiment: str = EXPERIMENT,
) -> None:
    """Fine-tune a registered version on new labelled rows, register it and gate it."""
    _quiet_defaults()
    from pathlib import Path

    from mlcycle.core.durations import DurationError, parse_duration
    from mlcycle.core.settings import SettingsError, SharedSettings
    from pipelines.data import DataError
    from pipelines.register import GateError
    from pipelines.settings import get_settings

    try:
        settings = get_settings()
        if data.strip() and from_log:
            raise DataError("give either --data PATH.csv or --from-log, not both")
        from_log = not data.strip()
        from pipelines.finetune import FinetuneConfig, finetune, load_rows, rows_from_log

        cfg = FinetuneConfig(
            model_name=model_name or settings.model_name,
            target=target,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            patience=patience,
            frozen_layers=frozen_layers,
            holdout=holdout,
            seed=seed,
            margin=promote_margin,
            experiment=experiment or settings.experiment,
            data_window=f"csv {Path(data).name}" if data.strip() else f"log since {since}",
        )
        if from_log:
            log_url = SharedSettings.load().prediction_log_url
            rows = rows_from_log(log_url, cfg.model_name, parent, parse_duration(since))
            if rows.empty:
                raise DataError(f"no labelled rows in the prediction log from the last {since}")
            cfg = dataclasses.replace(cfg, target=rows.attrs["target"])
        else:
            rows = load_rows(data.strip(), target)
        result = finetune(rows, parent, cfg)
    except (DataError, GateError, DurationError, SettingsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    state = "promoted to production" if result.promoted else "kept in staging"
    typer.echo(
        f"run {result.run_id}: held-out AUC {result.metrics['test_auc']:.4f} "
        f"(parent v{result.parent_version} {result.metrics['parent_test_auc']:.4f}); "
        f"{cfg.model_name} v{result.version} {state} ({result.reason})"
    )


def compress(
    version: str = typer.Option(
        "production", "--version", help="Version to compress: production or a number."
    ),
    method: str = typer.Option("int8", "--method", help="int8, float16 or prune."),
    sparsity: float = typer.Option(
        0.5, "--sparsity", min=0.0, max=0.99, help="With prune: share of weights set to zero."
    ),
    data: str = typer.Option(
        "", "--data", help="Labelled CSV to gate on; empty = the parent's own test split."
    ),
    target: str = TARGET,
    promote: bool = typer.Option(
        False, "--promote", help="Promote a variant that passes, if its parent is in production."
    ),
    model_name: str = MODEL_NAME,
    experiment: str = EXPERIMENT,
) -> None:
    """Compress a registered version into a new, smaller one and gate it against its parent."""
    _quiet_defaults()

    def step(settings):
        from pipelines.compress import CompressConfig, compress

        cfg = CompressConfig(
            model_name=model_name or settings.model_name,
            version=version,
            method=method,
            sparsity=sparsity,
            data=data.strip(),
            target=target,
            promote=promote,
            experiment=experiment or settings.experiment,
        )
        return cfg, compress(cfg)

    cfg, result = _or_exit(step)
    sizes = result.sizes
    state = "promoted to production" if result.promoted else "in staging"
    typer.echo(
        f"run {result.run_id}: {cfg.model_name} v{result.version} ({method} of "
        f"v{result.parent_version}) weights {sizes['parent_weight_bytes']} -> "
        f"{sizes['weight_bytes']} bytes; {state}; gate {result.reason}"
    )


def tune(
    trials: int = typer.Option(20, "--trials", min=1, help="Trials this process runs."),
    data: str = DATA,
    target: str = TARGET,
    rows: int = ROWS,
    seed: int = SEED,
    epochs: int = typer.Option(30, "--epochs", min=1, help="Most epochs a trial may choose."),
    patience: int = PATIENCE,
    storage: str = typer.Option(
        "",
        "--storage",
        help="Optuna storage URL workers share (postgresql://...); "
        "empty = $MLCYCLE_OPTUNA_STORAGE or in memory.",
    ),
    study_name: str = typer.Option(
        "", "--study-name", help="Optuna study (default: named after the parent run)."
    ),
    parent_run_id: str = typer.Option(
        "", "--parent-run-id", help="Join this search as a worker: trials only, no retraining."
    ),
    model_name: str = MODEL_NAME,
    promote_margin: float = PROMOTE_MARGIN,
    experiment: str = EXPERIMENT,
) -> None:
    """Search hyper-parameters with Optuna, retrain the best trial, register and gate it."""
    _quiet_defaults()

    def step(settings):
        from pipelines.settings import TrainConfig
        from pipelines.tune import TuneConfig, tune

        base = TrainConfig(
            data=data.strip(),
            target=target,
            rows=rows,
            seed=seed,
            epochs=epochs,
            patience=patience,
            model_name=model_name or settings.model_name,
            promote_margin=promote_margin,
            experiment=experiment or settings.experiment,
        )
        storage_url = storage.strip() or settings.optuna_storage
        cfg = TuneConfig(trials, storage_url, study_name.strip(), parent_run_id.strip())
        return base, tune(base, cfg)

    base, result = _or_exit(step)
    line = f"run {result.parent_run_id}: study {result.study_name}, {result.trials} trials"
    if result.best is not None:
        line += f"; best val AUC {result.best_value:.4f} {result.best}"
    if result.version:
        line += f"; {base.model_name} v{result.version} ({result.reason})"
    typer.echo(line)


def main() -> None:
    """`python -m pipelines train|finetune|compress|tune ...`: the pipeline CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    app.command("train")(train)
    app.command("finetune")(finetune)
    app.command("compress")(compress)
    app.command("tune")(tune)

    @app.callback()
    def _root() -> None:
        """mlcycle training pipeline."""

    app()
