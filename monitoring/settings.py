"""Settings of the monitoring stage, read from environment variables by `get_settings()`.

In: the shared `MLCYCLE_PREDICTION_LOG_URL`, `MLCYCLE_REPORTS_DIR`, `MLCYCLE_MODEL_NAME`
(`mlcycle.core.settings`) and the `MLCYCLE_DRIFT_*` knobs below (docs/settings.md, generated
from this module); `mlcycle drift`'s options as keyword overrides.
Out: one frozen `Settings` object. Nothing is read at import.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_settings import SettingsConfigDict

from mlcycle.core.settings import (
    BOOL_ACCEPTS,
    Accepts,
    Flag,
    SettingsError,
    SharedSettings,
    parse_bool,
)

__all__ = ["Settings", "SettingsError", "get_settings"]


def _blank_is_none(value: object) -> object:
    return (value.strip() or None) if isinstance(value, str) else value


OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]


def _worker_mode(value: object) -> object:
    """`auto`, or a boolean word: true ones mean `on`, false ones `off`."""
    if not isinstance(value, str) or value.strip().lower() == "auto":
        return value.strip().lower() if isinstance(value, str) else value
    return "on" if parse_bool(value) else "off"


class Settings(SharedSettings):
    """The monitoring stage: `mlcycle drift`."""

    model_config = SettingsConfigDict(env_prefix="MLCYCLE_DRIFT_")

    min_rows: int = Field(200, ge=1)
    """Fewest rows in a window that a drift check will judge (an explicit `--last N` below it
    asks for N)."""
    drift_share: float = Field(0.25, ge=0, le=1, validation_alias="MLCYCLE_DRIFT_SHARE")
    """Dataset-level verdict: drift when at least this share of input columns drift (also
    `--drift-share`)."""
    num_method: OptionalText = None
    """Stat test for numeric columns (e.g. `ks`, `psi`, `jensenshannon`); unset: Evidently's
    choice."""
    cat_method: OptionalText = None
    """Stat test for categorical columns; unset: Evidently's choice."""
    num_threshold: float | None = Field(None, ge=0)
    """Per-column threshold for numeric columns; unset: the test's default."""
    cat_threshold: float | None = Field(None, ge=0)
    """Per-column threshold for categorical columns; unset: the test's default."""
    sample_rows: int = Field(20_000, ge=0)
    """At most this many rows of each side (window and reference) go into the report; bigger
    sides are sampled uniformly at random (`0`: no sampling)."""
    default_last: int = Field(10_000, ge=1)
    """Window size when no window option is given (the last N rows)."""
    seed: int = Field(0, ge=0)
    """Random seed of the sampling (reports are reproducible)."""
    experiment: str = Field("monitoring", validation_alias="MLCYCLE_MONITORING_EXPERIMENT")
    """MLflow experiment of the drift runs."""
    log_to_mlflow: Flag = Field(True, validation_alias="MLCYCLE_DRIFT_MLFLOW")
    """Log each check as an MLflow run."""
    index_max: int = Field(500, ge=1)
    """How many runs `index.json` keeps (newest first)."""
    report_worker: Annotated[
        Literal["auto", "on", "off"],
        BeforeValidator(_worker_mode),
        Accepts(f"auto, or {BOOL_ACCEPTS} (true: on, false: off)"),
    ] = Field("auto", validation_alias="MLCYCLE_DRIFT_WORKER")
    """Where the Evidently report runs: `auto` in a child process started at the beginning of
    a check (so importing Evidently overlaps the registry and log reads) unless Evidently is
    already imported in this one; `on` always in a child process; `off` always in this
    process."""


def get_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment.

    Args:
        **overrides: field values that win over the environment (`mlcycle drift`'s options).

    Returns:
        The monitoring settings.

    Raises:
        SettingsError: a variable holds a value that cannot work (one line per variable,
            naming it and what it accepts).
    """
    return Settings.load(**overrides)
