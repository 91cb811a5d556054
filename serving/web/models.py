"""The Models page's data: every version of the registered model as one row.

In: the MLflow registry (versions, stages, aliases, tags of Contract 1, source run metrics) and
the version this worker serves. Out: `VersionRow`s, newest first, plus the promotion history.
Read-only; promotion goes through `mlcycle.core.registry`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from mlcycle.core.signing import SIGNATURE_TAG

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionRow:
    """One model version as the Models table shows it."""

    version: str
    stage: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    val_auc: float | None = None
    created: str = ""
    promoted_at: str = ""
    promoted_by: str = ""
    promoted_to: str = ""
    reason: str = ""
    run_id: str = ""
    run_url: str = ""
    version_url: str = ""
    serving: bool = False
    signed: bool = False
    refused: str = ""
    parent: str = ""
    method: str = ""
    weight_bytes: int | None = None

    @property
    def lineage(self) -> str:
        """`int8 of v3`, `fine-tuned from v3`, or "" for a version trained from scratch."""
        if not self.parent:
            return ""
        return (
            f"{self.method} of v{self.parent}" if self.method else f"fine-tuned from v{self.parent}"
        )

    @property
    def size(self) -> str:
        """The weights' size for people (`3.3 KB`), or "" where the version does not say."""
        if self.weight_bytes is None:
            return ""
        return (
            f"{self.weight_bytes} B"
            if self.weight_bytes < 1000
            else f"{self.weight_bytes / 1000:.1f} KB"
        )


def _time_text(millis: Any) -> str:
    if not millis:
        return ""
    return datetime.fromtimestamp(int(millis) / 1000, timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )


def _float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _run_auc(client: Any, run_id: str) -> tuple[float | None, str]:
    """Validation AUC and experiment id of a run (None, "" when unreadable)."""
    if not run_id:
        return None, ""
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # a deleted run must not break the page
        log.debug("run %s unreadable: %s", run_id, exc)
        return None, ""
    metrics = run.data.metrics or {}
    auc = _float(metrics.get("val_auc", metrics.get("validation_auc", metrics.get("auc"))))
    return auc, str(run.info.experiment_id)


def version_rows(
    client: Any,
    name: str,
    serving_version: str | None,
    ui_url: str,
    refused: dict[str, str] | None = None,
) -> list[VersionRow]:
    """All versions of `name`, newest first.

    Args:
        client: an `mlflow.MlflowClient`.
        name: registered model name.
        serving_version: the version this server answers with now.
        ui_url: base URL of the MLflow UI (links), "" for none.
        refused: versions this worker refused to load, with the reason (`unsigned`, ...).

    Returns:
        One row per version.
    """
    escaped = name.replace("'", "\\'")
    versions = list(client.search_model_versions(f"name='{escaped}'"))
    aliases: dict[str, list[str]] = {}
    try:
        for alias, version in (client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
    except Exception as exc:  # aliases are decoration; the table still renders
        log.debug("aliases of %s unreadable: %s", name, exc)
    ui = ui_url.rstrip("/")
    rows = [_row(client, name, v, aliases, serving_version, ui, refused or {}) for v in versions]
    rows.sort(key=lambda r: int(r.version) if r.version.isdigit() else 0, reverse=True)
    return rows


def _row(
    client: Any, name: str, v: Any, aliases: dict, serving: str | None, ui: str, refused: dict
) -> VersionRow:
    tags = dict(v.tags or {})
    run_id = str(tags.get("mlcycle.source_run_id") or v.run_id or "")
    auc = _float(tags.get("mlcycle.val_auc"))
    experiment = ""
    if auc is None or ui:
        run_auc, experiment = _run_auc(client, run_id)
        auc = auc if auc is not None else run_auc
    version = str(v.version)
    run_url = f"{ui}/#/experiments/{experiment}/runs/{run_id}" if ui and experiment else ""
    return VersionRow(
        version=version,
        stage=str(v.current_stage or "None"),
        aliases=tuple(sorted(aliases.get(version, []))),
        val_auc=auc,
        created=_time_text(v.creation_timestamp),
        promoted_at=str(tags.get("mlcycle.promoted_at", "")),
        promoted_by=str(tags.get("mlcycle.promoted_by", "")),
        promoted_to=str(tags.get("mlcycle.promoted_to", "")),
        reason=str(tags.get("mlcycle.promotion_reason", "")),
        run_id=run_id,
        run_url=run_url,
        version_url=f"{ui}/#/models/{quote(name, safe='')}/versions/{version}" if ui else "",
        serving=serving is not None and version == str(serving),
        signed=SIGNATURE_TAG in tags,
        refused=refused.get(version, ""),
        parent=str(tags.get("mlcycle.parent_version", "")),
        method=str(tags.get("mlcycle.compression.method", "")),
        weight_bytes=_int(tags.get("mlcycle.weight_bytes")),
    )
