"""MLflow connection defaults for the embedded, no-servers setup.

In: `HomeSettings` (`MLFLOW_TRACKING_URI`, `MLCYCLE_HOME`; see `mlcycle.core.settings`).
Out: a tracking URI every stage agrees on. With nothing configured that is MLflow's own default,
a SQLite store `mlflow.db` with artifacts under `mlruns/` in the working folder (the project
folder, gitignored), so `mlflow ui` opened there shows the same runs and models.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlcycle.core.settings import HomeSettings


def home() -> Path:
    """The folder that holds the embedded stores (defaults to the working folder)."""
    return HomeSettings.load().home_dir


def state_dir() -> Path:
    """Where mlcycle keeps its own embedded files: prediction log, reports (`<home>/.mlcycle`)."""
    return HomeSettings.load().state_dir


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the SQLite store `mlflow.db` in `home()`."""
    settings = HomeSettings.load()
    return settings.tracking_uri or f"sqlite:///{settings.home_dir / 'mlflow.db'}"


def configure_mlflow() -> str:
    """Point the MLflow client at `tracking_uri()` and silence telemetry; returns the URI.

    Call this from entry points (CLIs, app factories), never at import time.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri
