"""Typer commands of the monitoring stage: `mlcycle drift`, `performance` and `simulate`.

In: command-line options. Out: a drift check (reports, drift.prom, MLflow run; exit code 0 no
drift, 1 drift, 2 could not judge), a live-performance check (reports, performance.prom, MLflow
run; 0 ok, 1 a version alerts, 2 could not judge), either on a schedule (`--every`), a
synthetic CSV or simulated traffic. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

log = logging.getLogger(__name__)


def drift(
    since: str | None = typer.Option(
        None, "--since", help="Window: rows logged in this long before now (e.g. 15m, 1h, 2d)."
    ),
    from_: str | None = typer.Option(
        None, "--from", help="Window start, ISO-8601 (UTC when no offset), e.g. 2026-11-30T03:00Z."
    ),
    to: str | None = typer.Option(None, "--to", help="Window end, ISO-8601 (default: now)."),
    last: int | None = typer.Option(
        None,
        "--last",
        help="Window: the last N logged rows (default when no window is given: "
        "MLCYCLE_DRIFT_DEFAULT_LAST, 10000).",
    ),
    model_version: str | None = typer.Option(
        None,
        "--model-version",
        help="Model version to judge (default: the version that scored the newest logged row, "
        "else the production version).",
    ),
    model_name: str | None = typer.Option(
        None,
        "--model-name",
        help="Registered model name (default: MLCYCLE_MODEL_NAME or credit-risk).",
    ),
    drift_share: float | None = typer.Option(
        None,
        "--drift-share",
        min=0.0,
        max=1.0,
        help="Dataset drift when at least this share of input columns drift (default 0.25).",
    ),
    reports_dir: Path | None = typer.Option(
        None,
        "--reports-dir",
        help="Reports folder (default: MLCYCLE_REPORTS_DIR or .mlcycle/reports).",
    ),
    every: str | None = typer.Option(
        None,
        "--every",
        help="Run on this interval in the foreground until SIGTERM/Ctrl-C (e.g. 15m).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the JSON summary instead of one line."
    ),
) -> None:
    """Compare the logged live inputs with the model's training reference (Evidently).

    Exit code: 0 no drift, 1 drift, 2 could not judge (unknown model, empty or missing log,
    too few rows).
    """
    from monitoring.settings import SettingsError, get_settings
    from monitoring.windows import WindowError, make_window, parse_duration

    options = {"drift_share": drift_share, "reports_dir": reports_dir}
    try:
        settings = get_settings(**{k: v for k, v in options.items() if v is not None})
    except SettingsError as exc:
        _fail(str(exc))

    def one() -> int:
        window = make_window(since, from_, to, last, settings.default_last)
        return _check_once(window, model_version, model_name, settings, as_json)

    try:
        make_window(since, from_, to, last, settings.default_last)
        interval = parse_duration(every) if every else None
    except WindowError as exc:
        _fail(str(exc))
    from monitoring.schedule import once_or_every

    raise typer.Exit(once_or_every(one, interval, "drift check"))


def _check_once(window, model_version, model_name, settings, as_json: bool) -> int:
    from monitoring.job import check

    return _report("drift", lambda: check(window, model_version, model_name, settings), as_json)


def _report(what: str, check, as_json: bool) -> int:
    """Run one check and print its outcome (its JSON summary with `--json`); its exit code.

    An exception is internal trouble: logged with its traceback, reported as "cannot judge".
    """
    from monitoring.job import EXIT_CANNOT_JUDGE

    try:
        outcome = check()
    except Exception:
        log.exception("%s check failed", what)
        typer.echo(f"cannot judge {what}: internal error (see the log above)", err=True)
        return EXIT_CANNOT_JUDGE
    if outcome.summary is None:
        typer.echo(outcome.message, err=True)
    elif as_json:
        typer.echo(json.dumps(outcome.summary, indent=2))
    else:
        typer.echo(outcome.message)
    return outcome.exit_code


def performance(
    since: str | None = typer.Option(
        None, "--since", help="Range: rows served in this long before now (default 1d)."
    ),
    from_: str | None = typer.Option(None, "--from", help="Range start, ISO-8601."),
    to: str | None = typer.Option(None, "--to", help="Range end, ISO-8601 (default: now)."),
    window: str = typer.Option(
        "1h", "--window", help="Length of each time window of the figures (e.g. 15m, 1h, 1d)."
    ),
    margin: float = typer.Option(
        0.05, "--margin", min=0.0, max=1.0, help="Alert when live AUC < validation AUC - this."
    ),
    min_labelled: int = typer.Option(
        100, "--min-labelled", min=1, help="Fewest labelled rows for a version's live AUC."
    ),
    model_name: str | None = typer.Option(
        None, "--model-name", help="Registered model name (default: MLCYCLE_MODEL_NAME)."
    ),
    reports_dir: Path | None = typer.Option(
        None, "--reports-dir", help="Reports folder (default: MLCYCLE_REPORTS_DIR)."
    ),
    every: str | None = typer.Option(
        None, "--every", help="Run on this interval in the foreground until SIGTERM/Ctrl-C."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON summary."),
) -> None:
    """Live performance of each served version from the labels sent back: AUC, log loss,
    Brier score, calibration, label coverage, and the AUC estimated before labels (CBPE).

    Exit code: 0 ok, 1 a version's live AUC is below its validation AUC by more than the
    margin, 2 could not judge (no log, nothing served in the range).
    """
    from monitoring.settings import SettingsError, get_settings
    from monitoring.windows import WindowError, make_window, parse_duration

    try:
        settings = get_settings(**({"reports_dir": reports_dir} if reports_dir else {}))
        window_s = parse_duration(window)
        interval = parse_duration(every) if every else None
        if not (since or from_):
            since = "1d"
        make_window(since, from_, to, None, 1)
    except (SettingsError, WindowError) as exc:
        _fail(str(exc))

    def one() -> int:
        span = make_window(since, from_, to, None, 1)
        return _performance_once(
            span, window_s, margin, min_labelled, model_name, settings, as_json
        )

    from monitoring.schedule import once_or_every

    raise typer.Exit(once_or_every(one, interval, "performance check"))


def _performance_once(span, window_s, margin, min_labelled, model_name, settings, as_json) -> int:
    from mlcycle.core.config import configure_mlflow
    from monitoring.perfjob import check

    configure_mlflow()
    return _report(
        "live performance",
        lambda: check(
            settings.prediction_log_url,
            model_name or settings.model_name,
            span.start,
            span.end,
            window_s,
            settings.reports_dir,
            experiment=settings.experiment if settings.log_to_mlflow else None,
            margin=margin,
            min_labelled=min_labelled,
        ),
        as_json,
    )


def _fail(message: str) -> None:
    for line in message.splitlines():
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(2)


def simulate(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="CSV file to write (without --traffic)."
    ),
    rows: int = typer.Option(20_000, "--rows", min=1, help="Rows in the CSV."),
    seed: int = typer.Option(42, "--seed", help="Generator seed (same seed, same data)."),
    drift: float = typer.Option(
        0.0, "--drift", min=0.0, max=1.0, help="Drift knob: 0 training distribution .. 1 shifted."
    ),
    traffic: bool = typer.Option(
        False, "--traffic", help="Send requests to a running server instead of writing a CSV."
    ),
    url: str = typer.Option("http://127.0.0.1:5001", "--url", help="Server base URL (--traffic)."),
    rate: float = typer.Option(20.0, "--rate", min=0.01, help="Requests per second (--traffic)."),
    duration: str = typer.Option(
        "30s", "--duration", help="How long to send, e.g. 30s, 2m (--traffic)."
    ),
    batch: int = typer.Option(
        10, "--batch", min=1, max=10_000, help="Rows per request (--traffic)."
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="MLCYCLE_API_KEY", help="Sent as X-API-Key (--traffic)."
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a non-loopback --url (--traffic)."
    ),
    concept: float = typer.Option(
        0.0,
        "--concept",
        min=0.0,
        max=1.0,
        help="Generator concept knob: 0 today's rule for the outcome, 1 a new rule (the CSV's "
        "target, the labels sent with --labels-after).",
    ),
    labels_after: str | None = typer.Option(
        None,
        "--labels-after",
        help="Also send each answered request's true outcomes to /labels this long after "
        "its answer, e.g. 5s (--traffic; default: no labels).",
    ),
) -> None:
    """Write a synthetic credit-risk CSV, or send simulated (optionally drifted) traffic."""
    from monitoring.simulate import SimulateError, send_traffic, write_csv
    from monitoring.windows import WindowError, parse_duration

    try:
        if not traffic:
            if output is None:
                _fail("give --output/-o PATH.csv (or --traffic to send requests)")
            path = write_csv(output, rows, seed, drift, concept)
            typer.echo(f"wrote {rows} rows (seed {seed}, drift {drift}) to {path}")
            return
        delay = None if labels_after is None else parse_duration(labels_after)
        summary = send_traffic(
            url,
            drift,
            rate,
            parse_duration(duration),
            batch,
            seed,
            api_key,
            allow_remote,
            labels_after_s=delay,
            concept=concept,
        )
    except (SimulateError, WindowError, OSError) as exc:
        _fail(str(exc))
    typer.echo(summary.line())
    for message in summary.errors:
        typer.echo(f"  error: {message}", err=True)
    if summary.ok == 0:
        raise typer.Exit(1)
