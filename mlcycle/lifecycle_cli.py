"""`mlcycle retrain-on-drift`: the lifecycle loop's command (`mlcycle.lifecycle`).

In: typed options (windows as durations: 30m, 7d). Out: one line per pass saying what was
decided and why; exit code 0 promoted, 1 trained but not promoted, 2 bad options or settings,
3 nothing to do (no trigger, too few labels), or 0 for that with `--skipped-ok` (a scheduler
such as a Kubernetes CronJob counts every other code as a failed run). With `--every` it runs
until SIGTERM/Ctrl-C.
"""

from __future__ import annotations

import typer


def retrain_on_drift(
    since: str = typer.Option("7d", "--since", help="Use labelled rows served this recently."),
    min_labels: int = typer.Option(
        500, "--min-labels", min=2, help="Fewest labelled rows to fine-tune on."
    ),
    gate_share: float = typer.Option(
        0.2,
        "--gate-share",
        min=0.05,
        max=0.5,
        help="Most recent share of the labelled rows kept out of training, for the gate.",
    ),
    drift_max_age: str = typer.Option(
        "1d", "--drift-max-age", help="An older drift verdict does not trigger."
    ),
    performance_margin: float = typer.Option(
        0.05,
        "--performance-margin",
        min=0.0,
        max=1.0,
        help="Trigger when live AUC is below validation AUC by more than this.",
    ),
    promote_margin: float = typer.Option(
        0.0, "--promote-margin", help="Promote only if the new version beats production by more."
    ),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Most fine-tuning epochs."),
    force: bool = typer.Option(False, "--force", help="Fine-tune even without a trigger."),
    model_name: str | None = typer.Option(
        None, "--model-name", help="Registered model name (default: MLCYCLE_MODEL_NAME)."
    ),
    every: str | None = typer.Option(
        None, "--every", help="Run on this interval in the foreground until SIGTERM/Ctrl-C."
    ),
    skipped_ok: bool = typer.Option(
        False,
        "--skipped-ok",
        help="Exit 0, not 3, when there was nothing to do (for a scheduler that counts every "
        "other exit code as a failure, e.g. a Kubernetes CronJob).",
    ),
) -> None:
    """When drift or falling live AUC says so and enough labelled rows exist: fine-tune the
    production version on them, gate it against production on the same held-out rows, and
    promote it if it wins (serving follows). Every decision is recorded in MLflow."""
    from mlcycle.core.config import configure_mlflow
    from mlcycle.lifecycle import EXIT_SKIPPED, LoopOptions, run_once
    from monitoring.settings import SettingsError, get_settings
    from monitoring.windows import WindowError, parse_duration

    try:
        settings = get_settings()
        opts = LoopOptions(
            since_s=parse_duration(since),
            min_labels=min_labels,
            gate_share=gate_share,
            drift_max_age_s=parse_duration(drift_max_age),
            performance_margin=performance_margin,
            promote_margin=promote_margin,
            force=force,
            epochs=epochs,
        )
        interval = parse_duration(every) if every and every.strip() else None
    except (SettingsError, WindowError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_mlflow()
    name = model_name or settings.model_name

    def one() -> int:
        result = run_once(settings, name, opts)
        typer.echo(result.line())
        return 0 if skipped_ok and result.exit_code == EXIT_SKIPPED else result.exit_code

    from monitoring.schedule import once_or_every

    raise typer.Exit(once_or_every(one, interval, "retrain-on-drift"))
