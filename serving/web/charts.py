"""Server-rendered SVG for the Monitoring page: drift share per run and request volume per
hour; live AUC per model version over time.

In: `DriftRun`s (from `serving.web.reports`), hourly row counts of the prediction log
(Contract 2, read with SQLAlchemy: `hourly_volume(url, since)`; `predictions` rows plus the
`n_rows` of `prediction_batches`), and the live-performance series of
`serving.web.performance`. Out: `<svg>` strings: two stacked panels sharing a time axis
(`drift_volume_svg`), and one panel of AUC per window and version (`live_auc_svg`). Every text
in them is escaped; no script, no external asset.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from mlcycle.core.logdb import engine_url
from mlcycle.core.prediction_log import BATCHES, ROWS

log = logging.getLogger(__name__)

WIDTH, PANEL, GAP, LEFT, RIGHT, TOP = 760, 120, 36, 56, 16, 20
_engines: dict[str, object] = {}


def _engine(url: str):
    from sqlalchemy import create_engine

    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_engine(engine_url(url), pool_pre_ping=True)
    return engine


def hourly_volume(url: str, since: float) -> list[tuple[float, int]]:
    """Rows scored per hour since `since`, from the prediction log.

    A row of `prediction_batches` (one large request, when the log has that table) counts as
    its `n_rows` rows in the hour of its `ts`.

    Args:
        url: SQLAlchemy URL of the prediction log.
        since: Unix time of the first hour to count.

    Returns:
        `(hour start, rows)` pairs, oldest first; empty when the log is missing or unreadable.
    """
    from sqlalchemy import inspect, text
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
            return []  # not logged yet; connecting would create an empty database file
        engine = _engine(url)
        # CAST truncates in SQLite (ts is positive, so that is floor); PostgreSQL rounds.
        bucket = (
            "FLOOR(ts / 3600)" if engine.dialect.name != "sqlite" else "CAST(ts / 3600 AS INTEGER)"
        )
        queries = [f"SELECT {bucket} AS h, COUNT(*) FROM {ROWS} WHERE ts >= :since GROUP BY h"]
        with engine.connect() as conn:
            if inspect(conn).has_table(BATCHES):
                queries.append(
                    f"SELECT {bucket} AS h, SUM(n_rows) FROM {BATCHES} "
                    "WHERE ts >= :since GROUP BY h"
                )
            rows = [r for sql in queries for r in conn.execute(text(sql), {"since": since})]
    except Exception as exc:  # no log yet, or a locked/unreachable database: no volume panel
        log.info("prediction log volume unavailable: %s", exc)
        return []
    hours: dict[float, int] = {}
    for h, n in rows:
        hours[float(h) * 3600] = hours.get(float(h) * 3600, 0) + int(n)
    return sorted(hours.items())


def _x(t: float, t0: float, t1: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.5)


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%m-%d %H:%M")


def _panel_frame(y0: float, title: str, top_label: str) -> list[str]:
    right = WIDTH - RIGHT
    return [
        f'<text x="{LEFT}" y="{y0 - 6}" class="title">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{y0 + PANEL}" x2="{right}" y2="{y0 + PANEL}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y0 + PANEL}" class="axis"/>',
        f'<text x="{LEFT - 6}" y="{y0 + 4}" class="tick" text-anchor="end">'
        f"{escape(top_label)}</text>",
        f'<text x="{LEFT - 6}" y="{y0 + PANEL}" class="tick" text-anchor="end">0</text>',
    ]


def _time_ends(t0: float, t1: float, base: float) -> list[str]:
    """The first and last time under the time axis, and the end of the `<svg>`."""
    return [
        f'<text x="{LEFT}" y="{base}" class="tick">{escape(_when(t0))} UTC</text>',
        f'<text x="{WIDTH - RIGHT}" y="{base}" class="tick" text-anchor="end">'
        f"{escape(_when(t1))} UTC</text>",
        "</svg>",
    ]


def drift_volume_svg(
    drift: list[tuple[float, float, bool]],
    volume: list[tuple[float, int]],
    now: float | None = None,
) -> str:
    """Two panels: drift share per run (red dot = drift) and rows scored per hour.

    Args:
        drift: `(time, drift share, drift detected)` per run.
        volume: `(hour start, rows)` pairs.
        now: right edge of the time axis (default: now).

    Returns:
        An `<svg>` element as text.
    """
    now = time.time() if now is None else now
    times = [t for t, _, _ in drift] + [t for t, _ in volume]
    t0 = min(times) if times else now - 86400
    t1 = max([now] + [t for t, _, _ in drift] + [t + 3600 for t, _ in volume])
    height = TOP + 2 * PANEL + GAP + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" '
        'aria-label="drift share and request volume">',
        "<style>.axis{stroke:#888}.tick,.title{font:11px sans-serif;fill:#444}"
        ".title{font-weight:bold}.line{fill:none;stroke:#2463eb;stroke-width:1.5}"
        ".bar{fill:#7aa6f5}.ok{fill:#2e8b57}.drift{fill:#d03030}</style>",
    ]
    y0 = TOP
    parts += _panel_frame(y0, "Drift share per run", "1.0")
    points = []
    for t, share, detected in sorted(drift):
        x, y = _x(t, t0, t1), y0 + PANEL * (1 - max(0.0, min(1.0, share)))
        points.append(f"{x:.1f},{y:.1f}")
        cls = "drift" if detected else "ok"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" class="{cls}">'
            f"<title>{escape(_when(t))}: {share:.2f}</title></circle>"
        )
    if len(points) > 1:
        parts.append(f'<polyline points="{" ".join(points)}" class="line"/>')
    if not drift:
        parts.append(
            f'<text x="{LEFT + 10}" y="{y0 + PANEL / 2}" class="tick">no drift runs yet</text>'
        )
    y1 = TOP + PANEL + GAP
    peak = max((n for _, n in volume), default=0)
    parts += _panel_frame(y1, "Requests (rows scored) per hour", str(peak))
    bar = max(2.0, (WIDTH - LEFT - RIGHT) * 3600 / max(t1 - t0, 3600) - 1)
    for t, n in volume:
        h = PANEL * n / peak if peak else 0
        parts.append(
            f'<rect x="{_x(t, t0, t1):.1f}" y="{y1 + PANEL - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}" class="bar"><title>{escape(_when(t))}: {n}</title></rect>'
        )
    if not volume:
        parts.append(
            f'<text x="{LEFT + 10}" y="{y1 + PANEL / 2}" class="tick">no predictions logged</text>'
        )
    parts += _time_ends(t0, t1, y1 + PANEL + 16)
    return "\n".join(parts)


PERF_PANEL = 180
PALETTE = ("#2463eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#475569")


def _auc_floor(series: list) -> float:
    """The bottom of the AUC axis: a tenth below the lowest value shown, at most 0.5."""
    values = [s.validation_auc for s in series if s.validation_auc is not None]
    for s in series:
        values += [v for p in s.points for v in (p.live_auc, p.estimated_auc) if v is not None]
    low = min(values, default=0.5) - 0.02
    return max(0.0, min(0.5, int(low * 10) / 10))


def live_auc_svg(series: list, margin: float | None = None) -> str:
    """Live AUC per version per time window, with the CBPE estimate and the validation AUC.

    One colour per version: the live AUC on the labels that arrived is a solid line with a
    point per window (red rim: below validation by more than `margin`), the estimate from
    the served probabilities alone a dotted line, the validation AUC a dashed level.

    Args:
        series: `serving.web.performance.VersionSeries` per version, points oldest first.
        margin: the check's alert margin below validation AUC (None: no point is marked).

    Returns:
        An `<svg>` element as text.
    """
    points = [p for s in series for p in s.points]
    t0 = min((p.start for p in points), default=0.0)
    t1 = max((p.end for p in points), default=t0 + 3600)
    lo = _auc_floor(series)
    y0, height = TOP + 22, TOP + 22 + PERF_PANEL + 30

    def y(value: float) -> float:
        return y0 + PERF_PANEL * (1 - (min(1.0, max(lo, value)) - lo) / (1 - lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="live AUC per model version">',
        "<style>.axis{stroke:#888}.grid{stroke:#e3e6ee}.tick,.title{font:11px sans-serif;"
        "fill:#444}.title{font-weight:bold}.live{fill:none;stroke-width:1.8}"
        ".est{fill:none;stroke-width:1.2;stroke-dasharray:2 3}"
        ".val{stroke-width:1;stroke-dasharray:6 4}.low{stroke:#d03030;stroke-width:2}</style>",
        f'<text x="{LEFT}" y="{TOP}" class="title">Live AUC per model version '
        "(solid: labelled rows; dotted: estimated, CBPE; dashed: validation)</text>",
        f'<line x1="{LEFT}" y1="{y0 + PERF_PANEL}" x2="{WIDTH - RIGHT}" '
        f'y2="{y0 + PERF_PANEL}" class="axis"/>',
        f'<line x1="{LEFT}" y1="{y0}" x2="{LEFT}" y2="{y0 + PERF_PANEL}" class="axis"/>',
    ]
    for tick in (lo, (lo + 1) / 2, 1.0):
        parts.append(
            f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{y(tick):.1f}" '
            f'class="grid"/><text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" class="tick" '
            f'text-anchor="end">{tick:.2f}</text>'
        )
    legend_x = LEFT
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        label = escape(f"v{s.version}")
        parts.append(
            f'<rect x="{legend_x}" y="{TOP + 8}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{TOP + 17}" class="tick">{label}</text>'
        )
        legend_x += 24 + 7 * len(label)
        parts += _version_lines(s, colour, margin, lambda t: _x(t, t0, t1), y)
    if not any(p.live_auc is not None for p in points):
        parts.append(
            f'<text x="{LEFT + 10}" y="{y0 + PERF_PANEL / 2}" class="tick">'
            "no labelled windows yet: live AUC appears as labels arrive</text>"
        )
    parts += _time_ends(t0, t1, y0 + PERF_PANEL + 16)
    return "\n".join(parts)


def _runs(points: list) -> list[list]:
    """Consecutive windows (each starting where the one before ended), two or more long: a
    line is not drawn across a window without a value."""
    runs: list[list] = []
    for p in points:
        if runs and runs[-1][-1].end == p.start:
            runs[-1].append(p)
        else:
            runs.append([p])
    return [run for run in runs if len(run) > 1]


def _version_lines(s, colour: str, margin: float | None, x, y) -> list[str]:
    """The validation level, the estimate's line and the live AUC's line and points."""
    parts = []
    label = escape(f"v{s.version}")
    if s.validation_auc is not None:
        yv = y(s.validation_auc)
        parts.append(
            f'<line x1="{LEFT}" y1="{yv:.1f}" x2="{WIDTH - RIGHT}" y2="{yv:.1f}" class="val" '
            f'stroke="{colour}"><title>{label} validation AUC {s.validation_auc:.3f}</title>'
            "</line>"
        )
    for cls, value in (("est", "estimated_auc"), ("live", "live_auc")):
        for run in _runs([p for p in s.points if getattr(p, value) is not None]):
            coords = " ".join(
                f"{x((p.start + p.end) / 2):.1f},{y(getattr(p, value)):.1f}" for p in run
            )
            parts.append(f'<polyline points="{coords}" class="{cls}" stroke="{colour}"/>')
    live = [p for p in s.points if p.live_auc is not None]
    for p in live:
        low = (
            margin is not None
            and s.validation_auc is not None
            and p.live_auc < s.validation_auc - margin
        )
        estimate = "" if p.estimated_auc is None else f", estimated {p.estimated_auc:.3f}"
        tip = (
            f"v{s.version} {_when(p.start)}: live AUC {p.live_auc:.3f} on {p.n_labelled} of "
            f"{p.n_predictions} rows{estimate}"
        )
        cls = "low" if low else "pt"
        parts.append(
            f'<circle cx="{x((p.start + p.end) / 2):.1f}" cy="{y(p.live_auc):.1f}" r="3" '
            f'fill="{colour}" class="{cls}"><title>{escape(tip)}</title></circle>'
        )
    return parts
