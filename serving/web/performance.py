"""Live performance for the Monitoring page, read from the performance job's reports.

In: `<reports dir>/performance-latest.json` and the timestamped `<stamp>-<model>-performance-
<hex>.json` summaries next to it, written by `mlcycle performance` (`monitoring.perfreport`;
read here by field name, since serving does not import monitoring): per version, the range's
figures (`overall`), per-window figures (`windows`) and the validation AUC. Out: a
`LivePerformance` with the latest figures per version (the table) and one series of windows
per version stitched from successive checks (the chart), or None when nothing readable is there.

Each check covers one range (`--since 1d`), so the newest check gives the recent windows and
older checks the earlier ones. Windows start at multiples of the window length, so the same
window seen by two checks has the same start: the copy with more labelled rows wins (labels
arrive late; the range's first window is only partly covered). Only checks with the window
length of the newest multi-window check are stitched; a one-window check (e.g. the one
`mlcycle retrain-on-drift` runs over its whole training range) adds nothing to the chart.
Reading never raises: a missing, unreadable or malformed file is skipped and logged.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from serving.web.reports import parse_time, report_file

log = logging.getLogger(__name__)

LATEST_FILE = "performance-latest.json"
STAMPED = re.compile(r"^(\d{8}T\d{6}Z)-.+-performance-[0-9a-f]+\.json$")
HISTORY_S = 14 * 86_400
MAX_OPENED = 30


@dataclass(frozen=True)
class VersionFigures:
    """One version's figures over the latest check's whole range (a table row)."""

    version: str
    live_auc: float | None
    estimated_auc: float | None
    validation_auc: float | None
    label_coverage: float | None
    n_labelled: int
    n_predictions: int
    enough_labels: bool
    alert: bool


@dataclass(frozen=True)
class Point:
    """One time window of one version (a point of the chart)."""

    start: float
    end: float
    live_auc: float | None
    estimated_auc: float | None
    n_labelled: int
    n_predictions: int


@dataclass
class VersionSeries:
    """One version's windows, oldest first, and its validation AUC (a line of the chart)."""

    version: str
    validation_auc: float | None
    points: list[Point] = field(default_factory=list)


@dataclass
class LivePerformance:
    """What the Monitoring page shows about live performance."""

    model_name: str
    checked_at: float | None
    range_text: str
    window_s: float | None
    margin: float | None
    min_labelled: int | None
    report_id: str | None
    latest: list[VersionFigures]
    series: list[VersionSeries]

    @property
    def window_text(self) -> str:
        """The window length as people write it (`1h`, `15m`, `1d`; blank when unknown)."""
        if not self.window_s:
            return ""
        for unit, seconds in (("d", 86_400), ("h", 3_600), ("m", 60)):
            if self.window_s % seconds == 0:
                return f"{int(self.window_s // seconds)}{unit}"
        return f"{self.window_s:g}s"

    @property
    def checked_text(self) -> str:
        """The check's time as `YYYY-MM-DD HH:MM:SS UTC` (blank when unknown)."""
        if self.checked_at is None:
            return ""
        try:
            when = datetime.fromtimestamp(self.checked_at, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return ""
        return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any) -> float | None:
    """A finite number, else None (JSON may hold NaN, strings, null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int:
    number = _num(value)
    return int(number) if number is not None and number >= 0 else 0


def _load(path: Path) -> dict | None:
    """A performance summary from `path`, or None (missing, unreadable, not a summary)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("unreadable performance summary %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("versions"), list):
        log.warning("%s is not a performance summary (no `versions` list)", path)
        return None
    return data


def _versions(summary: dict) -> list[dict]:
    return [
        v
        for v in summary["versions"]
        if isinstance(v, dict) and isinstance(v.get("version"), (str, int))
    ]


def _window(summary: dict) -> dict:
    window = summary.get("window")
    return window if isinstance(window, dict) else {}


def _range(summary: dict) -> tuple[float | None, float | None]:
    window = _window(summary)
    return parse_time(window.get("from")), parse_time(window.get("to"))


def _is_series(summary: dict) -> bool:
    """Whether the check splits its range into several windows (a time series)."""
    window_s = _num(_window(summary).get("window_s"))
    start, end = _range(summary)
    if window_s is None or window_s <= 0:
        return False
    return start is None or end is None or end - start > window_s


def _figures(entry: dict, min_labelled: int | None) -> VersionFigures:
    overall = entry.get("overall") if isinstance(entry.get("overall"), dict) else {}
    n_labelled = _count(overall.get("n_labelled"))
    return VersionFigures(
        version=str(entry["version"]),
        live_auc=_num(overall.get("auc")),
        estimated_auc=_num(overall.get("estimated_auc")),
        validation_auc=_num(entry.get("validation_auc")),
        label_coverage=_num(overall.get("label_coverage")),
        n_labelled=n_labelled,
        n_predictions=_count(overall.get("n_predictions")),
        enough_labels=n_labelled >= (min_labelled or 0),
        alert=entry.get("alert") is True,
    )


def _points(entry: dict) -> list[Point]:
    windows = entry.get("windows")
    out = []
    for w in windows if isinstance(windows, list) else []:
        if not isinstance(w, dict):
            continue
        start, end = _num(w.get("start")), _num(w.get("end"))
        live, estimated = _num(w.get("auc")), _num(w.get("estimated_auc"))
        if start is None or end is None or end <= start or (live is None and estimated is None):
            continue
        out.append(
            Point(
                start,
                end,
                live,
                estimated,
                _count(w.get("n_labelled")),
                _count(w.get("n_predictions")),
            )
        )
    return out


def _stamp(name: str) -> float | None:
    match = STAMPED.match(name)
    if match is None:
        return None
    parsed = datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return parsed.timestamp()


class _Stitched:
    """The checks taken so far (newest first) and the span of time they cover."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.summaries: list[dict] = []
        self.ids: set = set()
        self.window_s: float | None = None
        self.span: float | None = None  # range length of the first check taken
        self.covered_from: float | None = None

    def take(self, summary: dict) -> None:
        """Add `summary` if it is a multi-window check of the model with the window length of
        the checks taken before it (the first one taken sets it)."""
        window_s = _num(_window(summary).get("window_s"))
        if summary.get("id") in self.ids or summary.get("model_name") != self.model_name:
            return
        if not _is_series(summary) or self.window_s not in (None, window_s):
            return
        self.ids.add(summary.get("id"))
        self.summaries.append(summary)
        self.window_s = window_s
        start, end = _range(summary)
        if start is not None:
            self.covered_from = (
                start if self.covered_from is None else min(self.covered_from, start)
            )
            if self.span is None and end is not None:
                self.span = end - start

    def next_file(self, pending: list[tuple[float, Path]]) -> int | None:
        """Which of the check files (newest first, by the check time in their names) to open
        next: the oldest one whose range (assumed as long as the first check's) reaches the
        covered span by a whole window (so the covered span's first, partial window is seen
        whole), else the newest one before a gap; None when none adds anything."""
        if self.covered_from is None or self.span is None:
            return 0 if pending else None
        reach = self.covered_from + (self.window_s or 0.0)
        meets = [
            i
            for i, (t, _) in enumerate(pending)
            if t >= reach and t - self.span < self.covered_from
        ]
        if meets:
            return meets[-1]
        before = [i for i, (t, _) in enumerate(pending) if t < reach]
        return before[0] if before else None


def _history(root: Path, latest: dict, model_name: str, now: float) -> _Stitched:
    """The checks to stitch: the latest, then older ones chosen by the check time in their
    file names so that each adds about one range further back (at most `MAX_OPENED` opened)."""
    stitched = _Stitched(model_name)
    stitched.take(latest)
    pending = sorted(
        (
            (t, p)
            for p in root.glob("*-performance-*.json")
            if (t := _stamp(p.name)) is not None and t >= now - HISTORY_S
        ),
        key=lambda item: item[0],
        reverse=True,
    )
    for _ in range(MAX_OPENED):
        index = stitched.next_file(pending)
        if index is None:
            break
        _, path = pending.pop(index)
        summary = _load(path)
        if summary is not None:
            stitched.take(summary)
    return stitched


def _stitch(stitched: _Stitched, now: float) -> list[VersionSeries]:
    """Per version, the windows of the checks taken (see the module docstring)."""
    best: dict[str, dict[float, Point]] = {}
    validation: dict[str, float | None] = {}
    for summary in stitched.summaries:  # newest first: on a tie the newer copy stays
        for entry in _versions(summary):
            version = str(entry["version"])
            validation.setdefault(version, _num(entry.get("validation_auc")))
            slots = best.setdefault(version, {})
            for point in _points(entry):
                if point.end < now - HISTORY_S or point.start > now + 86_400:
                    continue  # too old to show, or a clock far off
                kept = slots.get(point.start)
                if kept is None or (point.n_labelled, point.n_predictions) > (
                    kept.n_labelled,
                    kept.n_predictions,
                ):
                    slots[point.start] = point
    out = [
        VersionSeries(v, validation[v], [slots[t] for t in sorted(slots)])
        for v, slots in best.items()
        if slots
    ]
    out.sort(key=lambda s: (0, int(s.version), "") if s.version.isdigit() else (1, 0, s.version))
    return out


def _report_id(root: Path, latest: dict) -> str | None:
    """The id of the check's HTML page in the reports folder (its own, else the latest copy)."""
    own = str(latest.get("html") or "")
    for candidate in (own.removesuffix(".html"), LATEST_FILE.removesuffix(".json")):
        if candidate and report_file(root, candidate) is not None:
            return candidate
    return None


def read_live_performance(
    reports_dir: str | Path, model_name: str | None = None, now: float | None = None
) -> LivePerformance | None:
    """The latest live-performance figures and the stitched series, or None.

    Args:
        reports_dir: the reports folder.
        model_name: show only checks of this model (None: that of the latest check).
        now: the page's time (default: now); windows older than 14 days are left out.

    Returns:
        None when there is no readable `performance-latest.json` naming at least one version
        (or it is about another model); else the figures (see the module docstring).
    """
    now = time.time() if now is None else now
    root = Path(reports_dir)
    try:
        latest = _load(root / LATEST_FILE) if root.is_dir() else None
        if latest is None or not _versions(latest):
            return None
        name = str(latest.get("model_name") or "")
        if model_name is not None and name != model_name:
            return None
        minimum = _num(latest.get("min_labelled"))
        min_labelled = int(minimum) if minimum is not None else None
        stitched = _history(root, latest, name, now)
        report_id = _report_id(root, latest)
        return LivePerformance(
            model_name=name,
            checked_at=_num(latest.get("timestamp")),
            range_text=str(_window(latest).get("description") or ""),
            window_s=stitched.window_s or _num(_window(latest).get("window_s")),
            margin=_num(latest.get("margin")),
            min_labelled=min_labelled,
            report_id=report_id,
            latest=[_figures(v, min_labelled) for v in _versions(latest)],
            series=_stitch(stitched, now),
        )
    except Exception:  # the page must render whatever the folder holds
        log.warning("cannot read live performance from %s", root, exc_info=True)
        return None
