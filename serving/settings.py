"""Serving settings, read from environment variables by `get_settings()` (never at import).

In: `MLCYCLE_*` environment variables (see `docs/serving.md` for the full table).
Out: one frozen `Settings` object used by the app factory, the launcher and the watcher.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from mlcycle.core import config

OUT_OF_RANGE_MODES = ("flag", "reject")


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _bool(name: str, default: bool) -> bool:
    return _env(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _margin(name: str, default: str) -> float:
    text = _env(name, default)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a number >= 0 (share of the training span); got {text!r}")
    return value


def _keys(name: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in os.environ.get(name, "").split(",") if k.strip())


class SettingsError(ValueError):
    """A `MLCYCLE_*` variable holds a value serving cannot use; the message names it."""


def _seconds(name: str, default: float, minimum: float = 0.0) -> float:
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g} seconds, not {raw!r}")
    return value


# Time the launcher keeps after granian's own deadline for stuck workers, to kill them itself.
SHUTDOWN_SLACK_S = 2.0
# Requests in flight when the server stops accepting get at least this long to finish.
MIN_DRAIN_S = 1.0


@dataclass(frozen=True)
class Settings:
    """Everything the serving stage can be configured with."""

    model_name: str = "credit-risk"
    model_alias: str = "production"
    model_uri: str | None = None
    prediction_log_url: str = ""
    reports_dir: str = ""
    admin_token: str | None = None
    api_keys: tuple[str, ...] = field(default_factory=tuple)
    poll_interval: float = 2.0
    max_body_bytes: int = 16 * 1024 * 1024
    large_body_bytes: int = 1024 * 1024
    threshold: float = 0.5
    batching: bool = False
    max_batch: int = 256
    max_wait_us: int = 500
    cache: bool = True
    cache_size: int = 10_000
    cache_max_rows: int = 256
    log_predictions: bool = True
    log_flush_rows: int = 2048
    log_batch_rows: int = 256
    log_group_wait_us: int = 200
    log_wait_s: float = 5.0
    log_timeout_s: float = 2.0
    liveness_stall_s: float = 30.0
    max_in_flight: int = 24
    max_rows: int = 100_000
    large_body_queue: int = 0
    large_body_slots: int = 1
    large_body_wait_s: float = 2.0
    drain_bytes: int = 8 * 1024 * 1024
    log_sync: str = "NORMAL"
    log_checkpoint_s: float = 0.2
    server: str = "granian"
    workers: int = 2
    threads: int = 32
    start_watcher: bool = True
    fast_path: bool = True
    out_of_range: str = "flag"
    out_of_range_margin: float = 0.25
    load_retry_min_s: float = 1.0
    load_retry_max_s: float = 60.0
    shutdown_delay_s: float = 0.0
    shutdown_grace_s: float = 20.0


def drain_s(delay_s: float, grace_s: float) -> float:
    """How long requests in flight may take once the server stops accepting: what is left of
    the grace period after the delay and the launcher's slack."""
    return grace_s - delay_s - SHUTDOWN_SLACK_S


def get_settings() -> Settings:
    """Build `Settings` from the environment.

    Returns:
        The settings; unset variables take the documented defaults.

    Raises:
        SettingsError: a variable holds a value that cannot work (the message names it),
            e.g. `MLCYCLE_OUT_OF_RANGE` other than flag|reject.
    """
    state = config.state_dir()
    settings = Settings(
        model_name=_env("MLCYCLE_MODEL_NAME", "credit-risk"),
        model_alias=_env("MLCYCLE_MODEL_ALIAS", _env("MLCYCLE_MODEL_STAGE", "production")).lower(),
        model_uri=os.environ.get("MLCYCLE_MODEL_URI") or None,
        prediction_log_url=_env(
            "MLCYCLE_PREDICTION_LOG_URL", f"sqlite:///{state / 'predictions.db'}"
        ),
        reports_dir=_env("MLCYCLE_REPORTS_DIR", str(state / "reports")),
        admin_token=os.environ.get("MLCYCLE_ADMIN_TOKEN") or None,
        api_keys=_keys("MLCYCLE_API_KEYS"),
        poll_interval=float(_env("MLCYCLE_POLL_INTERVAL", "2")),
        max_body_bytes=int(_env("MLCYCLE_MAX_BODY_BYTES", str(16 * 1024 * 1024))),
        large_body_bytes=int(_env("MLCYCLE_LARGE_BODY_BYTES", str(1024 * 1024))),
        threshold=float(_env("MLCYCLE_THRESHOLD", "0.5")),
        batching=_bool("MLCYCLE_BATCHING", False),
        max_batch=int(_env("MLCYCLE_MAX_BATCH", "256")),
        max_wait_us=int(_env("MLCYCLE_MAX_WAIT_US", "500")),
        cache=_bool("MLCYCLE_CACHE", True),
        cache_size=int(_env("MLCYCLE_CACHE_SIZE", "10000")),
        cache_max_rows=int(_env("MLCYCLE_CACHE_MAX_ROWS", "256")),
        log_predictions=_bool("MLCYCLE_LOG_PREDICTIONS", True),
        log_batch_rows=int(_env("MLCYCLE_LOG_BATCH_ROWS", "256")),
        log_group_wait_us=int(_env("MLCYCLE_LOG_GROUP_WAIT_US", "200")),
        log_wait_s=float(_env("MLCYCLE_PREDICTION_LOG_WAIT_S", "5")),
        log_timeout_s=float(_env("MLCYCLE_PREDICTION_LOG_TIMEOUT_S", "2")),
        liveness_stall_s=float(_env("MLCYCLE_LIVENESS_STALL_S", "30")),
        max_in_flight=int(_env("MLCYCLE_MAX_IN_FLIGHT", "24")),
        max_rows=int(_env("MLCYCLE_MAX_ROWS", "100000")),
        large_body_queue=int(_env("MLCYCLE_LARGE_BODY_QUEUE", "0")),
        large_body_slots=int(_env("MLCYCLE_LARGE_BODY_SLOTS", "1")),
        large_body_wait_s=float(_env("MLCYCLE_LARGE_BODY_WAIT_S", "2")),
        drain_bytes=int(_env("MLCYCLE_DRAIN_BYTES", str(8 * 1024 * 1024))),
        log_sync=_env("MLCYCLE_PREDICTION_LOG_SYNC", "NORMAL"),
        log_checkpoint_s=float(_env("MLCYCLE_PREDICTION_LOG_CHECKPOINT_S", "0.2")),
        server=_env("MLCYCLE_SERVER", "granian"),
        workers=int(_env("MLCYCLE_WORKERS", "2")),
        threads=int(_env("MLCYCLE_THREADS", "32")),
        start_watcher=_bool("MLCYCLE_START_WATCHER", True),
        fast_path=_bool("MLCYCLE_FAST_PATH", True),
        out_of_range=_choice("MLCYCLE_OUT_OF_RANGE", "flag", OUT_OF_RANGE_MODES),
        out_of_range_margin=_margin("MLCYCLE_OUT_OF_RANGE_MARGIN", "0.25"),
        load_retry_min_s=_seconds("MLCYCLE_LOAD_RETRY_MIN_S", 1.0, minimum=0.01),
        load_retry_max_s=_seconds("MLCYCLE_LOAD_RETRY_MAX_S", 60.0, minimum=0.01),
        shutdown_delay_s=_seconds("MLCYCLE_SHUTDOWN_DELAY_S", 0.0),
        shutdown_grace_s=_seconds("MLCYCLE_SHUTDOWN_GRACE_S", 20.0),
    )
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    """Refuse combinations of values that cannot work together."""
    if settings.load_retry_max_s < settings.load_retry_min_s:
        raise SettingsError(
            f"MLCYCLE_LOAD_RETRY_MAX_S ({settings.load_retry_max_s:g}) must be at least "
            f"MLCYCLE_LOAD_RETRY_MIN_S ({settings.load_retry_min_s:g})"
        )
    if drain_s(settings.shutdown_delay_s, settings.shutdown_grace_s) < MIN_DRAIN_S:
        least = settings.shutdown_delay_s + SHUTDOWN_SLACK_S + MIN_DRAIN_S
        raise SettingsError(
            f"MLCYCLE_SHUTDOWN_GRACE_S ({settings.shutdown_grace_s:g}) must be at least "
            f"{least:g}: MLCYCLE_SHUTDOWN_DELAY_S ({settings.shutdown_delay_s:g}) + "
            f"{SHUTDOWN_SLACK_S:g} s to stop + {MIN_DRAIN_S:g} s for requests in flight"
        )
