"""Start and stop settings, readiness while draining, and the admin reload's answer."""

from __future__ import annotations

import logging

import pytest

from serving.app import create_app
from serving.rundir import mark_draining, reload_token
from serving.settings import SettingsError, get_settings
from serving.watcher import ModelWatcher
from tests.unit.serving.stub import ROW, make_service


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """A launcher's run folder in the environment, as its workers see it."""
    monkeypatch.setenv("MLCYCLE_RUN_DIR", str(tmp_path / "run"))
    logger = logging.getLogger("serving")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield tmp_path / "run"
    # create_app gives a launcher's worker a log handler on this test's (captured) stderr
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


def test_draining_turns_readiness_503_with_the_reason_and_keeps_serving(settings, run_dir):
    app = create_app(settings, make_service())
    c = app.test_client()
    assert c.get("/v2/health/ready").status_code == 200
    mark_draining(run_dir, "shutting down (SIGTERM)")
    ready = c.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["ready"] is False
    assert ready.get_json()["draining"] == "shutting down (SIGTERM)"
    assert c.get("/health").status_code == 503
    ping = c.get("/ping")
    assert ping.status_code == 503 and "shutting down" in ping.get_data(as_text=True)
    assert c.get("/v2/health/live").status_code == 200, "draining is not dead"
    assert c.post("/invocations", json={"instances": [ROW]}).status_code == 200
    app.extensions["mlcycle"].close()


def test_admin_reload_says_what_it_did(settings, run_dir):
    app = create_app(settings, make_service())
    serving = app.extensions["mlcycle"]
    serving.watcher = ModelWatcher(
        serving.state, settings, make_service, lambda seen: ("1", seen), run_dir=str(run_dir)
    )
    body = app.test_client().post(
        "/admin/reload", headers={"X-Admin-Token": "admin-secret-0123456789abcdef"}
    )
    answer = body.get_json()
    assert answer["model_version"] == "1" and answer["reloaded"] is False
    assert answer["other_workers_signalled"] is True and answer["worker_pid"] > 0
    assert reload_token(run_dir) is not None, "the other workers' signal is written"
    serving.close()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MLCYCLE_SHUTDOWN_GRACE_S": "soon"}, "MLCYCLE_SHUTDOWN_GRACE_S"),
        ({"MLCYCLE_SHUTDOWN_DELAY_S": "-1"}, "MLCYCLE_SHUTDOWN_DELAY_S"),
        ({"MLCYCLE_SHUTDOWN_DELAY_S": "10", "MLCYCLE_SHUTDOWN_GRACE_S": "12"}, "GRACE_S (12)"),
        ({"MLCYCLE_LOAD_RETRY_MAX_S": "nan"}, "MLCYCLE_LOAD_RETRY_MAX_S"),
        ({"MLCYCLE_LOAD_RETRY_MIN_S": "5", "MLCYCLE_LOAD_RETRY_MAX_S": "2"}, "MAX_S (2)"),
    ],
)
def test_bad_lifecycle_settings_are_refused_by_name(monkeypatch, env, named):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        get_settings()


def test_lifecycle_settings_defaults_and_overrides(monkeypatch):
    defaults = get_settings()
    assert (defaults.shutdown_delay_s, defaults.shutdown_grace_s) == (0.0, 20.0)
    assert (defaults.load_retry_min_s, defaults.load_retry_max_s) == (1.0, 60.0)
    monkeypatch.setenv("MLCYCLE_SHUTDOWN_DELAY_S", "5")
    monkeypatch.setenv("MLCYCLE_SHUTDOWN_GRACE_S", "25")
    assert get_settings().shutdown_delay_s == 5.0 and get_settings().shutdown_grace_s == 25.0


def test_serve_refuses_a_bad_value_at_start_up_naming_it(monkeypatch):
    from typer.testing import CliRunner

    from mlcycle.cli import app

    monkeypatch.setenv("MLCYCLE_SHUTDOWN_GRACE_S", "soon")
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "MLCYCLE_SHUTDOWN_GRACE_S: must be a number >= 0, got 'soon'" in result.output
