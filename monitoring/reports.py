"""Where a drift check's results go: report files, the run index, drift.prom and MLflow.

In: the rendered Evidently HTML and the JSON summary of one check. Out, in the reports folder:
`<id>.html` (Evidently report), `<id>.json` (summary), `latest.html` / `latest.json` (copies of
the newest), `index.json` (`{"runs": [...]}`, newest first: id, time, model, window, verdict,
share, file names) and `drift.prom` (Prometheus text format, Contract 3, rebuilt from the index:
the newest check per model version). Every file is written to a temporary name and renamed, so
readers (serving's /metrics, the web app) never see half a file. The same HTML and JSON are
logged to an MLflow run in the `monitoring` experiment with metrics and tags.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INDEX = "index.json"
PROM = "drift.prom"
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-./ ]")


def atomic_write(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and an atomic rename.

    Args:
        path: destination.
        text: content (UTF-8).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_copy(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_html_path(reports_dir: Path) -> Path:
    """A fresh hidden temporary file in the reports folder for the Evidently HTML (the check
    renames it to `<id>.html` in `write_report`, or removes it)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report.", suffix=".html", dir=reports_dir)
    os.close(fd)
    return Path(tmp)


def write_report(reports_dir: Path, summary: dict, html: Path) -> tuple[Path, Path]:
    """Write `<id>.html`, `<id>.json` and refresh `latest.*`.

    Args:
        reports_dir: the reports folder (created if missing).
        summary: the JSON summary (must hold `id`, `html`, `json`).
        html: the rendered Evidently report (from `new_html_path`), renamed to `<id>.html`.

    Returns:
        (HTML path, JSON path).
    """
    reports_dir.mkdir(parents=True, exist_ok=True)
    html_path, json_path = reports_dir / summary["html"], reports_dir / summary["json"]
    os.chmod(html, 0o644)
    os.replace(html, html_path)
    atomic_write(json_path, json.dumps(summary, indent=2, sort_keys=False))
    _atomic_copy(html_path, reports_dir / "latest.html")
    _atomic_copy(json_path, reports_dir / "latest.json")
    return html_path, json_path


def index_entry(summary: dict) -> dict:
    """The compact line of a check in `index.json`."""
    keys = (
        "id",
        "created_at",
        "timestamp",
        "model_name",
        "model_version",
        "verdict",
        "dataset_drift",
        "drift_share",
        "drift_share_threshold",
        "drifted_columns",
        "html",
        "json",
    )
    entry = {k: summary.get(k) for k in keys}
    entry["window"] = (summary.get("window") or {}).get("description")
    entry["rows"] = (summary.get("rows") or {}).get("window")
    return entry


def read_index(reports_dir: Path) -> list[dict]:
    """The runs listed in `index.json`, newest first (empty when missing or unreadable)."""
    try:
        runs = json.loads((reports_dir / INDEX).read_text(encoding="utf-8")).get("runs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in runs if isinstance(r, dict)]


def update_index(reports_dir: Path, summary: dict, keep: int) -> list[dict]:
    """Put the check at the head of `index.json` (bounded to `keep` runs).

    Args:
        reports_dir: the reports folder.
        summary: the check's summary.
        keep: the most runs to list.

    Returns:
        The runs now listed.
    """
    # Two checks finishing together (cron and a scheduled loop) must not drop each other's
    # entry: the read-modify-write holds an exclusive lock on a sidecar file.
    with open(reports_dir / ".index.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        runs = [index_entry(summary)] + [
            r for r in read_index(reports_dir) if r.get("id") != summary["id"]
        ]
        runs = runs[: max(keep, 1)]
        atomic_write(reports_dir / INDEX, json.dumps({"runs": runs}, indent=2))
    return runs


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prom_family(name: str, help_text: str, samples: list[tuple[dict, float]]) -> list[str]:
    """The Prometheus text lines of one gauge family.

    Args:
        name: the metric name.
        help_text: its `# HELP` text.
        samples: `(labels, value)` pairs (label values are escaped here).

    Returns:
        The `# HELP`, `# TYPE` and sample lines.
    """
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        text = ",".join(f'{key}="{_label(v)}"' for key, v in labels.items())
        lines.append(f"{name}{{{text}}} {value}")
    return lines


def prom_text(runs: list[dict]) -> str:
    """Prometheus text exposition of the newest check per model version.

    Args:
        runs: index entries, newest first.

    Returns:
        The `drift.prom` content.
    """
    newest: dict[tuple[str, str], dict] = {}
    for run in runs:
        key = (str(run.get("model_name")), str(run.get("model_version")))
        newest.setdefault(key, run)
    families = (
        (
            "mlcycle_drift_detected",
            "1 if the last drift check found dataset drift, else 0.",
            lambda r: 1 if r.get("dataset_drift") else 0,
        ),
        (
            "mlcycle_drift_share",
            "Share of drifted input columns in the last drift check.",
            lambda r: float(r.get("drift_share") or 0.0),
        ),
        (
            "mlcycle_drift_last_run_timestamp_seconds",
            "Unix time of the last drift check.",
            lambda r: float(r.get("timestamp") or 0.0),
        ),
    )
    lines = []
    for name, help_text, value in families:
        samples = [
            ({"model_name": model, "model_version": version}, value(run))
            for (model, version), run in sorted(newest.items())
        ]
        lines += prom_family(name, help_text, samples)
    return "\n".join(lines) + "\n"


def write_prom(reports_dir: Path, runs: list[dict]) -> Path:
    """Rewrite `drift.prom` atomically from the index.

    Args:
        reports_dir: the reports folder.
        runs: index entries, newest first.

    Returns:
        The file's path.
    """
    path = reports_dir / PROM
    atomic_write(path, prom_text(runs))
    return path


def metric_key(prefix: str, column: str) -> str:
    """An MLflow-safe metric name, e.g. `drift_score.income`."""
    return _METRIC_NAME.sub("_", f"{prefix}.{column}")


def mlflow_metrics(summary: dict) -> dict[str, float]:
    """The metrics of a check's MLflow run: share, verdict, row counts and per-column scores."""
    metrics = {
        "drift_share": float(summary["drift_share"]),
        "dataset_drift": 1.0 if summary["dataset_drift"] else 0.0,
        "n_drifted_columns": float(len(summary["drifted_columns"])),
        "rows_window": float(summary["rows"]["window"]),
        "rows_current": float(summary["rows"]["current"]),
        "rows_reference": float(summary["rows"]["reference"]),
    }
    for column, info in summary["columns"].items():
        if info.get("score") is not None:
            metrics[metric_key("drift_score", column)] = float(info["score"])
    prediction = summary.get("prediction_drift")
    if prediction and prediction.get("score") is not None:
        metrics["prediction_drift_score"] = float(prediction["score"])
        metrics["prediction_drift"] = 1.0 if prediction.get("drifted") else 0.0
    return metrics


def mlflow_tags(summary: dict) -> dict[str, str]:
    """The tags of a check's MLflow run: model, version, window, verdict."""
    window = summary["window"]
    return {
        "mlcycle.model_name": summary["model_name"],
        "mlcycle.model_version": str(summary["model_version"]),
        "mlcycle.model_run_id": summary.get("model_run_id") or "",
        "mlcycle.window": window["description"],
        "mlcycle.window_kind": window["kind"],
        "mlcycle.verdict": summary["verdict"],
        "mlcycle.drifted_columns": ",".join(summary["drifted_columns"])[:4900],
        "mlcycle.report_id": summary["id"],
    }


def start_mlflow_run(experiment: str, summary: dict) -> Any:
    """Start the check's MLflow run (the caller ends it).

    Args:
        experiment: experiment name (created if missing).
        summary: the check's summary (its id names the run).

    Returns:
        The active MLflow run.
    """
    import mlflow

    mlflow.set_experiment(experiment)
    return mlflow.start_run(run_name=f"drift-{summary['model_name']}-v{summary['model_version']}")


def log_to_mlflow(summary: dict, html_path: Path, json_path: Path) -> None:
    """Log metrics, tags and the two report files to the active MLflow run.

    Args:
        summary: the check's summary.
        html_path: the HTML report.
        json_path: the JSON summary.
    """
    import mlflow

    mlflow.set_tags(mlflow_tags(summary))
    mlflow.log_params(
        {
            "window": summary["window"]["description"],
            "drift_share_threshold": summary["drift_share_threshold"],
            "sample_rows": summary["sample_rows"],
        }
    )
    mlflow.log_metrics(mlflow_metrics(summary))
    mlflow.log_artifact(str(html_path), artifact_path="drift")
    mlflow.log_artifact(str(json_path), artifact_path="drift")
