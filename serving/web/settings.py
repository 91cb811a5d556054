"""Settings of the web pages, read from environment variables by `get_settings()`.

In: `MLCYCLE_MLFLOW_UI_URL` (base URL of the MLflow UI the Models page links to; default: the
tracking server when `MLFLOW_TRACKING_URI` is http(s), else `http://127.0.0.1:5000`, where
`mlflow ui` listens when started in the project folder) and `MLCYCLE_WEB_LIVE_INTERVAL`
(seconds between live-metrics snapshots, default 10). Everything else (model name, reports
folder, prediction log, admin token) comes from `serving.settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class WebSettings:
    """What only the web pages need."""

    mlflow_ui_url: str = "http://127.0.0.1:5000"
    live_interval: float = 10.0


def get_settings() -> WebSettings:
    """Build `WebSettings` from the environment."""
    ui = os.environ.get("MLCYCLE_MLFLOW_UI_URL", "").strip()
    if not ui:
        tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
        ui = tracking if tracking.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    interval = float(os.environ.get("MLCYCLE_WEB_LIVE_INTERVAL") or 10.0)
    return WebSettings(mlflow_ui_url=ui.rstrip("/"), live_interval=max(interval, 1.0))
