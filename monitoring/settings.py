"""Settings of the monitoring stage, read from environment variables by `get_settings()`.

In: `MLCYCLE_PREDICTION_LOG_URL`, `MLCYCLE_REPORTS_DIR`, `MLCYCLE_MODEL_NAME` and the
`MLCYCLE_DRIFT_*` knobs below. Out: one frozen `Settings` object. Nothing is read at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlcycle.core.config import state_dir


@dataclass(frozen=True)
class Settings:
    """Monitoring configuration.

    Attributes:
        prediction_log_url: SQLAlchemy URL of the prediction log.
        reports_dir: folder for HTML/JSON reports, `index.json` and `drift.prom`.
        model_name: registered model name.
        min_rows: fewest rows in a window that a drift check will judge.
        drift_share: dataset-level verdict: drift when at least this share of input columns drift.
        num_method: stat test for numeric columns (None: Evidently's choice).
        cat_method: stat test for categorical columns (None: Evidently's choice).
        num_threshold: per-column threshold for numeric columns (None: the test's default).
        cat_threshold: per-column threshold for categorical columns (None: the test's default).
        sample_rows: at most this many rows of each side (window and reference) go into the
            report; bigger sides are sampled uniformly at random (0 disables sampling).
        default_last: window size when no window option is given (the last N rows).
        seed: random seed of the sampling (reports are reproducible).
        experiment: MLflow experiment of the drift runs.
        log_to_mlflow: log each check as an MLflow run.
        index_max: how many runs `index.json` keeps (newest first).
        report_worker: where the Evidently report runs: `auto` in a child process started at
            the beginning of a check (so importing Evidently overlaps the registry and log
            reads) unless Evidently is already imported in this one; `on` always in a child
            process; `off` always in this process.
    """

    prediction_log_url: str
    reports_dir: Path
    model_name: str = "credit-risk"
    min_rows: int = 200
    drift_share: float = 0.25
    num_method: str | None = None
    cat_method: str | None = None
    num_threshold: float | None = None
    cat_threshold: float | None = None
    sample_rows: int = 20_000
    default_last: int = 10_000
    seed: int = 0
    experiment: str = "monitoring"
    log_to_mlflow: bool = True
    index_max: int = 500
    report_worker: str = "auto"


def _opt_float(name: str) -> float | None:
    value = os.environ.get(name, "").strip()
    return float(value) if value else None


def _opt_str(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in {"0", "false", "no", "off"}


def _worker_mode() -> str:
    value = os.environ.get("MLCYCLE_DRIFT_WORKER", "").strip().lower()
    if value in {"", "auto"}:
        return "auto"
    return "on" if _flag("MLCYCLE_DRIFT_WORKER", True) else "off"


def get_settings() -> Settings:
    """Build the settings from the environment (defaults: docs/architecture.md).

    Returns:
        The monitoring settings.

    Raises:
        ValueError: if a numeric variable does not parse.
    """
    state = state_dir()
    return Settings(
        prediction_log_url=os.environ.get("MLCYCLE_PREDICTION_LOG_URL")
        or f"sqlite:///{state / 'predictions.db'}",
        reports_dir=Path(os.environ.get("MLCYCLE_REPORTS_DIR") or state / "reports"),
        model_name=os.environ.get("MLCYCLE_MODEL_NAME") or "credit-risk",
        min_rows=int(os.environ.get("MLCYCLE_DRIFT_MIN_ROWS") or 200),
        drift_share=float(os.environ.get("MLCYCLE_DRIFT_SHARE") or 0.25),
        num_method=_opt_str("MLCYCLE_DRIFT_NUM_METHOD"),
        cat_method=_opt_str("MLCYCLE_DRIFT_CAT_METHOD"),
        num_threshold=_opt_float("MLCYCLE_DRIFT_NUM_THRESHOLD"),
        cat_threshold=_opt_float("MLCYCLE_DRIFT_CAT_THRESHOLD"),
        sample_rows=int(os.environ.get("MLCYCLE_DRIFT_SAMPLE_ROWS") or 20_000),
        default_last=int(os.environ.get("MLCYCLE_DRIFT_DEFAULT_LAST") or 10_000),
        seed=int(os.environ.get("MLCYCLE_DRIFT_SEED") or 0),
        experiment=os.environ.get("MLCYCLE_MONITORING_EXPERIMENT") or "monitoring",
        log_to_mlflow=_flag("MLCYCLE_DRIFT_MLFLOW", True),
        index_max=int(os.environ.get("MLCYCLE_DRIFT_INDEX_MAX") or 500),
        report_worker=_worker_mode(),
    )
