"""Server-rendered SVG for the Monitoring page: drift share per run and request volume per hour.

In: `DriftRun`s (from `serving.web.reports`) and hourly row counts of the prediction log
(Contract 2, read with SQLAlchemy: `hourly_volume(url, since)`; `predictions` rows plus the
`n_rows` of `prediction_batches`). Out: one `<svg>` string with two stacked panels sharing a
time axis. Every text in it is escaped; no script, no external asset.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from mlcycle.core.prediction_log import BATCHES, ROWS

log = logging.getLogger(__name__)

WIDTH, PANEL, GAP, LEFT, RIGHT, TOP = 760, 120, 36, 56, 16, 20
_engines: dict[str, object] = {}


def _engine(url: str):
    from sqlalchemy import create_engine

    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = create_engine(url, pool_pre_ping=True)
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
    base = y1 + PANEL + 16
    parts.append(f'<text x="{LEFT}" y="{base}" class="tick">{escape(_when(t0))} UTC</text>')
    parts.append(
        f'<text x="{WIDTH - RIGHT}" y="{base}" class="tick" text-anchor="end">'
        f"{escape(_when(t1))} UTC</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)
