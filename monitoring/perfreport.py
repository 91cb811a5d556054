"""Where a live-performance check's results go: JSON, HTML, performance.prom and MLflow.

In: the `VersionPerformance` results of one check (`monitoring.performance.evaluate`) and what
the check looked at (model, range, window length, alert margin). Out, in the reports folder
(every file written to a temporary name and renamed, like the drift reports):
`<id>.json` (the summary, below), `<id>.html` (tables and two small charts per version),
`performance-latest.json` / `performance-latest.html` (copies of the newest) and
`performance.prom` (Prometheus text format: live, estimated and validation AUC and label
coverage per model version, plus the check's time). In MLflow (`publish`): one run per version
in the `monitoring` experiment, with the range's metrics, the per-window metrics as steps and
the two files as artifacts.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from monitoring.performance import VersionPerformance
from monitoring.reports import atomic_write, prom_family

log = logging.getLogger(__name__)

PROM = "performance.prom"
LATEST = "performance-latest"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_summary(
    model_name: str,
    results: list[VersionPerformance],
    start: float,
    end: float,
    window_s: float,
    margin: float,
    min_labelled: int,
    now: float,
) -> dict:
    """The self-describing JSON summary of one check.

    Args:
        model_name: registered model name.
        results: per version (from `evaluate`).
        start: range start (Unix time).
        end: range end (Unix time).
        window_s: window length (seconds).
        margin: the alert margin below validation AUC.
        min_labelled: fewest labelled rows for a version's live AUC to count (alert, gauge).
        now: when the check ran (Unix time).

    Returns:
        The summary: `id`, `kind` (`performance`), `created_at`, `timestamp`, `model_name`,
        `window` (`from`, `to`, `description`, `window_s`), `margin`, `min_labelled`,
        `versions` (`VersionPerformance.as_dict` each), `alerts` (versions alerting), `html`,
        `json`, `mlflow_run_ids`.
    """
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    model = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)
    report_id = f"{stamp}-{model}-performance-{secrets.token_hex(2)}"
    return {
        "id": report_id,
        "kind": "performance",
        "created_at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
        "timestamp": now,
        "model_name": model_name,
        "window": {
            "from": _iso(start),
            "to": _iso(end),
            "description": f"{_iso(start)}..{_iso(end)}",
            "window_s": window_s,
        },
        "margin": margin,
        "min_labelled": min_labelled,
        "versions": [r.as_dict() for r in results],
        "alerts": [r.version for r in results if r.alert],
        "html": f"{report_id}.html",
        "json": f"{report_id}.json",
        "mlflow_run_ids": {},
    }


def prom_text(summary: dict) -> str:
    """Prometheus text exposition of one check: per version `mlcycle_live_auc` (only with at
    least `min_labelled` labelled rows), `mlcycle_estimated_auc`, `mlcycle_validation_auc`
    (when known), `mlcycle_label_coverage`, and `mlcycle_performance_last_run_timestamp_seconds`.
    """
    model = summary["model_name"]
    enough = summary["min_labelled"]

    def samples(value) -> list[tuple[dict, float]]:
        out = []
        for version in summary["versions"]:
            got = value(version)
            if got is not None:
                out.append(({"model_name": model, "model_version": version["version"]}, got))
        return out

    families = (
        (
            "mlcycle_live_auc",
            "Realised ROC AUC on the labelled live rows of the checked range.",
            lambda v: v["overall"]["auc"] if v["overall"]["n_labelled"] >= enough else None,
        ),
        (
            "mlcycle_estimated_auc",
            "ROC AUC estimated from the served probabilities alone (CBPE).",
            lambda v: v["overall"]["estimated_auc"],
        ),
        (
            "mlcycle_validation_auc",
            "Validation ROC AUC of the model version (registry).",
            lambda v: v["validation_auc"],
        ),
        (
            "mlcycle_label_coverage",
            "Share of the range's served rows that have a label.",
            lambda v: v["overall"]["label_coverage"],
        ),
        (
            "mlcycle_performance_last_run_timestamp_seconds",
            "Unix time of the last live-performance check.",
            lambda v: float(summary["timestamp"]),
        ),
    )
    lines = []
    for name, help_text, value in families:
        lines += prom_family(name, help_text, samples(value))
    return "\n".join(lines) + "\n"


def write_performance(reports_dir: Path, summary: dict) -> tuple[Path, Path, Path]:
    """Write `<id>.json`, `<id>.html`, the `performance-latest.*` copies and `performance.prom`.

    Args:
        reports_dir: the reports folder (created if missing).
        summary: the check's summary (`build_summary`).

    Returns:
        (HTML path, JSON path, prom path).
    """
    reports_dir = Path(reports_dir)
    page, data = render_html(summary), json.dumps(summary, indent=2)
    html_path, json_path = reports_dir / summary["html"], reports_dir / summary["json"]
    atomic_write(html_path, page)
    atomic_write(json_path, data)
    atomic_write(reports_dir / f"{LATEST}.html", page)
    atomic_write(reports_dir / f"{LATEST}.json", data)
    prom_path = reports_dir / PROM
    atomic_write(prom_path, prom_text(summary))
    return html_path, json_path, prom_path


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "th{background:#f3f3f3}.alert{color:#b00020;font-weight:bold}svg{margin-right:2em}"
)
_OVERALL = (
    ("served rows", "n_predictions"),
    ("labelled rows", "n_labelled"),
    ("label coverage", "label_coverage"),
    ("live AUC", "auc"),
    ("estimated AUC (CBPE)", "estimated_auc"),
    ("log loss", "log_loss"),
    ("Brier score", "brier"),
    ("positive rate (labels)", "positive_rate"),
    ("mean prediction", "mean_prediction"),
    ("estimated positive rate", "estimated_positive_rate"),
)
_WINDOW = (
    ("rows", "n_predictions"),
    ("labelled", "n_labelled"),
    ("coverage", "label_coverage"),
    ("live AUC", "auc"),
    ("estimated AUC", "estimated_auc"),
    ("log loss", "log_loss"),
    ("Brier", "brier"),
    ("positive rate", "positive_rate"),
    ("mean prediction", "mean_prediction"),
)


def render_html(summary: dict) -> str:
    """A small self-contained HTML page of a check (no scripts, no external files)."""
    esc = html.escape
    title = f"Live performance: {summary['model_name']}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{esc(title)}</h1>",
        f"<p>{esc(summary['window']['description'])}, windows of "
        f"{_fmt(summary['window']['window_s'] / 3600, 2)} h; alert when live AUC &lt; "
        f"validation AUC − {_fmt(summary['margin'], 2)} on at least "
        f"{summary['min_labelled']} labels. Created {esc(summary['created_at'])}.</p>",
    ]
    for version in summary["versions"]:
        parts.append(_version_html(version))
    parts.append("</body></html>")
    return "".join(parts)


def _version_html(version: dict) -> str:
    esc = html.escape
    overall = version["overall"]
    flag = (
        " <span class='alert'>ALERT: live AUC below validation</span>" if version["alert"] else ""
    )
    rows = "".join(
        f"<tr><th>{esc(label)}</th><td>{_fmt(overall[key])}</td></tr>" for label, key in _OVERALL
    )
    rows += f"<tr><th>validation AUC</th><td>{_fmt(version['validation_auc'])}</td></tr>"
    rows += f"<tr><th>calibration (CBPE)</th><td>{esc(version['calibration'])}</td></tr>"
    head = "".join(f"<th>{esc(label)}</th>" for label, _ in _WINDOW)
    windows = "".join(
        f"<tr><td>{_iso(w['start'])}</td>"
        + "".join(f"<td>{_fmt(w[key])}</td>" for _, key in _WINDOW)
        + "</tr>"
        for w in version["windows"]
    )
    return (
        f"<h2>Version {esc(version['version'])}{flag}</h2><table>{rows}</table>"
        f"{_auc_chart(version)}{_reliability_chart(overall['reliability'])}"
        f"<table><tr><th>window start (UTC)</th>{head}</tr>{windows}</table>"
    )


def _polyline(points: list[tuple[float, float]], colour: str, dash: str = "") -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    extra = f" stroke-dasharray='{dash}'" if dash else ""
    return f"<polyline points='{coords}' fill='none' stroke='{colour}' stroke-width='2'{extra}/>"


def _frame(label: str) -> str:
    return (
        "<rect x='40' y='10' width='260' height='160' fill='none' stroke='#999'/>"
        "<text x='5' y='15' font-size='10'>1</text><text x='5' y='170' font-size='10'>0</text>"
        f"<text x='40' y='190' font-size='11'>{html.escape(label)}</text>"
    )


def _auc_chart(version: dict) -> str:
    """Live (blue) and estimated (orange, dashed) AUC per window, validation AUC (grey)."""
    windows = version["windows"]
    n = len(windows)

    def x(i: int) -> float:
        return 40 + (260 * i / (n - 1) if n > 1 else 130)

    def y(v: float) -> float:
        return 170 - 160 * v

    live = [(x(i), y(w["auc"])) for i, w in enumerate(windows) if w["auc"] is not None]
    est = [
        (x(i), y(w["estimated_auc"]))
        for i, w in enumerate(windows)
        if w["estimated_auc"] is not None
    ]
    valid = version["validation_auc"]
    line = _polyline([(40, y(valid)), (300, y(valid))], "#888", "4") if valid is not None else ""
    return (
        "<svg width='320' height='200' role='img' aria-label='AUC per window'>"
        f"{_frame('AUC per window: live, estimated, validation')}{line}"
        f"{_polyline(live, '#1f77b4')}{_polyline(est, '#ff7f0e', '6 3')}</svg>"
    )


def _reliability_chart(bins: list[dict]) -> str:
    """Observed positive rate against mean predicted probability per bin, and the diagonal."""
    points = [
        (40 + 260 * b["mean_predicted"], 170 - 160 * b["observed_rate"]) for b in bins if b["count"]
    ]
    dots = "".join(
        f"<circle cx='{px:.1f}' cy='{py:.1f}' r='3' fill='#1f77b4'/>" for px, py in points
    )
    return (
        "<svg width='320' height='200' role='img' aria-label='reliability curve'>"
        f"{_frame('reliability: observed rate vs predicted')}"
        f"{_polyline([(40, 170), (300, 10)], '#888', '4')}"
        f"{_polyline(points, '#1f77b4')}{dots}</svg>"
    )


def mlflow_metrics(version: dict) -> list[tuple[str, float, int, int]]:
    """The metrics of a version's MLflow run as `(key, value, step, timestamp ms)`: the range's
    figures at step 0, and `window_<figure>` per window (step = window index, timestamp = the
    window's start), so MLflow charts them over time. Undefined figures are left out."""
    overall = version["overall"]
    out = []
    figures = (
        "auc",
        "estimated_auc",
        "log_loss",
        "brier",
        "label_coverage",
        "positive_rate",
        "mean_prediction",
        "n_predictions",
        "n_labelled",
    )
    start_ms = int(overall["start"] * 1000)
    for key in figures:
        if overall[key] is not None:
            out.append((f"live_{key}", float(overall[key]), 0, start_ms))
    if version["validation_auc"] is not None:
        out.append(("validation_auc", float(version["validation_auc"]), 0, start_ms))
    out.append(("alert", 1.0 if version["alert"] else 0.0, 0, start_ms))
    for step, window in enumerate(version["windows"]):
        for key in ("auc", "estimated_auc", "label_coverage", "n_predictions"):
            if window[key] is not None:
                out.append((f"window_{key}", float(window[key]), step, int(window["start"] * 1000)))
    return out


def publish(reports_dir: Path, summary: dict, experiment: str | None) -> tuple[Path, Path, Path]:
    """Write the check's files and, with `experiment`, log one MLflow run per version.

    The runs are created first so that the summary names them (`mlflow_run_ids`), then the
    files are written, then each run gets its metrics, tags and the two files. MLflow being
    unreachable only warns: the files and the gauges matter more than the MLflow copy.

    Args:
        reports_dir: the reports folder.
        summary: the check's summary (`build_summary`).
        experiment: MLflow experiment name (e.g. `monitoring`), or None for files only.

    Returns:
        (HTML path, JSON path, prom path).
    """
    runs: dict[str, str] = {}
    client = None
    if experiment:
        try:
            client, runs = _create_runs(summary, experiment)
        except Exception:
            log.warning("could not start MLflow runs for the performance check", exc_info=True)
    summary["mlflow_run_ids"] = runs
    paths = write_performance(reports_dir, summary)
    for version in summary["versions"]:
        run_id = runs.get(str(version["version"]))
        if run_id is None:
            continue
        try:
            _fill_run(client, run_id, version, paths[0], paths[1])
        except Exception:
            log.warning("could not log the performance of v%s to MLflow", version["version"])
        finally:
            client.set_terminated(run_id)
    return paths


def _create_runs(summary: dict, experiment: str) -> tuple[Any, dict[str, str]]:
    import mlflow

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    runs = {}
    for version in summary["versions"]:
        tags = {
            "mlcycle.kind": "performance",
            "mlcycle.model_name": summary["model_name"],
            "mlcycle.model_version": str(version["version"]),
            "mlcycle.window": summary["window"]["description"],
            "mlcycle.report_id": summary["id"],
            "mlcycle.alert": "true" if version["alert"] else "false",
            "mlcycle.calibration": version["calibration"][:4900],
            "mlflow.runName": f"performance-{summary['model_name']}-v{version['version']}",
        }
        runs[str(version["version"])] = client.create_run(experiment_id, tags=tags).info.run_id
    return client, runs


def _fill_run(client: Any, run_id: str, version: dict, html_path: Path, json_path: Path) -> None:
    from mlflow.entities import Metric

    metrics = [Metric(k, v, ts, step) for k, v, step, ts in mlflow_metrics(version)]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    client.log_artifact(run_id, str(html_path), "performance")
    client.log_artifact(run_id, str(json_path), "performance")
