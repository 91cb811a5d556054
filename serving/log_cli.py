"""`mlcycle log prune`: retention of the prediction log.

In: `--older-than` (a duration, `mlcycle.core.durations`), `--dry-run`, the log's URL (option
or `MLCYCLE_PREDICTION_LOG_URL`). Out: one line saying how many served rows, batches and
labels went (or would go, with `--dry-run`); exit 0, or 2 with one `error:` line when the
duration or the log cannot be used. Deletes in short chunks (`serving.predlog.prune`), so it
may run while servers write, e.g. from a nightly CronJob.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import typer


def prune(
    older_than: str = typer.Option(
        ..., "--older-than", help="Delete rows served longer ago than this (e.g. 90d, 12w)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only count what would be deleted; change nothing."
    ),
    log_url: str = typer.Option(
        None, "--log-url", help="Prediction log URL (default: MLCYCLE_PREDICTION_LOG_URL)."
    ),
    chunk: int = typer.Option(
        2_000, "--chunk", min=1, help="Most rows deleted per transaction (batches: 1/20 of it)."
    ),
) -> None:
    """Delete prediction-log rows (and their labels) served before now minus --older-than."""
    from mlcycle.core.durations import DurationError, parse_duration
    from mlcycle.core.logdb import LogError
    from mlcycle.core.settings import SettingsError, SharedSettings
    from serving.predlog.prune import count_old
    from serving.predlog.prune import prune as run_prune

    try:
        cutoff = time.time() - parse_duration(older_than)
        url = log_url or SharedSettings.load().prediction_log_url
        found = count_old(url, cutoff) if dry_run else run_prune(url, cutoff, chunk)
    except (DurationError, SettingsError, LogError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    when = datetime.fromtimestamp(cutoff, timezone.utc).isoformat(timespec="seconds")
    verb = "would delete" if dry_run else "deleted"
    typer.echo(
        f"{verb} {found.rows:,} rows, {found.batches:,} batches ({found.batch_rows:,} rows) "
        f"and {found.labels:,} labels served before {when}"
    )
