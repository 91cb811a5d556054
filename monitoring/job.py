"""One drift check end to end: registry -> reference + prediction log -> Evidently -> outputs.

In: a `Window`, an optional model version (default: the one that scored the newest logged row,
else production) and the settings. Out: the report files, index, drift.prom and MLflow run (see
`monitoring.reports`) and an `Outcome` whose exit code is 0 (no drift), 1 (dataset drift) or 2
(could not judge: unknown model or version, missing/empty log, too few rows, no reference
sample).

Bounded cost: at most `settings.sample_rows` rows of each side reach Evidently (uniform random
samples; see docs/monitoring.md for why the verdict is preserved), and only the sampled rows'
JSON is fetched from the log. The fixed cost (importing Evidently) overlaps the registry and log
reads: the report runs in a `drift.ReportWorker` started first (`settings.report_worker`).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlcycle.core.logdb import LogError
from mlcycle.core.prediction_log import LogPrivacy
from monitoring.drift import DriftResult, ReportWorker
from monitoring.logreader import LogWindow, read_window, served_version
from monitoring.reference import (
    ModelRef,
    ModelRefError,
    coerce,
    load_reference,
    private_reference,
    resolve_model,
)
from monitoring.settings import Settings, get_settings
from monitoring.windows import Window, WindowError

log = logging.getLogger(__name__)

EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_CANNOT_JUDGE = 0, 1, 2
# Largest per-column score error measured between 20k/20k samples and the full data on the
# bundled scenarios (docs/monitoring.md): a sampled score closer than this to its threshold is
# flagged `near_threshold` in the summary.
SAMPLING_ERROR_BOUND = 0.04
CannotJudge = (LogError, ModelRefError, WindowError)


@dataclass
class Outcome:
    """The result of one check.

    Attributes:
        exit_code: 0 no drift, 1 drift, 2 could not judge.
        message: one line for people.
        summary: the JSON summary (None when the check could not judge).
    """

    exit_code: int
    message: str
    summary: dict | None = None


def _report_id(ref: ModelRef, now: float) -> str:
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    model = re.sub(r"[^A-Za-z0-9_.-]", "_", ref.name)
    return f"{stamp}-{model}-v{ref.version}-{secrets.token_hex(2)}"


def build_summary(
    ref: ModelRef,
    window: Window,
    logged: LogWindow,
    n_reference: int,
    n_reference_total: int | None,
    result: DriftResult,
    settings: Settings,
    started: float,
) -> dict:
    """The self-describing JSON summary of a check (what index.json and the web app list).

    Returns:
        The summary dict.
    """
    report_id = _report_id(ref, started)
    sampled = logged.n_window > len(logged.frame) or (n_reference_total or 0) > n_reference
    columns = {c.column: c.as_dict() for c in result.columns}
    for name, shares in result.missing.items():
        if name in columns:
            columns[name]["missing_share"] = shares
    for info in columns.values():
        info["near_threshold"] = bool(sampled and _near_threshold(info))
    return {
        "id": report_id,
        "created_at": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "timestamp": started,
        "model_name": ref.name,
        "model_version": ref.version,
        "model_run_id": ref.run_id,
        "window": {
            **window.as_dict(),
            "first_row_at": _iso(logged.first_ts),
            "last_row_at": _iso(logged.last_ts),
        },
        "rows": {
            "window": logged.n_window,
            "current": int(len(logged.frame)),
            "reference": n_reference,
            "reference_total": n_reference_total,
        },
        "sample_rows": settings.sample_rows,
        "sampled": sampled,
        "verdict": "drift" if result.dataset_drift else "no_drift",
        "dataset_drift": result.dataset_drift,
        "drift_share": result.drift_share,
        "drift_share_threshold": result.drift_share_threshold,
        "n_columns": len(result.columns),
        "drifted_columns": result.drifted_columns,
        "columns": columns,
        "columns_not_judged": ref.not_judged,
        "columns_hashed": ref.hashed,
        "prediction_drift": result.prediction.as_dict() if result.prediction else None,
        "html": f"{report_id}.html",
        "json": f"{report_id}.json",
        "mlflow_run_id": None,
        "exit_code": EXIT_DRIFT if result.dataset_drift else EXIT_NO_DRIFT,
    }


def _near_threshold(info: dict) -> bool:
    """True when a sampled distance lies within the sampling error bound of its threshold."""
    score, threshold = info.get("score"), info.get("threshold")
    if score is None or threshold is None or "p_value" in str(info.get("method")):
        return False
    return abs(score - threshold) < SAMPLING_ERROR_BOUND


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _publish(summary: dict, html: Path, settings: Settings) -> None:
    """Write the report files and drift.prom, and log the MLflow run (failures there only warn)."""
    import mlflow

    from monitoring import reports

    run = None
    if settings.log_to_mlflow:
        try:
            run = reports.start_mlflow_run(settings.experiment, summary)
            summary["mlflow_run_id"] = run.info.run_id
        except Exception:  # the verdict and the files matter more than the MLflow copy
            log.warning("could not start an MLflow run for the drift check", exc_info=True)
    try:
        html_path, json_path = reports.write_report(settings.reports_dir, summary, html)
        runs = reports.update_index(settings.reports_dir, summary, settings.index_max)
        reports.write_prom(settings.reports_dir, runs)
        if run is not None:
            try:
                reports.log_to_mlflow(summary, html_path, json_path)
            except Exception:
                log.warning("could not log the drift check to MLflow", exc_info=True)
    finally:
        if run is not None:
            mlflow.end_run()


def _start_worker(settings: Settings) -> ReportWorker | None:
    """The Evidently worker, or None to run the report in this process: turned off, or `auto`
    and Evidently is already imported here (a notebook, a test session), so nothing to overlap.
    """
    if settings.report_worker == "off":
        return None
    if settings.report_worker == "auto" and "evidently" in sys.modules:
        return None
    return ReportWorker()


def check(
    window: Window,
    model_version: str | None = None,
    model_name: str | None = None,
    settings: Settings | None = None,
) -> Outcome:
    """Run one drift check.

    Args:
        window: which rows of the prediction log.
        model_version: registry version (None: the version that scored the newest logged row,
            else the production version).
        model_name: registered model name (None: from the settings).
        settings: monitoring settings (None: from the environment).

    Returns:
        The outcome; could-not-judge conditions return exit code 2 with a message, they do
        not raise.
    """
    settings = settings or get_settings()
    started = time.time()
    worker = _start_worker(settings)  # first: it imports Evidently while we read the registry
    try:
        return _check(window, model_version, model_name, settings, started, worker)
    finally:
        if worker is not None:
            worker.close()


def _check(
    window: Window,
    model_version: str | None,
    model_name: str | None,
    settings: Settings,
    started: float,
    worker: ReportWorker | None,
) -> Outcome:
    from mlcycle.core.config import configure_mlflow
    from monitoring.drift import render_report
    from monitoring.reports import new_html_path

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    configure_mlflow()
    try:
        name = model_name or settings.model_name
        ref = resolve_model(
            name, model_version or served_version(settings.prediction_log_url, name)
        )
        reference = load_reference(ref, settings.sample_rows, settings.seed)
        privacy = LogPrivacy.from_settings(settings)
        if privacy is not None:
            reference = private_reference(ref, reference, privacy)
        _lap("registry + reference", started)
        logged = read_window(
            settings.prediction_log_url,
            ref.name,
            ref.version,
            ref.run_id,
            window,
            ref.columns,
            min_rows(window, settings.min_rows),
            settings.sample_rows,
            settings.seed,
        )
        _lap("prediction log", started)
    except CannotJudge as exc:
        return Outcome(EXIT_CANNOT_JUDGE, f"cannot judge drift: {exc}")
    current = coerce(logged.frame, ref)
    html = new_html_path(settings.reports_dir)
    try:
        render = worker.render if worker is not None else render_report
        result = render(current, reference, ref, settings, html)
        _lap("evidently", started)
        summary = build_summary(
            ref,
            window,
            logged,
            len(reference),
            reference.attrs.get("n_total"),
            result,
            settings,
            started,
        )
        _publish(summary, html, settings)
    finally:
        html.unlink(missing_ok=True)  # renamed to <id>.html on success
    _lap("reports + mlflow", started)
    summary["duration_s"] = round(time.time() - started, 3)
    return Outcome(summary["exit_code"], describe(summary, settings), summary)


def min_rows(window: Window, configured: int) -> int:
    """Fewest rows to judge: the setting, or N for an explicit `--last N` below it (the user
    asked for exactly that many rows)."""
    return configured if window.last is None else min(configured, window.last)


def _lap(step: str, started: float) -> None:
    log.debug("drift check: %s done at %.2fs", step, time.time() - started)


def describe(summary: dict, settings: Settings) -> str:
    """One line for people, e.g. `drift: 4/13 columns drifted (share 0.31 >= 0.25): age, ...`."""
    n_drift, n_cols = len(summary["drifted_columns"]), summary["n_columns"]
    op = ">=" if summary["dataset_drift"] else "<"
    head = "DRIFT" if summary["dataset_drift"] else "no drift"
    names = ", ".join(summary["drifted_columns"]) or "none"
    report = settings.reports_dir / summary["html"]
    skipped = summary.get("columns_not_judged") or []
    unjudged = f"; not judged (left out of the log): {', '.join(skipped)}" if skipped else ""
    return (
        f"{head}: {summary['model_name']} v{summary['model_version']}, "
        f"{summary['window']['description']} ({summary['rows']['window']} rows): "
        f"{n_drift}/{n_cols} columns drifted (share {summary['drift_share']:.2f} {op} "
        f"{summary['drift_share_threshold']:.2f}): {names}{unjudged}; report: {report}"
    )
