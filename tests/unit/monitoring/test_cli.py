"""`mlcycle drift` exit code 2 with one clear message (no traceback) when it cannot judge."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlcycle.cli import app


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))
    for name in ("MLCYCLE_PREDICTION_LOG_URL", "MLCYCLE_REPORTS_DIR", "MLCYCLE_MODEL_NAME"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _drift(*args: str):
    return CliRunner().invoke(app, ["drift", *args])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--last", "10", "--since", "1h"], "do not combine"),
        (["--since", "soon"], "cannot read duration"),
        (["--from", "yesterday"], "ISO-8601"),
        (["--every", "often"], "cannot read duration"),
    ],
)
def test_bad_window_options_exit_2(empty_store: Path, args: list[str], message: str) -> None:
    result = _drift(*args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_unknown_model_exits_2_with_message(empty_store: Path) -> None:
    result = _drift("--last", "100", "--model-name", "no-such-model")
    assert result.exit_code == 2, result.output
    assert "cannot judge drift" in result.output and "no-such-model" in result.output
    assert "Traceback" not in result.output
    assert not (empty_store / ".mlcycle" / "predictions.db").exists()
