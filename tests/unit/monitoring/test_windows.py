"""Window options: durations, ISO times, conflicts."""

from __future__ import annotations

import pytest

from monitoring.windows import Window, WindowError, make_window, parse_duration, parse_time


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("90", 90)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1x", "0m", "-5m", "m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(WindowError):
        parse_duration(text)


def test_parse_time_defaults_to_utc_and_honours_offsets() -> None:
    assert parse_time("1970-01-01T01:00:00Z") == 3600
    assert parse_time("1970-01-01T01:00:00") == 3600
    assert parse_time("1970-01-01T02:00:00+01:00") == 3600
    with pytest.raises(WindowError, match="ISO-8601"):
        parse_time("yesterday")


def test_make_window_kinds() -> None:
    assert make_window(last=500) == Window(last=500)
    assert make_window(default_last=77) == Window(last=77)
    since = make_window(since="1h", now=10_000)
    assert (since.start, since.end, since.kind) == (6_400, 10_000, "time")
    span = make_window(from_="1970-01-01T00:00:10Z", to="1970-01-01T00:01:00Z")
    assert (span.start, span.end) == (10, 60)
    assert span.describe() == "1970-01-01T00:00:10Z..1970-01-01T00:01:00Z"
    assert make_window(last=5).as_dict() == {
        "kind": "last",
        "last": 5,
        "description": "last 5 rows",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"last": 10, "since": "1h"},
        {"since": "1h", "from_": "2026-01-01"},
        {"last": 0},
        {"from_": "2026-01-02", "to": "2026-01-01"},
    ],
)
def test_make_window_refuses_conflicts(kwargs: dict) -> None:
    with pytest.raises(WindowError):
        make_window(**kwargs)
