"""Registry operations that keep MLflow stages and aliases in sync.

In: a registered model name, versions, who/why. Out: changes in the MLflow model registry:
the stage (Staging/Production/Archived) and the alias (`staging`/`production`) move together,
the version gets the promotion tags `mlcycle.promoted_to/at/by/promotion_reason`, and the
registered model's tag `mlcycle.history` (a JSON list, newest last) records each promotion.

A promotion made in the MLflow UI moves only one of the two. `resolve_production` decides which
version serves: whichever of alias and stage changed since the caller's last look wins; when they
disagree at first sight the alias wins. `sync` writes that winner back to the other.

Light on imports (no TensorFlow, no training code): used by the CLI, the serving watcher and
the web app. `mlflow` is imported inside the functions.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

STAGES = {"production": "Production", "staging": "Staging"}
HISTORY_TAG = "mlcycle.history"
SYNC_TAG = "mlcycle.last_sync"
HISTORY_MAX_ENTRIES = 50
# MLflow stores registered-model tag values in a VARCHAR(5000) column.
HISTORY_MAX_CHARS = 4800
REASON_MAX_CHARS = 160


class RegistryError(Exception):
    """A registry operation cannot be done (unknown model or version, nothing to roll back)."""


@dataclass(frozen=True)
class ProductionState:
    """What the registry says about production, as seen at one look.

    Attributes:
        version: the version that should serve (None when nothing is in production).
        alias_version: the version the `production` alias points to, if any.
        stage_version: the (most recently updated) version in stage Production, if any.
    """

    version: str | None
    alias_version: str | None
    stage_version: str | None


def _client(client: Any = None) -> Any:
    if client is not None:
        return client
    import mlflow

    return mlflow.MlflowClient()


def default_user() -> str:
    """The OS user name (fallback `unknown`)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def _registered_model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            raise RegistryError(f"unknown registered model {name!r}") from None
        raise


def _versions(client: Any, name: str) -> list[Any]:
    escaped = name.replace("'", "\\'")
    return list(client.search_model_versions(f"name='{escaped}'"))


def _state_from(registered: Any, versions: list[Any]) -> tuple[str | None, str | None]:
    """(alias version, stage version) from a registered model and its versions."""
    alias = (getattr(registered, "aliases", None) or {}).get("production")
    in_production = [v for v in versions if v.current_stage == "Production"]
    stage = None
    if in_production:
        newest = max(in_production, key=lambda v: (v.last_updated_timestamp or 0, int(v.version)))
        stage = str(newest.version)
    return (str(alias) if alias is not None else None), stage


def decide(alias: str | None, stage: str | None, last_seen: ProductionState | None) -> str | None:
    """The serving version for one look at the registry (the rule in docs/architecture.md).

    Args:
        alias: version of the `production` alias now.
        stage: version in stage Production now.
        last_seen: the state at the previous look, or None at first sight.

    Returns:
        The version that should serve, or None.
    """
    if last_seen is None:
        winner, other = alias, stage
    else:
        alias_changed = alias != last_seen.alias_version
        stage_changed = stage != last_seen.stage_version
        if stage_changed and not alias_changed:
            winner, other = stage, alias
        elif alias_changed:
            winner, other = alias, stage
        else:
            winner, other = last_seen.version, alias or stage
    return winner if winner is not None else other


def resolve_production(
    client: Any, name: str, last_seen: ProductionState | None = None
) -> ProductionState:
    """Which version should serve now (two registry calls).

    Args:
        client: an `mlflow.MlflowClient` (None: a default one).
        name: registered model name.
        last_seen: the state returned by the previous call, or None at first sight (then
            the state recorded at the last promotion or sync stands in for it).

    Returns:
        The production state; `version` is None when neither alias nor stage names one.

    Raises:
        RegistryError: if the model does not exist.
    """
    client = _client(client)
    registered = _registered_model(client, name)
    alias, stage = _state_from(registered, _versions(client, name))
    if last_seen is None:
        last_seen = _last_synced(registered)
    return ProductionState(decide(alias, stage, last_seen), alias, stage)


def _last_synced(registered: Any) -> ProductionState | None:
    """The state recorded at the last mlcycle promotion or sync (tag `mlcycle.last_sync`).

    Used as the previous look at first sight, so a fresh replica decides like the running
    ones: a stage-only change made in the MLflow UI since then still wins over the alias.
    """
    raw = (registered.tags or {}).get(SYNC_TAG)
    if not raw:
        return None
    try:
        seen = json.loads(raw)
        return ProductionState(
            seen.get("alias") or seen.get("stage"), seen.get("alias"), seen.get("stage")
        )
    except (json.JSONDecodeError, AttributeError):
        return None


def _check_version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    _registered_model(client, name)
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        raise RegistryError(f"model {name!r} has no version {version!r}") from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _set_stage(client: Any, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():
        # Stages still work in MLflow 3 but warn on every call; aliases are set alongside.
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(name, version, stage, archive_existing_versions=True)


def _set_alias(client: Any, name: str, version: str, alias: str) -> None:
    """Point `alias` at `version`, and drop the other stage alias if it named this version."""
    aliases = _registered_model(client, name).aliases or {}
    for other in STAGES:
        if other != alias and str(aliases.get(other)) == str(version):
            client.delete_registered_model_alias(name, other)
    client.set_registered_model_alias(name, alias, version)


def _write_sync_tag(client: Any, name: str) -> None:
    registered = _registered_model(client, name)
    alias, stage = _state_from(registered, _versions(client, name))
    client.set_registered_model_tag(name, SYNC_TAG, json.dumps({"alias": alias, "stage": stage}))


def history(name: str, client: Any = None) -> list[dict]:
    """The promotion history of a registered model, oldest first.

    Args:
        name: registered model name.
        client: an `mlflow.MlflowClient` (None: a default one).

    Returns:
        Entries `{"version", "to", "at", "by", "reason", "previous"}`, and `gate` (the
        scores behind a gate's decision) where one was recorded.

    Raises:
        RegistryError: if the model does not exist.
    """
    registered = _registered_model(_client(client), name)
    raw = (registered.tags or {}).get(HISTORY_TAG)
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError:
        log.warning("ignoring unreadable %s tag on %s", HISTORY_TAG, name)
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _append_history(client: Any, name: str, entry: dict) -> None:
    entries = history(name, client) + [entry]
    entries = entries[-HISTORY_MAX_ENTRIES:]
    text = json.dumps(entries, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(entries) > 1:
        entries = entries[1:]
        text = json.dumps(entries, separators=(",", ":"))
    client.set_registered_model_tag(name, HISTORY_TAG, text)


def promote(
    name: str,
    version: str | int,
    to: str = "production",
    reason: str = "",
    by: str | None = None,
    client: Any = None,
    details: dict | None = None,
) -> dict:
    """Move a version to Production or Staging: stage and alias together, with tags and history.

    Promoting to production archives the previous Production version.

    Args:
        name: registered model name.
        version: the version to promote.
        to: "production" or "staging".
        reason: why (recorded in tags and history).
        by: who (defaults to the OS user).
        client: an `mlflow.MlflowClient` (None: a default one).
        details: a small JSON-able record kept in the history entry as `gate`, e.g. the
            champion/challenger scores behind the decision.

    Returns:
        The history entry recorded.

    Raises:
        RegistryError: for an unknown model, version or target.
    """
    target = to.strip().lower()
    if target not in STAGES:
        raise RegistryError(f"cannot promote to {to!r}: use 'production' or 'staging'")
    client = _client(client)
    version = str(version)
    _check_version(client, name, version)
    previous = resolve_production(client, name).version if target == "production" else None
    by = by or default_user()
    reason = (reason or "").strip()[:REASON_MAX_CHARS]
    entry = {"version": version, "to": target, "at": _now(), "by": by, "reason": reason}
    if target == "production":
        entry["previous"] = previous
    if details:
        entry["gate"] = details
    _set_stage(client, name, version, STAGES[target])
    _set_alias(client, name, version, target)
    tags = {"promoted_to": target, "promoted_at": entry["at"], "promoted_by": by}
    tags["promotion_reason"] = reason
    for key, value in tags.items():
        client.set_model_version_tag(name, version, f"mlcycle.{key}", value)
    _append_history(client, name, entry)
    _write_sync_tag(client, name)
    log.info("promoted %s v%s to %s (%s)", name, version, target, reason or "no reason given")
    return entry


def rollback(name: str, reason: str = "", by: str | None = None, client: Any = None) -> dict:
    """Return production to the version that was in production before the current one.

    Args:
        name: registered model name.
        reason: why (recorded).
        by: who (defaults to the OS user).
        client: an `mlflow.MlflowClient` (None: a default one).

    Returns:
        The history entry of the promotion that rolled back.

    Raises:
        RegistryError: for an unknown model, or when the history names no earlier version.
    """
    client = _client(client)
    current = resolve_production(client, name).version
    for entry in reversed(history(name, client)):
        candidate = entry.get("version")
        if entry.get("to") == "production" and candidate and str(candidate) != current:
            text = f"rollback from v{current}" + (f": {reason}" if reason else "")
            return promote(name, str(candidate), "production", text, by, client)
    raise RegistryError(
        f"nothing to roll back to: the history of {name!r} names no production version "
        f"other than the current one (v{current})"
    )


def sync(name: str, client: Any = None, by: str | None = None) -> ProductionState:
    """Make stage and alias agree on the version `resolve_production` picks.

    The previous look is the state stored at the last promotion or sync (tag
    `mlcycle.last_sync`), so a change made in the MLflow UI through either the stage or the
    alias wins.

    Args:
        name: registered model name.
        client: an `mlflow.MlflowClient` (None: a default one).
        by: who (defaults to the OS user), recorded if a promotion is written back.

    Returns:
        The production state after syncing (alias and stage equal).

    Raises:
        RegistryError: if the model does not exist.
    """
    client = _client(client)
    state = resolve_production(client, name)
    agree = state.alias_version == state.stage_version == state.version
    n_production = sum(v.current_stage == "Production" for v in _versions(client, name))
    if state.version is None or (agree and n_production == 1):
        return state
    source = "alias" if state.version == state.alias_version else "stage"
    promote(name, state.version, "production", f"sync: the {source} changed in MLflow", by, client)
    return resolve_production(client, name)
