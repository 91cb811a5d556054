"""Fixtures for serving unit tests: settings and the app around the stub model (`stub.py`)."""

from __future__ import annotations

import pytest

from serving.settings import Settings
from tests.unit.serving.stub import make_service


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings with the prediction log in a temp SQLite file and no registry watcher."""
    return Settings(
        prediction_log_url=f"sqlite:///{tmp_path / 'predictions.db'}",
        reports_dir=str(tmp_path / "reports"),
        admin_token="admin-secret-0123456789abcdef",
        start_watcher=False,
    )


@pytest.fixture(params=[True, False], ids=["fast-path", "flask"])
def client(request, settings):
    """A test client of the app serving the stub model, through both request paths."""
    from serving.app import create_app

    app = create_app(settings.model_copy(update={"fast_path": request.param}), make_service())
    yield app.test_client()
    app.extensions["mlcycle"].close()


@pytest.fixture
def app_with(settings):
    """`app_with(**changes)`: the app serving the stub model with `settings` changed; every
    app built is closed after the test."""
    from serving.app import create_app

    apps = []

    def build(**changes):
        apps.append(create_app(settings.model_copy(update=changes), make_service()))
        return apps[-1]

    yield build
    for app in apps:
        app.extensions["mlcycle"].close()
