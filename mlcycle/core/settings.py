"""One configuration approach for every stage: pydantic-settings classes over environment variables.

In: `MLCYCLE_*` environment variables (plus `MLFLOW_TRACKING_URI`); a CLI's options as keyword
overrides of `MlcycleSettings.load`.
Out: frozen settings objects, or one `SettingsError` with a line per bad variable naming it and
what it accepts (`MLCYCLE_WORKERS: must be an integer >= 1, got 'many'`).

Each stage's settings class (`serving.settings`, `monitoring.settings`, `pipelines.settings`)
builds on `MlcycleSettings` and inherits the fields the stages share from here
(`ModelSettings`, `SharedSettings`), so each of their defaults is defined once. Every field is
typed, defaulted and documented by the docstring under it; docs/settings.md is generated from
these classes (`python -m mlcycle.settings_doc`). Booleans everywhere use `Flag`: one parser.
Nothing is read at import.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import annotated_types
from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MODEL_NAME = "credit-risk"
"""The registered model's default name (every stage's `MLCYCLE_MODEL_NAME` default)."""

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
BOOL_ACCEPTS = "one of true/false/1/0/yes/no/on/off"
MIN_SECRET_CHARS = 24
"""Fewest characters of a secret: admin token, API keys, signing and log-hash keys."""
PLACEHOLDERS = frozenset(
    {"demo-admin-token", "demo-key", "change-me", "changeme", "secret", "password", "admin"}
)
"""Documented example values refused as secrets, as are values starting `change-me` or
`replace-me` (the placeholders of `.env.example` and the Kubernetes Secrets)."""

S = TypeVar("S", bound="MlcycleSettings")


class SettingsError(ValueError):
    """Variables hold values mlcycle cannot use; one line per variable, naming it."""


@dataclass(frozen=True)
class Accepts:
    """Field metadata: what the field accepts, in words, where its type does not say it."""

    text: str


@dataclass(frozen=True)
class Shown:
    """Field metadata: the default as the settings table shows it (a computed default)."""

    text: str


def parse_bool(value: object) -> bool:
    """The one boolean parser: 1/true/yes/on and 0/false/no/off, any case; nothing else.

    Raises:
        ValueError: for any other value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(BOOL_ACCEPTS)


def weak_secret(variable: str, value: str | None) -> str | None:
    """Why `value` cannot serve as the secret `variable`, in one line; None when it can (or
    is unset). The line names the variable and never shows the value."""
    if value is None:
        return None
    word = value.strip().lower()
    if word in PLACEHOLDERS or word.startswith(("change-me", "changeme", "replace-me")):
        return f"{variable}: must not be a documented placeholder; set a random secret"
    if len(value) < MIN_SECRET_CHARS:
        return (
            f"{variable}: must be at least {MIN_SECRET_CHARS} characters, got {len(value)} "
            "(e.g. `openssl rand -hex 24`)"
        )
    return None


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _normalise(case: typing.Callable[[str], str]) -> WrapValidator:
    """Validate text stripped and in `case`; an error shows the value as it was given."""

    def wrap(value: object, handler: typing.Callable[[object], object]) -> object:
        if not isinstance(value, str):
            return handler(value)
        try:
            return handler(case(value.strip()))
        except ValidationError:
            raise ValueError("not accepted") from None

    return WrapValidator(wrap)


Flag = Annotated[bool, BeforeValidator(parse_bool), Accepts(BOOL_ACCEPTS)]
"""A boolean setting, parsed by `parse_bool`."""
CommaList = Annotated[
    tuple[str, ...], NoDecode, BeforeValidator(_split), Accepts("a comma-separated list")
]
"""A list setting written `a,b,c` (blanks dropped; empty: none)."""
LOWER = _normalise(str.lower)
"""Validator of case-insensitive text (choices, aliases): stripped and lower-cased."""
UPPER = _normalise(str.upper)
"""Validator of case-insensitive text: stripped and upper-cased."""


class MlcycleSettings(BaseSettings):
    """Base of every settings class: `MLCYCLE_` prefix, empty means unset, frozen, refuses
    non-finite numbers; field docstrings are the descriptions."""

    model_config = SettingsConfigDict(
        env_prefix="MLCYCLE_",
        env_ignore_empty=True,
        frozen=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )

    @classmethod
    def load(cls: type[S], **overrides: Any) -> S:
        """Build the settings from the environment; `overrides` (a CLI's options) win.

        Raises:
            SettingsError: one line per bad variable, naming it and what it accepts.
        """
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(describe(cls, exc)) from None


class HomeSettings(MlcycleSettings):
    """Where the embedded stores live and which MLflow store every stage uses."""

    home: Annotated[Path | None, Shown("the working folder")] = None
    """Folder of the embedded stores: `mlflow.db`, `mlruns/` and `.mlcycle/` (prediction log,
    reports)."""
    tracking_uri: Annotated[
        str | None, Accepts("an MLflow tracking URI"), Shown("`sqlite:///<home>/mlflow.db`")
    ] = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    """MLflow tracking and registry store (e.g. `postgresql+psycopg2://…`, `http://mlflow:5000`)."""

    @property
    def home_dir(self) -> Path:
        """`home`, or the working folder, resolved."""
        return (self.home or Path.cwd()).resolve()

    @property
    def state_dir(self) -> Path:
        """mlcycle's own embedded files (prediction log, reports): `<home>/.mlcycle`."""
        return self.home_dir / ".mlcycle"


def _prediction_log_url() -> str:
    return f"sqlite:///{HomeSettings.load().state_dir / 'predictions.db'}"


def _reports_dir() -> Path:
    return HomeSettings.load().state_dir / "reports"


class ModelSettings(MlcycleSettings):
    """The registered model every stage works on."""

    model_name: Annotated[str, Accepts("a registered model name (not blank, no '/' or ':')")] = (
        Field(MODEL_NAME, validation_alias="MLCYCLE_MODEL_NAME")
    )
    """Registered model name."""

    signing_key: str | None = Field(None, validation_alias="MLCYCLE_SIGNING_KEY")
    """Key of the model signatures (HMAC-SHA256, at least 24 characters): training signs each
    version it registers; serving, when set, loads only versions whose files match their
    signature. Unset: versions are registered unsigned and served unchecked."""

    @field_validator("model_name")
    @classmethod
    def _registrable(cls, name: str) -> str:
        if not name.strip() or "/" in name or ":" in name:  # MLflow refuses these names
            raise ValueError("not a registered model name")
        return name

    @model_validator(mode="after")
    def _strong_signing_key(self) -> ModelSettings:
        problem = weak_secret("MLCYCLE_SIGNING_KEY", self.signing_key)
        if problem:
            raise ValueError(problem)
        return self


class SharedSettings(ModelSettings):
    """What serving and monitoring share: the model and the stores between them."""

    prediction_log_url: Annotated[
        str, Accepts("a SQLAlchemy URL"), Shown("`sqlite:///<home>/.mlcycle/predictions.db`")
    ] = Field(default_factory=_prediction_log_url, validation_alias="MLCYCLE_PREDICTION_LOG_URL")
    """The prediction log: serving writes it, monitoring reads it (SQLite or PostgreSQL)."""
    reports_dir: Annotated[Path, Shown("`<home>/.mlcycle/reports`")] = Field(
        default_factory=_reports_dir, validation_alias="MLCYCLE_REPORTS_DIR"
    )
    """Drift reports, `index.json` and `drift.prom` (monitoring writes; serving serves
    `drift.prom` on `/metrics` and the reports on its web pages)."""
    log_hash_columns: CommaList = Field((), validation_alias="MLCYCLE_LOG_HASH_COLUMNS")
    """Input columns the prediction log stores as a keyed hash (HMAC-SHA256 with
    `MLCYCLE_LOG_HASH_KEY`), never as sent; the drift job hashes the reference the same way,
    so these columns are still judged (as categories)."""
    log_hash_key: str | None = Field(None, validation_alias="MLCYCLE_LOG_HASH_KEY")
    """Key of the hashed log columns (at least 24 characters; required with
    `MLCYCLE_LOG_HASH_COLUMNS`). Serving and the drift job need the same key."""
    log_drop_columns: CommaList = Field((), validation_alias="MLCYCLE_LOG_DROP_COLUMNS")
    """Input columns left out of the prediction log (the drift report lists them as not
    judged)."""

    @model_validator(mode="after")
    def _log_privacy(self) -> SharedSettings:
        both = sorted(set(self.log_hash_columns) & set(self.log_drop_columns))
        if both:
            raise ValueError(
                f"MLCYCLE_LOG_HASH_COLUMNS and MLCYCLE_LOG_DROP_COLUMNS both name {', '.join(both)}"
            )
        if self.log_hash_columns and not self.log_hash_key:
            raise ValueError("MLCYCLE_LOG_HASH_KEY: must be set when MLCYCLE_LOG_HASH_COLUMNS is")
        problem = weak_secret("MLCYCLE_LOG_HASH_KEY", self.log_hash_key)
        if problem:
            raise ValueError(problem)
        return self


def env_names(cls: type[BaseSettings], name: str) -> list[str]:
    """The environment variables of field `name`, the one read first first."""
    alias = cls.model_fields[name].validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"{cls.model_config.get('env_prefix', '')}{name}".upper()]


def accepts(field: FieldInfo) -> str:
    """What `field` accepts, in words: the same text in error messages and in the docs."""
    for meta in field.metadata:
        if isinstance(meta, Accepts):
            return meta.text
    kind = _without_none(field.annotation)
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(str(choice) for choice in typing.get_args(kind))
    if kind in (int, float):
        bounds = [_bound(meta) for meta in field.metadata]
        words = "an integer" if kind is int else "a number"
        return " ".join([words, " and ".join(b for b in bounds if b)]).strip()
    if kind is Path:
        return "a path"
    return "text"


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _bound(meta: object) -> str:
    for kind, sign in (
        (annotated_types.Ge, ">="),
        (annotated_types.Gt, ">"),
        (annotated_types.Le, "<="),
        (annotated_types.Lt, "<"),
    ):
        if isinstance(meta, kind):
            value = getattr(meta, kind.__name__.lower())
            return f"{sign} {value:g}"
    return ""


def describe(cls: type[BaseSettings], exc: ValidationError) -> str:
    """`exc` as one line per bad variable: `NAME: must be <accepts>, got <value>`.

    Errors of the whole object (cross-field checks) keep their own message.
    """
    by_key = {}
    for name in cls.model_fields:
        by_key[name] = (name, None)
        for env in env_names(cls, name):
            by_key[env] = (name, env)
    lines: list[str] = []
    for error in exc.errors():
        key = error["loc"][0] if error["loc"] else None
        if key in by_key:
            name, env = by_key[key]
            env = env or env_names(cls, name)[0]
            line = f"{env}: must be {accepts(cls.model_fields[name])}, got {error['input']!r}"
        elif key is not None:  # not a field: a misspelt override
            line = f"{key}: {error['msg']}"
        else:  # a check of the whole object: its own message
            cause = error.get("ctx", {}).get("error")
            line = str(cause) if cause is not None else error["msg"]
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)
