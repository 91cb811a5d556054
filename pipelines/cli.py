"""`mlcycle train` / `python -m pipelines train|finetune`: the training pipeline's command line.

In: typed options (each documented in `--help`). Out: an MLflow run and a registered version
(see `pipelines.pipeline` and `pipelines.finetune`); a one-line summary on stdout. Bad input
data or a bad setting (`MLCYCLE_MODEL_NAME`, ...) prints one clear error line and exits with
code 1. Heavy libraries load only when the command runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import typer

log = logging.getLogger(__name__)


def _quiet_defaults() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def train(
    data: str = typer.Option("", "--data", help="CSV to train on; empty = bundled synthetic data."),
    target: str = typer.Option("default", "--target", help="Binary target column of the data."),
    rows: int = typer.Option(20_000, "--rows", min=100, help="Rows of synthetic data to generate."),
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
    seed: int = typer.Option(42, "--seed", help="Seed of data generation, split and training."),
    patience: int = typer.Option(
        8, "--patience", min=1, help="Stop after this many epochs without a better val AUC."
    ),
    l2: float = typer.Option(3e-3, "--l2", min=0.0, help="L2 penalty on hidden-layer weights."),
    dropout: float = typer.Option(
        0.5, "--dropout", min=0.0, max=0.95, help="Dropout rate after each hidden layer."
    ),
    model_name: str = typer.Option(
        "",
        "--model-name",
        help="Registered model name (default: $MLCYCLE_MODEL_NAME or credit-risk).",
    ),
    promote_margin: float = typer.Option(
        0.0,
        "--promote-margin",
        help="Promote only if the AUC beats production's on the same test rows by more.",
    ),
    baseline: str = typer.Option(
        "logreg", "--baseline", help="scikit-learn baseline: logreg or gbm."
    ),
    experiment: str = typer.Option(
        "", "--experiment", help="MLflow experiment for standalone runs (default: credit-risk)."
    ),
) -> None:
    """Train the network and the baseline, log them to MLflow, register and gate the model."""
    _quiet_defaults()
    from pipelines.baseline import BASELINES
    from pipelines.data import DataError
    from pipelines.settings import TrainConfig, get_settings, parse_hidden

    try:
        settings = get_settings()
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

        result = run(cfg)
    except (DataError, ValueError) as exc:  # a SettingsError too: it names the variable
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
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
    model_name: str = typer.Option(
        "", "--model-name", help="Registered model name (default: $MLCYCLE_MODEL_NAME)."
    ),
    promote_margin: float = typer.Option(
        0.0, "--promote-margin", help="Promote only if the held-out AUC beats production's by more."
    ),
    experiment: str = typer.Option(
        "", "--experiment", help="MLflow experiment for standalone runs (default: credit-risk)."
    ),
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


def main() -> None:
    """`python -m pipelines train|finetune ...`: the pipeline CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    app.command("train")(train)
    app.command("finetune")(finetune)

    @app.callback()
    def _root() -> None:
        """mlcycle training pipeline."""

    app()
