"""Settings of the web pages, read from environment variables by `get_settings()`.

In: `MLCYCLE_MLFLOW_UI_URL` and `MLCYCLE_WEB_LIVE_INTERVAL` (docs/settings.md). Everything else
(model name, reports folder, prediction log, admin token) comes from `serving.settings`.
Out: a frozen `WebSettings`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from mlcycle.core.settings import Accepts, HomeSettings, MlcycleSettings, Shown

MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens when started in the project


class WebSettings(MlcycleSettings):
    """The serving stage's web pages."""

    mlflow_ui_url: Annotated[
        str | None,
        Accepts("a URL"),
        Shown(f"`MLFLOW_TRACKING_URI` when it is http(s), else `{MLFLOW_UI}`"),
    ] = Field(None, validate_default=True)
    """Base URL of the MLflow UI the Models page links to."""
    live_interval: float = Field(10.0, gt=0, validation_alias="MLCYCLE_WEB_LIVE_INTERVAL")
    """Seconds between live-metrics snapshots (less than 1 counts as 1)."""

    @field_validator("mlflow_ui_url")
    @classmethod
    def _ui(cls, url: str | None) -> str:
        url = (url or "").strip()
        if not url:
            tracking = HomeSettings.load().tracking_uri or ""
            url = tracking if tracking.startswith(("http://", "https://")) else MLFLOW_UI
        return url.rstrip("/")

    @field_validator("live_interval")
    @classmethod
    def _at_least_a_second(cls, seconds: float) -> float:
        return max(seconds, 1.0)


def get_settings() -> WebSettings:
    """Build `WebSettings` from the environment.

    Raises:
        SettingsError: a variable holds a value the pages cannot use (the message names it).
    """
    return WebSettings.load()
