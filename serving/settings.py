"""Serving settings, read from `MLCYCLE_*` environment variables by `get_settings()`.

In: the environment (every variable with its default and what it accepts: docs/settings.md,
generated from this module) and `mlcycle serve`'s options, passed as keyword overrides.
Out: one frozen `Settings` object used by the app factory, the launcher and the watcher.
A worker process of the launcher gets the launcher's `Settings` (its options included), which
the launcher wrote to its run folder (`launched()`), instead of reading the environment again.
Nothing is read at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AliasChoices, Field, model_validator

from mlcycle.core.settings import (
    LOWER,
    UPPER,
    CommaList,
    Flag,
    MlcycleSettings,
    SettingsError,
    SharedSettings,
    weak_secret,
)
from serving import rundir

__all__ = ["Launched", "Settings", "SettingsError", "drain_s", "get_settings", "launched"]

# Time the launcher keeps after granian's own deadline for stuck workers, to kill them itself.
SHUTDOWN_SLACK_S = 2.0
# Requests in flight when the server stops accepting get at least this long to finish.
MIN_DRAIN_S = 1.0
MiB = 1024 * 1024


class Settings(SharedSettings):
    """The serving stage: `mlcycle serve`, its workers and their web pages."""

    model_alias: Annotated[str, LOWER] = Field(
        "production", validation_alias=AliasChoices("MLCYCLE_MODEL_ALIAS", "MLCYCLE_MODEL_STAGE")
    )
    """Alias to follow (`production` uses the stage/alias rule); `MLCYCLE_MODEL_STAGE` is read
    when `MLCYCLE_MODEL_ALIAS` is unset."""
    model_uri: str | None = None
    """Serve this fixed model URI instead of following the registry."""
    admin_token: str | None = None
    """Token of the admin routes (`X-Admin-Token`); unset: they refuse. At least 24
    characters, not a documented placeholder (else the server does not start)."""
    api_keys: CommaList = ()
    """Keys of the prediction routes (`X-API-Key` or `Authorization: Bearer`); empty: open.
    Each at least 24 characters, not a documented placeholder."""
    ui_auth: Flag = False
    """Require the admin token for the web pages (`/`, `/ui/*`) and `/metrics` too (a login
    form sets an HttpOnly, SameSite=Strict cookie; scrapers send the token as a bearer);
    without `MLCYCLE_ADMIN_TOKEN` they then refuse."""
    tls_cert: str | None = None
    """PEM certificate (chain) to serve HTTPS with (also `--tls-cert`; needs `MLCYCLE_TLS_KEY`;
    granian only)."""
    tls_key: str | None = None
    """PEM private key of `MLCYCLE_TLS_CERT` (also `--tls-key`)."""
    poll_interval: float = Field(2.0, gt=0)
    """Seconds between registry checks."""
    max_body_bytes: int = Field(16 * MiB, ge=1)
    """Larger bodies get 413 before they are read."""
    large_body_bytes: int = Field(MiB, ge=0)
    """Bodies this large are scored `MLCYCLE_LARGE_BODY_SLOTS` at a time per server (memory
    and GIL bound)."""
    threshold: float = Field(0.5, ge=0, le=1)
    """`/predict` decision threshold."""
    batching: Flag = False
    """Micro-batching of concurrent requests (off by default: measured in docs/serving.md)."""
    max_batch: int = Field(256, ge=1)
    """Most rows in one micro-batch."""
    max_wait_us: int = Field(500, ge=0)
    """Longest a micro-batch waits for more requests, in microseconds."""
    cache: Flag = True
    """Prediction cache."""
    cache_size: int = Field(10_000, ge=0)
    """Entries of the prediction cache."""
    cache_max_rows: int = Field(256, ge=0)
    """Larger requests skip the cache."""
    log_predictions: Flag = True
    """Log scored rows to the prediction log."""
    log_batch_rows: int = Field(256, ge=0)
    """Requests of this many rows are logged as one Arrow batch (`0`: never)."""
    log_group_wait_us: int = Field(200, ge=0)
    """Longest a commit waits for requests being scored beside it, in microseconds (`0`:
    never)."""
    log_wait_s: float = Field(5.0, ge=0, validation_alias="MLCYCLE_PREDICTION_LOG_WAIT_S")
    """Longest a request waits for a commit to take its rows (then 503, not stored)."""
    log_timeout_s: float = Field(2.0, ge=0, validation_alias="MLCYCLE_PREDICTION_LOG_TIMEOUT_S")
    """The store's limits: SQLite busy timeout; PostgreSQL connect, statement, lock and TCP
    timeouts."""
    liveness_stall_s: float = Field(30.0, ge=0)
    """`/v2/health/live` is 503 once requests waited this long with no commit finishing."""
    max_in_flight: int = Field(24, ge=1)
    """Prediction requests inside one worker at once; more get 503 + `Retry-After` at once
    (keep it below `MLCYCLE_THREADS`)."""
    max_rows: int = Field(100_000, ge=1)
    """Requests with more rows get 413 naming the limit."""
    large_body_queue: int = Field(0, ge=0)
    """Large bodies per worker that may wait for their turn; the rest get 503 at once."""
    large_body_slots: int = Field(1, ge=1)
    """Large bodies scored at once by the whole server (all workers)."""
    large_body_wait_s: float = Field(2.0, ge=0)
    """Longest a queued large body waits for its turn."""
    drain_bytes: int = Field(8 * MiB, ge=0)
    """A refused request's body is read (dropped) up to this much so the client reads the
    answer; past it the connection is closed."""
    log_sync: Annotated[Literal["OFF", "NORMAL", "FULL", "EXTRA"], UPPER] = Field(
        "NORMAL", validation_alias="MLCYCLE_PREDICTION_LOG_SYNC"
    )
    """SQLite `synchronous` of the prediction log (`NORMAL` survives process crashes, `FULL`
    also power loss)."""
    log_checkpoint_s: float = Field(
        0.2, ge=0, validation_alias="MLCYCLE_PREDICTION_LOG_CHECKPOINT_S"
    )
    """SQLite: seconds between background WAL checkpoints (`0`: SQLite checkpoints inside
    commits)."""
    server: Annotated[Literal["granian", "gunicorn"], LOWER] = "granian"
    """The WSGI server (also `--server`)."""
    workers: int = Field(2, ge=1)
    """Worker processes (also `--workers`)."""
    threads: int = Field(32, ge=1)
    """Request threads per worker (also `--threads`)."""
    grpc_port: int | None = Field(None, ge=1, le=65535)
    """Port of the Open Inference Protocol v2 gRPC service beside HTTP (also `--grpc-port`;
    every worker serves it, docs/serving.md); unset: no gRPC."""
    grpc_host: str | None = None
    """Address the gRPC service binds; unset: the HTTP address (`--host`)."""
    start_watcher: Flag = True
    """Follow the registry in a watcher thread (off: serve only a model handed to the app)."""
    fast_path: Flag = True
    """WSGI fast path for the prediction routes."""
    out_of_range: Annotated[Literal["flag", "reject"], LOWER] = "flag"
    """`flag`: score and flag rows outside the training reference; `reject`: 422 (unseen
    categories are refused either way)."""
    out_of_range_margin: float = Field(0.25, ge=0)
    """Share of each numeric column's training span (`max - min`) allowed beyond it."""
    load_retry_min_s: float = Field(1.0, ge=0.01)
    """First wait before a version that failed to load is tried again; doubles after each
    failure."""
    load_retry_max_s: float = Field(60.0, ge=0.01)
    """Longest wait between tries of a version that keeps failing (at least
    `MLCYCLE_LOAD_RETRY_MIN_S`)."""
    shadow: Flag = False
    """Shadow scoring: a candidate version also scores a sample of the live rows in a
    background thread, off the response path, and its predictions go to the log's
    `shadow_predictions` table (docs/serving.md)."""
    shadow_alias: Annotated[str, LOWER] = "challenger"
    """The alias of the shadow candidate; without it, the newest version in stage Staging."""
    shadow_sample: float = Field(1.0, ge=0, le=1)
    """Share of the requests scored in shadow (`0`..`1`), bounding its cost."""
    shutdown_delay_s: float = Field(0.0, ge=0)
    """After SIGTERM, seconds to keep serving with readiness 503 (Kubernetes: a few, so
    endpoints drop the pod first)."""
    shutdown_grace_s: float = Field(20.0, ge=0)
    """After SIGTERM, seconds until the server and its workers are killed; at least the delay
    + 3 (2 s for the launcher, at least 1 s for requests in flight)."""

    # Not a setting: rows a prediction-log commit takes at most.
    log_flush_rows: ClassVar[int] = 2048

    @model_validator(mode="after")
    def _check(self) -> Settings:
        """Refuse combinations of values that cannot work together, and weak secrets."""
        self._check_secrets()
        if self.load_retry_max_s < self.load_retry_min_s:
            raise ValueError(
                f"MLCYCLE_LOAD_RETRY_MAX_S ({self.load_retry_max_s:g}) must be at least "
                f"MLCYCLE_LOAD_RETRY_MIN_S ({self.load_retry_min_s:g})"
            )
        if drain_s(self.shutdown_delay_s, self.shutdown_grace_s) < MIN_DRAIN_S:
            least = self.shutdown_delay_s + SHUTDOWN_SLACK_S + MIN_DRAIN_S
            raise ValueError(
                f"MLCYCLE_SHUTDOWN_GRACE_S ({self.shutdown_grace_s:g}) must be at least "
                f"{least:g}: MLCYCLE_SHUTDOWN_DELAY_S ({self.shutdown_delay_s:g}) + "
                f"{SHUTDOWN_SLACK_S:g} s to stop + {MIN_DRAIN_S:g} s for requests in flight"
            )
        return self

    def _check_secrets(self) -> None:
        problems = [weak_secret("MLCYCLE_ADMIN_TOKEN", self.admin_token)]
        problems += [weak_secret("MLCYCLE_API_KEYS", key) for key in self.api_keys]
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("MLCYCLE_TLS_CERT and MLCYCLE_TLS_KEY: set both or neither")
        elif self.tls_cert and self.server != "granian":
            problems.append("MLCYCLE_TLS_CERT: TLS is served by granian (MLCYCLE_SERVER=granian)")
        for variable, path in (
            ("MLCYCLE_TLS_CERT", self.tls_cert),
            ("MLCYCLE_TLS_KEY", self.tls_key),
        ):
            if path and not Path(path).is_file():
                problems.append(f"{variable}: no such file: {path}")
        found = [p for p in problems if p]
        if found:
            raise ValueError("\n".join(found))


class LauncherSettings(MlcycleSettings):
    """Set by `mlcycle serve` in its workers' environment, not by users."""

    run_dir: str | None = None
    """The launcher's run folder: its signals to the workers and the workers' settings."""


def drain_s(delay_s: float, grace_s: float) -> float:
    """How long requests in flight may take once the server stops accepting: what is left of
    the grace period after the delay and the launcher's slack."""
    return grace_s - delay_s - SHUTDOWN_SLACK_S


@dataclass(frozen=True)
class Launched:
    """What a worker process of the launcher knows from it (empty outside the launcher)."""

    run_dir: str | None = None
    settings: Settings | None = None

    @property
    def workers(self) -> int:
        """Worker processes serving together (readiness waits for all of them)."""
        return self.settings.workers if self.settings is not None else 1


def launched() -> Launched:
    """The launcher's run folder and settings when this process is one of its workers."""
    run_dir = LauncherSettings.load().run_dir
    if not run_dir:
        return Launched()
    saved = rundir.read_settings(run_dir)
    return Launched(run_dir, Settings.model_validate_json(saved) if saved else None)


def get_settings() -> Settings:
    """Build `Settings` from the environment, or take the launcher's in one of its workers.

    (`mlcycle serve` itself builds them with `Settings.load(**options)`: its options win.)

    Returns:
        The settings; unset variables take the documented defaults.

    Raises:
        SettingsError: a variable holds a value that cannot work (one line per variable,
            naming it and what it accepts), e.g. `MLCYCLE_OUT_OF_RANGE` other than flag|reject.
    """
    saved = launched().settings
    return saved if saved is not None else Settings.load()
