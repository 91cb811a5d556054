"""Drift runs listed from the monitoring job's reports folder, and their HTML served by id.

In: `<reports dir>/index.json` (written by `monitoring`, newest first) and the per-run JSON
summaries and Evidently HTML files next to it. Out: `DriftRun` rows for the Monitoring page and
`report_file(reports_dir, id)`, which maps an id to a file inside the reports folder or to None.
Ids are plain file-name stems; anything else (`..`, slashes, absolute paths, encoded variants,
symlinks leading out of the folder) maps to None, which the view turns into a 404.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
INDEX_FILE = "index.json"


@dataclass(frozen=True)
class DriftRun:
    """One drift check as shown in the Monitoring table and chart."""

    id: str
    ts: float | None
    model_version: str
    window: str
    verdict: str
    drift: bool
    drift_share: float | None
    rows: int | None
    has_report: bool

    @property
    def time_text(self) -> str:
        """The run time as `YYYY-MM-DD HH:MM:SS UTC` (blank when unknown)."""
        if self.ts is None:
            return ""
        return datetime.fromtimestamp(self.ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def valid_id(report_id: str) -> bool:
    """Whether `report_id` is a plain file-name stem (no separators, no `..`)."""
    return bool(REPORT_ID.match(report_id or "")) and ".." not in report_id


def report_file(reports_dir: str | Path, report_id: str, suffix: str = ".html") -> Path | None:
    """The report file for an id, only if it lies inside the reports folder.

    Args:
        reports_dir: the reports folder.
        report_id: the id from the URL.
        suffix: ".html" for the Evidently report, ".json" for the summary.

    Returns:
        The resolved path of an existing file inside `reports_dir`, else None.
    """
    if not valid_id(report_id):
        return None
    root = Path(reports_dir).resolve()
    stem = report_id[: -len(suffix)] if report_id.endswith(suffix) else report_id
    candidate = (root / f"{stem}{suffix}").resolve()
    if candidate.parent != root or not candidate.is_file():
        return None
    return candidate


def parse_time(value: Any) -> float | None:
    """Unix time from a number or an ISO-8601 string (no zone: UTC); None otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.timestamp()
    return None


def _first(entry: dict, *keys: str) -> Any:
    for key in keys:
        if entry.get(key) is not None:
            return entry[key]
    return None


def _window_text(window: Any) -> str:
    if isinstance(window, dict):
        return str(_first(window, "description", "text", "label") or json.dumps(window))
    return "" if window is None else str(window)


def _verdict(entry: dict) -> tuple[str, bool]:
    """The verdict as people read it ("no drift") and whether it says drift."""
    flag = _first(entry, "dataset_drift", "drift_detected")
    value = _first(entry, "verdict", "status")
    if value is None:
        value = "" if flag is None else ("drift" if flag else "no drift")
    text = str(value).replace("_", " ")
    drift = bool(flag) if isinstance(flag, bool) else text.lower() in ("drift", "drift detected")
    return text, drift


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _run_from(entry: dict, reports_dir: Path) -> DriftRun | None:
    run_id = _first(entry, "id", "report_id", "run_id")
    if run_id is None:
        return None
    run_id = str(run_id)
    rows = _first(entry, "rows", "n_rows", "current_rows", "window_rows")
    verdict, drift = _verdict(entry)
    return DriftRun(
        id=run_id,
        ts=parse_time(_first(entry, "ts", "timestamp", "time", "created_at", "finished_at")),
        model_version=str(_first(entry, "model_version", "version") or ""),
        window=_window_text(_first(entry, "window", "window_description")),
        verdict=verdict,
        drift=drift,
        drift_share=_float(_first(entry, "drift_share", "share_of_drifted_columns")),
        rows=int(rows) if isinstance(rows, (int, float)) else None,
        has_report=report_file(reports_dir, run_id) is not None,
    )


def _entries(reports_dir: Path) -> list[dict]:
    """Index entries, or the per-run JSON summaries when there is no index."""
    index = reports_dir / INDEX_FILE
    if index.is_file():
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("unreadable drift index %s: %s", index, exc)
            data = []
        if isinstance(data, dict):
            data = _first(data, "runs", "reports", "entries") or []
        return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []
    out = []
    for path in sorted(reports_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        # the performance job's summaries share the folder; they are not drift runs
        if isinstance(data, dict) and data.get("kind") != "performance":
            out.append({"id": path.stem, **data})
    return out


def list_runs(reports_dir: str | Path, limit: int = 200) -> list[DriftRun]:
    """Drift runs in the reports folder, newest first.

    Args:
        reports_dir: the reports folder (missing folder: no runs).
        limit: at most this many runs.

    Returns:
        The runs, newest first.
    """
    root = Path(reports_dir)
    if not root.is_dir():
        return []
    runs = [r for r in (_run_from(e, root) for e in _entries(root)) if r is not None]
    runs.sort(key=lambda r: r.ts or 0.0, reverse=True)
    return runs[:limit]
