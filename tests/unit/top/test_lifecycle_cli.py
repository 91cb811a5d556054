"""`mlcycle retrain-on-drift` exit codes, with the loop's pass replaced by a fixed decision."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mlcycle import lifecycle
from mlcycle.cli import app


@pytest.fixture
def decide(monkeypatch, tmp_path):
    """Make every pass return the decision `action`; no MLflow, no log."""
    monkeypatch.setenv("MLCYCLE_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setattr("mlcycle.core.config.configure_mlflow", lambda *a, **k: None)

    def set_action(action: str) -> None:
        result = lifecycle.LoopResult(action, "because")
        monkeypatch.setattr(lifecycle, "run_once", lambda *a, **k: result)

    return set_action


@pytest.mark.parametrize(
    ("action", "plain", "skipped_ok"),
    [("skipped", 3, 0), ("promoted", 0, 0), ("not promoted", 1, 1)],
)
def test_skipped_ok_turns_only_nothing_to_do_into_success(decide, action, plain, skipped_ok):
    decide(action)
    runner = CliRunner()
    done = runner.invoke(app, ["retrain-on-drift"])
    assert done.exit_code == plain, done.output
    assert f"{action}: because" in done.output
    assert runner.invoke(app, ["retrain-on-drift", "--skipped-ok"]).exit_code == skipped_ok
