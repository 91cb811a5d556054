"""Which prediction-log rows a drift check looks at.

In: the CLI's window options (`--since 1h`, `--from/--to` ISO-8601, `--last N`). Out: a `Window`
that the log reader turns into SQL, and a short human description for reports and tags.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from mlcycle.core import durations


class WindowError(ValueError):
    """The window options cannot be understood (the message says why)."""


@dataclass(frozen=True)
class Window:
    """A window of the prediction log: the last N rows, or rows with `start <= ts < end`.

    Attributes:
        last: number of most recent rows (None for a time window).
        start: Unix time of the window start (inclusive), for time windows.
        end: Unix time of the window end (exclusive), for time windows.
    """

    last: int | None = None
    start: float | None = None
    end: float | None = None

    @property
    def kind(self) -> str:
        """`last` for a count window, `time` for a time window."""
        return "last" if self.last is not None else "time"

    def describe(self) -> str:
        """A short description, e.g. `last 2000 rows` or `<from>..<to>` in ISO-8601 UTC."""
        if self.last is not None:
            return f"last {self.last} rows"
        return f"{_iso(self.start)}..{_iso(self.end)}"

    def as_dict(self) -> dict:
        """The window as JSON-ready values."""
        if self.last is not None:
            return {"kind": "last", "last": self.last, "description": self.describe()}
        return {
            "kind": "time",
            "from": _iso(self.start),
            "to": _iso(self.end),
            "description": self.describe(),
        }


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_duration(text: str) -> float:
    """Seconds in a duration (`mlcycle.core.durations.parse_duration`), or a `WindowError`."""
    try:
        return durations.parse_duration(text)
    except durations.DurationError as exc:
        raise WindowError(str(exc)) from None


def parse_time(text: str) -> float:
    """Unix time of an ISO-8601 date or date-time (no offset means UTC).

    Args:
        text: e.g. `2026-11-30`, `2026-11-30T03:00`, `2026-11-30T03:00:00Z`, `...+02:00`.

    Returns:
        Seconds since the epoch.

    Raises:
        WindowError: if the text is not ISO-8601.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise WindowError(
            f"cannot read time {text!r}: use ISO-8601, e.g. 2026-11-30T03:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def make_window(
    since: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    last: int | None = None,
    default_last: int = 10_000,
    now: float | None = None,
) -> Window:
    """Turn the CLI's window options into a `Window` (one kind at a time).

    Args:
        since: a duration back from now (`1h`).
        from_: ISO-8601 window start.
        to: ISO-8601 window end (default: now).
        last: the last N rows.
        default_last: N when no option is given.
        now: the current Unix time (default: `time.time()`).

    Returns:
        The window.

    Raises:
        WindowError: for conflicting or invalid options.
    """
    now = time.time() if now is None else now
    if last is not None and (since or from_ or to):
        raise WindowError("--last counts rows: do not combine it with --since/--from/--to")
    if since and from_:
        raise WindowError("use either --since or --from, not both")
    if last is not None:
        if last < 1:
            raise WindowError(f"--last must be at least 1, got {last}")
        return Window(last=last)
    if since:
        end = parse_time(to) if to else now
        return Window(start=end - parse_duration(since), end=end)
    if from_ or to:
        start = parse_time(from_) if from_ else 0.0
        end = parse_time(to) if to else now
        if end <= start:
            raise WindowError(
                f"empty window: --to ({_iso(end)}) is not after --from ({_iso(start)})"
            )
        return Window(start=start, end=end)
    return Window(last=default_last)
