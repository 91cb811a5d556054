"""One configuration approach: every stage's settings refuse bad values by name, share one
boolean parser and one definition of each shared default, and docs/settings.md is what the
code renders."""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path

import pytest

from mlcycle import settings_doc
from mlcycle.core.settings import (
    BOOL_ACCEPTS,
    FALSE_WORDS,
    MODEL_NAME,
    TRUE_WORDS,
    ModelSettings,
    SettingsError,
    SharedSettings,
    accepts,
    env_names,
    parse_bool,
)
from monitoring.settings import Settings as MonitoringSettings
from pipelines.settings import Settings as PipelineSettings
from serving.settings import Settings as ServingSettings

ROOT = Path(__file__).resolve().parents[3]
CODE_DIRS = ("mlcycle", "pipelines", "serving", "monitoring")
STAGES = (ServingSettings, MonitoringSettings, PipelineSettings)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No mlcycle variable from the outer environment; the embedded stores in a temp folder."""
    for key in list(os.environ):
        if key.upper().startswith("MLCYCLE_") or key.upper() == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(key)
    monkeypatch.setenv("MLCYCLE_HOME", str(tmp_path))


def _kind(annotation) -> str | None:
    """`bool`, `number` or `choice` for the fields that must refuse bad values, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return "choice"
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]  # optional: the same checks when set
    return {bool: "bool", int: "number", float: "number"}.get(annotation)


def _fields(kind: str) -> list:
    """(class, field, its first variable) of every field of one kind in every settings class."""
    return [
        pytest.param(cls, name, env_names(cls, name)[0], id=name)
        for cls in settings_doc.settings_classes()
        for name in settings_doc.own_fields(cls)
        if _kind(cls.model_fields[name].annotation) == kind
    ]


def _refused(cls, env: str, value: str, monkeypatch) -> str:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as caught:
        cls.load()
    return str(caught.value)


@pytest.mark.parametrize("word", [*TRUE_WORDS, *FALSE_WORDS, "TRUE", "Off", " yes "])
def test_the_boolean_parser_takes_exactly_the_documented_words(word):
    assert parse_bool(word) is (word.strip().lower() in TRUE_WORDS)


@pytest.mark.parametrize("word", ["maybe", "t", "y", "2", "", "enabled"])
def test_the_boolean_parser_refuses_anything_else(word):
    with pytest.raises(ValueError, match="true/false"):
        parse_bool(word)


@pytest.mark.parametrize(("cls", "name", "env"), _fields("bool"))
def test_every_boolean_setting_uses_the_one_parser(cls, name, env, monkeypatch):
    for word in [*TRUE_WORDS, *FALSE_WORDS]:
        monkeypatch.setenv(env, word.upper())
        assert getattr(cls.load(), name) is (word in TRUE_WORDS), (env, word)
    for bad in ("maybe", "t", "2"):
        message = _refused(cls, env, bad, monkeypatch)
        assert message == f"{env}: must be {BOOL_ACCEPTS}, got {bad!r}"


@pytest.mark.parametrize(("cls", "name", "env"), _fields("number"))
def test_every_numeric_setting_refuses_a_non_number_and_a_negative_by_name(
    cls, name, env, monkeypatch
):
    wanted = accepts(cls.model_fields[name])
    assert ">" in wanted, f"{env} has no lower bound: {wanted!r}"
    for bad in ("many", "-1", "nan", "inf", "1e999"):
        if cls.model_fields[name].annotation is int and bad in ("nan", "inf", "1e999"):
            continue
        assert _refused(cls, env, bad, monkeypatch) == f"{env}: must be {wanted}, got {bad!r}"


@pytest.mark.parametrize(("cls", "name", "env"), _fields("choice"))
def test_every_choice_setting_refuses_an_unknown_choice_by_name(cls, name, env, monkeypatch):
    message = _refused(cls, env, "bogus", monkeypatch)
    assert message.startswith(f"{env}: must be ") and message.endswith("got 'bogus'")
    for choice in typing.get_args(cls.model_fields[name].annotation):
        monkeypatch.setenv(env, f" {str(choice).swapcase()} ")  # any case, spaces around
        assert getattr(cls.load(), name) == choice


def test_each_bad_variable_gets_its_own_line(monkeypatch):
    monkeypatch.setenv("MLCYCLE_WORKERS", "many")
    monkeypatch.setenv("MLCYCLE_BATCHING", "maybe")
    monkeypatch.setenv("MLCYCLE_OUT_OF_RANGE", "warn")
    with pytest.raises(SettingsError) as caught:
        ServingSettings.load()
    assert str(caught.value).splitlines() == [
        f"MLCYCLE_BATCHING: must be {BOOL_ACCEPTS}, got 'maybe'",
        "MLCYCLE_WORKERS: must be an integer >= 1, got 'many'",
        "MLCYCLE_OUT_OF_RANGE: must be one of flag, reject, got 'warn'",
    ]


def test_a_cli_override_wins_over_the_variable_and_is_validated_too(monkeypatch):
    monkeypatch.setenv("MLCYCLE_WORKERS", "3")
    assert ServingSettings.load(workers=5).workers == 5
    with pytest.raises(SettingsError, match="MLCYCLE_WORKERS: must be an integer >= 1, got 0"):
        ServingSettings.load(workers=0)


def test_a_misspelt_override_is_named():
    with pytest.raises(SettingsError, match="wrokers: Extra inputs are not permitted"):
        ServingSettings.load(wrokers=3)


def test_empty_means_unset_and_renamed_variables_are_read(monkeypatch):
    monkeypatch.setenv("MLCYCLE_WORKERS", "")
    monkeypatch.setenv("MLCYCLE_MODEL_ALIAS", "")
    monkeypatch.setenv("MLCYCLE_MODEL_STAGE", "Staging")
    monkeypatch.setenv("MLCYCLE_PREDICTION_LOG_WAIT_S", "7.5")
    monkeypatch.setenv(
        "MLCYCLE_API_KEYS", " key-one-0123456789abcdefgh, ,key-two-0123456789abcdefgh "
    )
    monkeypatch.setenv("MLCYCLE_DRIFT_WORKER", "false")
    monkeypatch.setenv("MLCYCLE_DRIFT_NUM_METHOD", "  ")
    serving = ServingSettings.load()
    assert (serving.workers, serving.model_alias, serving.log_wait_s) == (2, "staging", 7.5)
    assert serving.api_keys == ("key-one-0123456789abcdefgh", "key-two-0123456789abcdefgh")
    monitoring = MonitoringSettings.load()
    assert (monitoring.report_worker, monitoring.num_method) == ("off", None)


def test_drift_mlflow_takes_only_boolean_words_now(monkeypatch):
    """Monitoring used to treat anything but 0/false/no/off as true."""
    monkeypatch.setenv("MLCYCLE_DRIFT_MLFLOW", "maybe")
    with pytest.raises(SettingsError, match="MLCYCLE_DRIFT_MLFLOW: must be one of"):
        MonitoringSettings.load()


def test_shared_defaults_are_defined_once_in_the_core(tmp_path):
    for cls in STAGES:
        assert "model_name" not in settings_doc.own_fields(cls), cls
        assert env_names(cls, "model_name") == ["MLCYCLE_MODEL_NAME"]
        assert cls.load().model_name == MODEL_NAME
    assert issubclass(PipelineSettings, ModelSettings)
    for cls in (ServingSettings, MonitoringSettings):
        assert issubclass(cls, SharedSettings)
        settings = cls.load()
        assert settings.prediction_log_url == f"sqlite:///{tmp_path / '.mlcycle/predictions.db'}"
        assert Path(settings.reports_dir) == tmp_path / ".mlcycle" / "reports"
    literal = f'"{MODEL_NAME}"'
    spelled = [
        str(path.relative_to(ROOT))
        for folder in CODE_DIRS
        for path in (ROOT / folder).rglob("*.py")
        if literal in path.read_text()
    ]
    assert spelled == ["mlcycle/core/settings.py"], f"{literal} spelled out in {spelled}"


def test_no_two_settings_read_the_same_variable():
    seen: dict[str, str] = {}
    for cls in settings_doc.settings_classes():
        for name in settings_doc.own_fields(cls):
            for env in env_names(cls, name):
                assert env not in seen, f"{env}: {seen[env]} and {cls.__name__}.{name}"
                seen[env] = f"{cls.__name__}.{name}"


def test_every_setting_is_documented():
    for cls in settings_doc.settings_classes():
        for name in settings_doc.own_fields(cls):
            assert cls.model_fields[name].description, f"{cls.__name__}.{name} has no docstring"


def test_docs_settings_md_is_what_the_code_renders():
    page = settings_doc.DOC.read_text(encoding="utf-8")
    assert settings_doc.updated(page) == page, "docs/settings.md is stale: make settings-doc"
    for env in settings_doc.variables():
        assert f"`{env}`" in page
