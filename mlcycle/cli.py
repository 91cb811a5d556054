"""The `mlcycle` command line: one typed entry point over every stage.

In: command-line options (each documented in `--help`). Out: whatever the subcommand does.
Each subcommand lives with its stage (`pipelines.cli`, `serving.cli`, `monitoring.cli`,
`mlcycle.registry_cli`) and imports its heavy dependencies only when it runs, so
`mlcycle --help` is instant and `mlcycle serve` never loads TensorFlow.
"""

from __future__ import annotations

import logging
import os

import typer

from mlcycle import demo, lifecycle_cli, registry_cli
from monitoring import cli as monitoring_cli
from pipelines import cli as pipelines_cli
from serving import cli as serving_cli
from serving import log_cli

app = typer.Typer(
    help="mlcycle: train, register, serve and monitor an MLflow model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("train")(pipelines_cli.train)
app.command("finetune")(pipelines_cli.finetune)
app.command("compress")(pipelines_cli.compress)
app.command("tune")(pipelines_cli.tune)
app.command("promote")(registry_cli.promote)
app.command("rollback")(registry_cli.rollback)
app.command("history")(registry_cli.history)
app.command("sync")(registry_cli.sync)
app.command("sign")(registry_cli.sign)
app.command("serve")(serving_cli.serve)
app.command("score")(serving_cli.score)
app.command("drift")(monitoring_cli.drift)
app.command("performance")(monitoring_cli.performance)
app.command("label")(serving_cli.label)
app.command("retrain-on-drift")(lifecycle_cli.retrain_on_drift)
app.command("simulate")(monitoring_cli.simulate)
app.command("demo")(demo.demo)
log_app = typer.Typer(help="Look after the prediction log.", no_args_is_help=True)
log_app.command("prune")(log_cli.prune)
app.add_typer(log_app, name="log")


@app.callback()
def _setup(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
) -> None:
    """Set up logging and quiet the libraries' start-up noise."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
