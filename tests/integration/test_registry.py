"""mlcycle.core.registry against a real SQLite MLflow store: stages and aliases move together."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

from mlcycle.core import registry
from mlcycle.core.registry import ProductionState, RegistryError

NAME = "reg-test"


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """One store with a model and three versions; creating MLflow's schema takes seconds."""
    import mlflow

    root = tmp_path_factory.mktemp("registry-template")
    c = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    c.create_registered_model(NAME)
    for _ in range(3):
        c.create_model_version(NAME, source=(root / "model").as_uri())
    return root / "mlflow.db"


@pytest.fixture
def client(template_db, tmp_path):
    """A client on a fresh copy of the template store."""
    import mlflow

    shutil.copy(template_db, tmp_path / "mlflow.db")
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")


def _stage(client, version: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return client.get_model_version(NAME, version).current_stage


def _set_stage_only(client, version: str, stage: str) -> None:
    """What the MLflow UI's Stage control does: the stage moves, the alias does not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(NAME, version, stage, archive_existing_versions=True)


def _alias(client, alias: str) -> str | None:
    return (client.get_registered_model(NAME).aliases or {}).get(alias)


def test_promote_sets_stage_alias_and_tags(client):
    entry = registry.promote(NAME, "1", "production", reason="first", by="alice", client=client)
    assert _stage(client, "1") == "Production"
    assert str(_alias(client, "production")) == "1"
    tags = client.get_model_version(NAME, "1").tags
    assert tags["mlcycle.promoted_to"] == "production"
    assert tags["mlcycle.promoted_by"] == "alice"
    assert tags["mlcycle.promotion_reason"] == "first"
    assert tags["mlcycle.promoted_at"].endswith("+00:00")
    assert entry["version"] == "1" and entry["previous"] is None


def test_promote_archives_previous_production_and_records_history(client):
    registry.promote(NAME, "1", "production", by="a", client=client)
    registry.promote(NAME, "2", "staging", by="a", client=client)
    registry.promote(NAME, "2", "production", reason="better", by="b", client=client)
    assert _stage(client, "1") == "Archived"
    assert _stage(client, "2") == "Production"
    assert str(_alias(client, "production")) == "2"
    assert _alias(client, "staging") is None  # v2 left staging with its alias
    entries = registry.history(NAME, client=client)
    assert [(e["version"], e["to"]) for e in entries] == [
        ("1", "production"),
        ("2", "staging"),
        ("2", "production"),
    ]
    assert entries[-1]["previous"] == "1"


def test_rollback_returns_to_previous_production(client):
    registry.promote(NAME, "1", "production", client=client)
    registry.promote(NAME, "2", "production", client=client)
    entry = registry.rollback(NAME, reason="bad latency", client=client)
    assert entry["version"] == "1"
    assert _stage(client, "1") == "Production" and _stage(client, "2") == "Archived"
    assert str(_alias(client, "production")) == "1"
    assert "bad latency" in client.get_model_version(NAME, "1").tags["mlcycle.promotion_reason"]


def test_rollback_without_earlier_version_is_a_clear_error(client):
    registry.promote(NAME, "1", "production", client=client)
    with pytest.raises(RegistryError, match="nothing to roll back"):
        registry.rollback(NAME, client=client)


def test_unknown_model_and_version_are_clear_errors(client):
    with pytest.raises(RegistryError, match="unknown registered model 'nope'"):
        registry.promote("nope", "1", client=client)
    with pytest.raises(RegistryError, match="no version '9'"):
        registry.promote(NAME, "9", client=client)
    with pytest.raises(RegistryError, match="use 'production' or 'staging'"):
        registry.promote(NAME, "1", to="prod-ish", client=client)


def test_history_stays_bounded_under_the_tag_limit(client):
    for i in range(30):
        registry.promote(NAME, str(1 + i % 3), "staging", reason="x" * 300, client=client)
    raw = client.get_registered_model(NAME).tags[registry.HISTORY_TAG]
    assert len(raw) <= registry.HISTORY_MAX_CHARS
    assert 1 < len(json.loads(raw)) <= registry.HISTORY_MAX_ENTRIES


def test_resolve_first_sight_disagreement_alias_wins(client):
    _set_stage_only(client, "1", "Production")
    client.set_registered_model_alias(NAME, "production", "2")
    state = registry.resolve_production(client, NAME)
    assert state == ProductionState("2", "2", "1")


def test_resolve_nothing_in_production(client):
    assert registry.resolve_production(client, NAME) == ProductionState(None, None, None)


def test_resolve_stage_only_change_wins(client):
    registry.promote(NAME, "1", "production", client=client)
    seen = registry.resolve_production(client, NAME)
    assert seen.version == "1"
    _set_stage_only(client, "2", "Production")  # UI: stage moved, alias still on v1
    state = registry.resolve_production(client, NAME, seen)
    assert state.version == "2" and state.alias_version == "1"
    # Nothing changes afterwards: the decision holds.
    assert registry.resolve_production(client, NAME, state).version == "2"


def test_fresh_replica_honours_a_stage_only_change_since_the_last_promotion(client):
    registry.promote(NAME, "1", "production", client=client)
    _set_stage_only(client, "2", "Production")  # UI: stage moved, alias still on v1
    # A replica that starts now never saw v1 serving: the state recorded at the promotion
    # stands in for its previous look, so it agrees with the replicas already running.
    assert registry.resolve_production(client, NAME).version == "2"


def test_resolve_alias_only_change_wins(client):
    registry.promote(NAME, "1", "production", client=client)
    seen = registry.resolve_production(client, NAME)
    client.set_registered_model_alias(NAME, "production", "3")  # UI: alias moved only
    state = registry.resolve_production(client, NAME, seen)
    assert state.version == "3" and state.stage_version == "1"


def test_resolve_several_production_versions_most_recent_wins(client):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(NAME, "1", "Production")
        client.transition_model_version_stage(NAME, "3", "Production")
    assert registry.resolve_production(client, NAME).stage_version == "3"


def test_sync_writes_a_ui_stage_change_to_the_alias(client):
    registry.promote(NAME, "1", "production", client=client)
    _set_stage_only(client, "2", "Production")
    state = registry.sync(NAME, client=client)
    assert state == ProductionState("2", "2", "2")
    assert _stage(client, "1") == "Archived"
    assert registry.history(NAME, client=client)[-1]["version"] == "2"


def test_sync_writes_a_ui_alias_change_to_the_stage(client):
    registry.promote(NAME, "1", "production", client=client)
    client.set_registered_model_alias(NAME, "production", "3")
    state = registry.sync(NAME, client=client)
    assert state == ProductionState("3", "3", "3")
    assert _stage(client, "3") == "Production" and _stage(client, "1") == "Archived"


def test_resolve_unknown_model(client):
    with pytest.raises(RegistryError, match="unknown registered model"):
        registry.resolve_production(client, "missing")


@pytest.fixture
def cli(client, monkeypatch):
    """Run the registry commands as `mlcycle` does, against the test store."""
    import typer
    from typer.testing import CliRunner

    from mlcycle import registry_cli

    monkeypatch.setenv("MLFLOW_TRACKING_URI", client.tracking_uri)
    app = typer.Typer()
    for name in ("promote", "rollback", "history"):
        app.command(name)(getattr(registry_cli, name))

    def invoke(*args: str):
        return CliRunner().invoke(app, list(args))

    return invoke


def test_cli_promote_rollback_history(cli):
    first = cli("promote", NAME, "1", "--to", "production", "--reason", "launch", "--by", "ann")
    assert first.exit_code == 0, first.output
    assert f"{NAME} v1 is now production" in first.output
    assert cli("promote", NAME, "2").exit_code == 0
    back = cli("rollback", NAME, "--reason", "regression")
    assert back.exit_code == 0 and "v1 is now production" in back.output
    table = cli("history", NAME)
    assert table.exit_code == 0
    lines = table.output.strip().splitlines()
    assert lines[0].split()[:3] == ["AT", "(UTC)", "VERSION"] and len(lines) == 4
    assert "launch" in lines[1] and "ann" in lines[1]
    entries = json.loads(cli("history", NAME, "--json").output)
    assert [e["version"] for e in entries] == ["1", "2", "1"]


def test_cli_errors_are_one_line_without_traceback(cli):
    for args in (("promote", "nope", "1"), ("promote", NAME, "42"), ("rollback", NAME)):
        result = cli(*args)
        assert result.exit_code == 1
        assert "Traceback" not in result.output
        assert result.output.startswith("error: ")
