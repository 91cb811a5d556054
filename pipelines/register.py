"""Step 6, register: the model version, its tags, Staging, and the champion/challenger gate.

In: the logged model's URI, its run, its version tags, the labelled rows to judge it on (the
challenger's test split, plus optionally the most recent labelled live rows), the registered
model name and the promotion margin. Out: a new registry version tagged `mlcycle.source_run_id`
and the given tags (`mlcycle.val_auc`, ...), signed with `MLCYCLE_SIGNING_KEY` when set
(`mlcycle.core.signing`, tag `mlcycle.signature`), moved to Staging; then the gate scores the
challenger and the production version (both loaded from the registry, `models:/<name>/<v>`) on
the same rows and promotes the challenger (stage + alias, via `mlcycle.core.registry.promote`)
only if there is no production version or its AUC beats production's by more than the margin.
Both scores and the decision are tagged on the challenger (`mlcycle.gate*`) and recorded in the
promotion history (entry field `gate`): a promotion to production, or a note in Staging.

Why not `mlflow.models.evaluate` with `validate_evaluation_results`: MLflow 3 dropped
`evaluate(baseline_model=...)`; its classifier evaluator takes a custom pyfunc's output as class
labels and computes ROC AUC only from a flavour's `predict_proba`, so it reports no AUC for this
probability-returning model; and `MetricThreshold.min_absolute_change` must be positive, so
margins of 0 (beat production at all) or below cannot be expressed. Scoring both versions here
with the numpy forward pass takes milliseconds.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from mlcycle.core import registry
from mlcycle.core.signing import sign_version
from pipelines import evaluate
from pipelines.settings import get_settings

log = logging.getLogger(__name__)

TEST, LIVE, SHADOW = "test", "live", "shadow"
SHADOW_MIN_ROWS = 100  # labelled shadow rows before shadow evidence can keep a challenger out


class GateError(ValueError):
    """The challenger cannot be judged on the rows given (the message says why)."""


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the champion/challenger gate.

    Attributes:
        version: the challenger.
        promoted: whether it went to production.
        reason: one line for people (also tag `mlcycle.gate`).
        production_before: the production version it was compared with, if any.
        challenger_auc: the challenger's AUC on the rows both versions scored.
        champion_auc: production's AUC on the same rows (NaN without a production version).
        rows: how many rows both versions scored (test split and live rows together).
        parts: per source (`test`, `live`): rows and both AUCs on those rows alone.
    """

    version: str
    promoted: bool
    reason: str
    production_before: str | None
    challenger_auc: float = math.nan
    champion_auc: float = math.nan
    rows: int = 0
    parts: dict = field(default_factory=dict)

    def details(self, margin: float) -> dict:
        """The compact record kept in the promotion history (entry field `gate`)."""
        return {
            "decision": "promoted" if self.promoted else "kept",
            "auc": _round(self.challenger_auc),
            "champion": self.production_before,
            "champion_auc": _round(self.champion_auc),
            "margin": margin,
            "rows": self.rows,
            "live_rows": self.parts.get(LIVE, {}).get("rows", 0),
        } | ({"shadow_rows": self.parts[SHADOW]["rows"]} if SHADOW in self.parts else {})


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def gate_rows(test: pd.DataFrame, live: pd.DataFrame | None = None) -> pd.DataFrame:
    """The gate's rows: the test split, then the labelled live rows, with a `_source` column."""
    parts = [test.assign(_source=TEST)]
    if live is not None and len(live):
        parts.append(live.assign(_source=LIVE))
    return pd.concat(parts, ignore_index=True)


def _python_model(model):
    """The model's own Python object when it has one (the TabularNetModel), else None."""
    from mlflow.exceptions import MlflowException

    try:
        return model.unwrap_python_model()
    except MlflowException:
        return None


def _known(spec: dict | None, rows: pd.DataFrame) -> np.ndarray:
    """Rows whose categories the model's spec knows (missing values count as known)."""
    ok = np.ones(len(rows), dtype=bool)
    for column in (spec or {}).get("categorical", []):
        if column["name"] in rows:  # a missing column is the model's error to report
            values = rows[column["name"]]
            known = values.isna() | values.astype(str).isin([str(c) for c in column["categories"]])
            ok &= known.to_numpy()
    return ok


def score(name: str, version: str, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Score raw rows with a registered version, loaded from `models:/<name>/<version>`.

    The model's own `predict` is used where it has one (what serving runs; pyfunc's schema
    enforcement would refuse integer columns with missing values, which the model imputes).
    Rows with a category the version never saw are left out, not failed.

    Args:
        name: registered model name.
        version: the version.
        rows: raw input columns (extra columns are ignored).

    Returns:
        (probability per row, NaN where not scored; mask of the scored rows).

    Raises:
        ValueError: from the model, for input it cannot score (e.g. a missing column).
        MlflowException: if the version cannot be loaded.
    """
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    python_model = _python_model(model)
    spec = getattr(python_model, "spec", None)
    mask = _known(spec, rows)
    proba = np.full(len(rows), np.nan)
    if mask.any():
        scored = rows[mask].reset_index(drop=True)
        raw = python_model.predict(None, scored) if spec else model.predict(scored)
        proba[mask] = np.asarray(raw, dtype=np.float64).ravel()
    return proba, mask


def _auc(y: np.ndarray, proba: np.ndarray) -> float:
    return evaluate.metrics(y, proba)["auc"] if len(y) else math.nan


def _parts(rows: pd.DataFrame, y, challenger, champion, common) -> dict:
    sources = rows["_source"].to_numpy() if "_source" in rows else np.full(len(rows), TEST)
    out = {}
    for source in (TEST, LIVE):
        pick = common & (sources == source)
        if pick.any():
            out[source] = {
                "rows": int(pick.sum()),
                "auc": _auc(y[pick], challenger[pick]),
                "champion_auc": _auc(y[pick], champion[pick]) if champion is not None else math.nan,
            }
    return out


def judge(
    client, name: str, version: str, rows: pd.DataFrame, target: str, margin: float
) -> GateDecision:
    """Score the challenger and production on the same rows and decide (no registry writes).

    Args:
        client: an `mlflow.MlflowClient`.
        name: registered model name.
        version: the challenger (registered).
        rows: labelled raw rows (`gate_rows` output, or any frame with the target as 0/1).
        target: the 0/1 target column.
        margin: required AUC improvement over production (may be negative).

    Returns:
        The decision.

    Raises:
        GateError: if the rows lack the target, the challenger cannot score them or is already
            the production version.
    """
    from mlflow.exceptions import MlflowException

    if target not in rows:
        raise GateError(f"the gate's rows have no target column {target!r}")
    y = rows[target].to_numpy().astype(int)
    try:
        challenger = score(name, version, rows)
    except (ValueError, MlflowException) as exc:
        raise GateError(f"challenger v{version} cannot score the gate's rows: {exc}") from exc
    if not challenger[1].any():
        raise GateError(f"challenger v{version} knows the categories of none of the gate's rows")
    current = registry.resolve_production(client, name).version
    if current == version:
        raise GateError(f"v{version} is already the production version of {name!r}")
    if current is None:
        proba, mask = challenger
        auc, n = _auc(y[mask], proba[mask]), int(mask.sum())
        reason = f"no production version yet; challenger AUC {auc:.4f} on {n} rows"
        parts = _parts(rows, y, proba, None, mask)
        return GateDecision(version, True, reason, None, auc, math.nan, n, parts)
    try:
        champion = score(name, current, rows)
    except (ValueError, MlflowException) as exc:
        log.warning("production v%s cannot score the gate's rows: %s", current, exc)
        champion = (np.full(len(rows), np.nan), np.zeros(len(rows), dtype=bool))
    return _compare(version, current, rows, y, challenger, champion, margin)


def _compare(version, current, rows, y, challenger, champion, margin: float) -> GateDecision:
    """The decision from both versions' (probabilities, scored mask) on the gate's rows."""
    (proba, mask), (champion_proba, champion_mask) = challenger, champion
    common = mask & champion_mask
    n = int(common.sum())
    if n == 0:
        auc = _auc(y[mask], proba[mask])
        reason = f"production v{current} cannot score the gate's rows; challenger AUC {auc:.4f}"
        return GateDecision(version, True, reason, current, auc, math.nan, 0, {})
    auc, champion_auc = _auc(y[common], proba[common]), _auc(y[common], champion_proba[common])
    parts = _parts(rows, y, proba, champion_proba, common)
    if math.isnan(auc) or math.isnan(champion_auc):
        reason = f"cannot compare on {n} rows: they hold one class"
        return GateDecision(version, False, reason, current, auc, champion_auc, n, parts)
    promoted = auc > champion_auc + margin
    reason = (
        f"challenger AUC {auc:.4f} {'>' if promoted else '<='} production v{current} "
        f"{champion_auc:.4f} + margin {margin:+.4f} on the same {n} rows"
    )
    if n < len(rows):
        reason += f" ({len(rows) - n} left out: unknown categories)"
    return GateDecision(version, promoted, reason, current, auc, champion_auc, n, parts)


def _tags(decision: GateDecision, margin: float) -> dict[str, str]:
    tags = {
        "mlcycle.gate": decision.reason,
        "mlcycle.gate_decision": "promoted" if decision.promoted else "kept",
        "mlcycle.gate_auc": f"{decision.challenger_auc:.6f}",
        "mlcycle.gate_champion": decision.production_before or "",
        "mlcycle.gate_champion_auc": f"{decision.champion_auc:.6f}",
        "mlcycle.gate_margin": f"{margin:+.6f}",
        "mlcycle.gate_rows": str(decision.rows),
    }
    live = decision.parts.get(LIVE)
    if live:
        tags["mlcycle.gate_live_rows"] = str(live["rows"])
        tags["mlcycle.gate_live_auc"] = f"{live['auc']:.6f}"
        tags["mlcycle.gate_champion_live_auc"] = f"{live['champion_auc']:.6f}"
    shadow = decision.parts.get(SHADOW)
    if shadow:
        tags["mlcycle.gate_shadow_rows"] = str(shadow["rows"])
        tags["mlcycle.gate_shadow_auc"] = f"{shadow['auc']:.6f}"
        tags["mlcycle.gate_champion_shadow_auc"] = f"{shadow['champion_auc']:.6f}"
    return tags


def shadow_evidence(log_url: str, name: str, version: str) -> dict | None:
    """Both versions' live AUC on the labelled rows `version` scored in shadow (`serving.
    shadow`, read through `mlcycle.core.shadowlog`), or None without such rows."""
    import time

    from mlcycle.core.logdb import LogError
    from mlcycle.core.shadowlog import live_auc, read_labelled_pairs

    try:
        pairs = read_labelled_pairs(log_url, name, 0.0, time.time() + 1.0, version)
    except LogError as exc:
        log.info("no shadow evidence for %s v%s: %s", name, version, exc)
        return None
    live = live_auc(pairs)
    if live["shadow_auc"] is None or live["production_auc"] is None:
        return None
    return {"rows": live["n"], "auc": live["shadow_auc"], "champion_auc": live["production_auc"]}


def _with_shadow(decision: GateDecision, shadow: dict, margin: float) -> GateDecision:
    """The decision with the shadow evidence recorded; with enough rows, a challenger that does
    not beat production there by the margin stays in Staging."""
    auc, champion, n = shadow["auc"], shadow["champion_auc"], shadow["rows"]
    note = f"shadow: live AUC {auc:.4f} vs production {champion:.4f} on the same {n} rows"
    parts = {**decision.parts, SHADOW: shadow}
    if decision.promoted and n >= SHADOW_MIN_ROWS and not auc > champion + margin:
        reason = f"{decision.reason}; kept by {note} (+ margin {margin:+.4f})"
        return replace(decision, promoted=False, reason=reason, parts=parts)
    return replace(decision, reason=f"{decision.reason}; {note}", parts=parts)


def gate(
    client,
    name: str,
    version: str,
    rows: pd.DataFrame,
    target: str = "default",
    margin: float = 0.0,
    live: pd.DataFrame | None = None,
    note: str = "",
    shadow_log_url: str | None = None,
) -> GateDecision:
    """Judge `version` against production on the same labelled rows, record it, promote it.

    This is what the lifecycle loop calls with recent labelled live rows: pass the challenger's
    test split as `rows` and the labelled live rows (never used to train or fine-tune it) as
    `live`; both versions are scored on all of them.

    Args:
        client: an `mlflow.MlflowClient` (on the same store as the global tracking URI, which
            `mlflow.pyfunc.load_model` uses).
        name: registered model name.
        version: the challenger (registered).
        rows: labelled raw rows: inputs and the target as 0/1.
        target: the target column.
        margin: required AUC improvement over production (may be negative).
        live: more labelled raw rows, e.g. the most recent labelled live rows.
        note: appended to the reason, e.g. the network's margin over its baseline.
        shadow_log_url: a prediction log with the challenger's shadow rows (default
            `MLCYCLE_GATE_SHADOW_LOG_URL`): both live AUCs on its labelled rows are recorded
            (`shadow_evidence`) and, from `SHADOW_MIN_ROWS` rows, must clear the margin too.

    Returns:
        The decision, also tagged on the version (`mlcycle.gate`, `mlcycle.gate_auc`,
        `mlcycle.gate_champion_auc`, ...) and recorded in the promotion history: a promotion
        to production, or (kept) a Staging entry with the reason.

    Raises:
        GateError: as `judge`.
    """
    decision = judge(client, name, version, gate_rows(rows, live), target, margin)
    shadow_log_url = shadow_log_url or get_settings().gate_shadow_log_url
    shadow = shadow_evidence(shadow_log_url, name, version) if shadow_log_url else None
    if shadow is not None:
        decision = _with_shadow(decision, shadow, margin)
    if note:
        decision = replace(decision, reason=f"{decision.reason}; {note}")
    for key, value in _tags(decision, margin).items():
        client.set_model_version_tag(name, version, key, value)
    to, verb = ("production", "gate") if decision.promoted else ("staging", "gate kept")
    details = decision.details(margin)
    registry.promote(
        name, version, to, f"{verb}: {decision.reason}", client=client, details=details
    )
    log.info(
        "gate for %s v%s: %s (%s)",
        name,
        version,
        "promoted" if decision.promoted else "kept in staging",
        decision.reason,
    )
    return decision


def add_version(client, model_uri: str, name: str, run_id: str, tags: dict, why: str) -> str:
    """Register the logged model, tag it, sign it (with `MLCYCLE_SIGNING_KEY`), stage it.

    The one registration path: training, fine-tuning, tuning and compression all use it, so
    every version they make carries `mlcycle.source_run_id` and (with a key) a signature.

    Args:
        client: an `mlflow.MlflowClient`.
        model_uri: URI of the logged pyfunc model.
        name: registered model name.
        run_id: the run that logged it.
        tags: version tags (`mlcycle.val_auc`, lineage, ...).
        why: the Staging entry's reason in the promotion history.

    Returns:
        The new version.
    """
    import mlflow

    mv = mlflow.register_model(model_uri, name)
    version = str(mv.version)
    for key, value in (tags | {"mlcycle.source_run_id": run_id}).items():
        client.set_model_version_tag(name, version, key, value)
    signing_key = get_settings().signing_key
    if signing_key:
        sign_version(client, name, version, signing_key)
    else:
        log.info("%s version %s registered unsigned (no MLCYCLE_SIGNING_KEY)", name, version)
    registry.promote(name, version, "staging", why, client=client)
    return version


def register(
    client,
    model_uri: str,
    name: str,
    run_id: str,
    tags: dict[str, str],
    rows: pd.DataFrame,
    target: str,
    margin: float,
    live: pd.DataFrame | None = None,
    note: str = "",
) -> GateDecision:
    """Register the logged model (`add_version`) and run the gate.

    Args:
        client: an `mlflow.MlflowClient`.
        model_uri: URI of the logged pyfunc model.
        name: registered model name.
        run_id: the run that logged it.
        tags: version tags (`mlcycle.val_auc`, `mlcycle.reference_uri`, lineage, ...).
        rows: the challenger's labelled test rows (inputs and 0/1 target).
        target: the target column.
        margin: promotion margin for the gate.
        live: labelled live rows the gate scores too (held out from training).
        note: appended to the gate's reason.

    Returns:
        The gate's decision.
    """
    version = add_version(client, model_uri, name, run_id, tags, f"trained in run {run_id}")
    return gate(client, name, version, rows, target, margin, live, note)
