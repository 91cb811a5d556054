"""How settings reach the launcher's workers: `mlcycle serve` validates the environment plus
its options once and hands the result to the workers in its run folder; it never passes an
option through a variable of its own, and the workers do not parse the environment again."""

from __future__ import annotations

import logging
import os

import pytest
from typer.testing import CliRunner

from mlcycle.cli import app as cli
from serving import rundir
from serving.app import create_app
from serving.settings import Settings, get_settings, launched


@pytest.fixture
def quiet_serving_logger():
    """create_app gives a launcher's worker a log handler; restore the logger afterwards."""
    logger = logging.getLogger("serving")
    handlers, propagate, level = list(logger.handlers), logger.propagate, logger.level
    yield
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


def _mlcycle_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("MLCYCLE_")}


def test_serve_hands_its_options_to_the_launcher_as_settings_not_variables(monkeypatch):
    import serving.cli

    seen = {}

    def fake_launch(target, settings, host, port):
        seen.update(target=target, settings=settings, port=port)
        return 0

    monkeypatch.setattr(serving.cli, "launch", fake_launch)
    monkeypatch.setenv("MLCYCLE_WORKERS", "5")
    monkeypatch.setenv("MLCYCLE_THRESHOLD", "0.7")
    before = _mlcycle_env()
    result = CliRunner().invoke(
        cli, ["serve", "--port", "1234", "--workers", "3", "--no-cache", "--alias", "Champion"]
    )
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    assert (settings.workers, settings.cache, settings.model_alias) == (3, False, "champion")
    assert settings.threshold == 0.7, "the environment still counts where no option is given"
    assert _mlcycle_env() == before, "serve wrote MLCYCLE_* variables"


def test_a_worker_takes_the_launchers_settings_from_the_run_folder(
    tmp_path, monkeypatch, quiet_serving_logger
):
    chosen = Settings(
        workers=3,
        model_name="fraud",
        start_watcher=False,
        log_predictions=False,
        api_keys=("key-one-0123456789abcdefgh", "key-two-0123456789abcdefgh"),
        reports_dir=tmp_path / "reports",
    )
    rundir.write_settings(tmp_path, chosen.model_dump_json())
    monkeypatch.setenv("MLCYCLE_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("MLCYCLE_WORKERS", "7")  # what the launcher saw is what counts
    monkeypatch.setenv("MLCYCLE_MODEL_NAME", "other")
    assert get_settings() == chosen
    assert launched().workers == 3
    serving = create_app().extensions["mlcycle"]
    assert serving.settings == chosen
    assert serving.run_dir == str(tmp_path)
    rundir.mark_ready(tmp_path, "1")
    serving.state.swap(object())  # readiness only counts markers once this worker has a model
    assert not serving.all_workers_ready(), "one of three workers is ready"
    serving.close()


def test_without_the_launcher_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MLCYCLE_RUN_DIR", str(tmp_path))  # a folder without settings.json
    monkeypatch.setenv("MLCYCLE_WORKERS", "7")
    assert get_settings().workers == 7
    assert launched().workers == 1, "readiness waits for no sibling it does not know of"
