"""Durations as people write them: `90s`, `15m`, `1h`, `1h30m`, `2d`, `1w`.

In: the text of a CLI option (`--since 7d`, `--every 15m`). Out: seconds, or a
`DurationError` saying what is accepted. Shared by the monitoring, training and lifecycle CLIs.
"""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


class DurationError(ValueError):
    """Not a positive duration (the message says what is accepted)."""


def parse_duration(text: str) -> float:
    """Seconds in a duration like `90s`, `15m`, `1h`, `1h30m`, `2d`, `1w` (bare number: seconds).

    Args:
        text: the duration.

    Returns:
        The duration in seconds (> 0).

    Raises:
        DurationError: if the text is not a positive duration.
    """
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    elif value and _PART.sub("", value) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value))
    else:
        raise DurationError(f"cannot read duration {text!r}: use e.g. 30s, 15m, 1h, 1h30m, 2d")
    if seconds <= 0:
        raise DurationError(f"duration {text!r} must be positive")
    return seconds
