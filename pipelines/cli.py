"""`mlcycle train` / `python -m pipelines train`: the training pipeline's command line.

In: typed options (each documented in `--help`). Out: an MLflow run and a registered version
(see `pipelines.pipeline`); a one-line summary on stdout. Bad input data or a bad setting
(`MLCYCLE_MODEL_NAME`, ...) prints one clear error line and exits with code 1. Heavy libraries
load only when the command runs.
"""

from __future__ import annotations

import logging
import os

import typer

log = logging.getLogger(__name__)


def train(
    data: str = typer.Option("", "--data", help="CSV to train on; empty = bundled synthetic data."),
    target: str = typer.Option("default", "--target", help="Binary target column of the data."),
    rows: int = typer.Option(20_000, "--rows", min=100, help="Rows of synthetic data to generate."),
    epochs: int = typer.Option(20, "--epochs", min=1, help="Training epochs of the network."),
    hidden: str = typer.Option(
        "64", "--hidden", help="Hidden layer sizes, comma list: 64 or 64,32."
    ),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Minibatch size."),
    learning_rate: float = typer.Option(
        1e-3, "--learning-rate", min=0.0, help="Adam learning rate."
    ),
    seed: int = typer.Option(42, "--seed", help="Seed of data generation, split and training."),
    model_name: str = typer.Option(
        "",
        "--model-name",
        help="Registered model name (default: $MLCYCLE_MODEL_NAME or credit-risk).",
    ),
    promote_margin: float = typer.Option(
        0.0,
        "--promote-margin",
        help="Promote only if val AUC beats production's by more than this.",
    ),
    baseline: str = typer.Option(
        "logreg", "--baseline", help="scikit-learn baseline: logreg or gbm."
    ),
    experiment: str = typer.Option(
        "", "--experiment", help="MLflow experiment for standalone runs (default: credit-risk)."
    ),
) -> None:
    """Train the network and the baseline, log them to MLflow, register and gate the model."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
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


def main() -> None:
    """`python -m pipelines train ...`: the pipeline CLI with its one command."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True)
    app.command("train")(train)

    @app.callback()
    def _root() -> None:
        """mlcycle training pipeline."""

    app()
