"""Step 6, register: the model version, its tags, Staging, and the champion/challenger gate.

In: the logged model's URI, its run, validation/test AUC, the reference sample URI, the
registered model name and the promotion margin. Out: a new registry version tagged
`mlcycle.val_auc`, `mlcycle.test_auc`, `mlcycle.reference_uri`, `mlcycle.source_run_id`, moved
to Staging, then promoted to Production (stage + alias, via `mlcycle.core.registry.promote`) only if
there is no production version or its validation AUC beats production's by more than the margin.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from mlcycle.core import registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the champion/challenger gate."""

    version: str
    promoted: bool
    reason: str
    production_before: str | None


def _production_auc(client, name: str, version: str) -> float:
    """Validation AUC of a registered version: its tag, else its run's `val_auc` metric."""
    mv = client.get_model_version(name, version)
    value = (mv.tags or {}).get("mlcycle.val_auc")
    if value is None and mv.run_id:
        value = client.get_run(mv.run_id).data.metrics.get("val_auc")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def gate(client, name: str, version: str, val_auc: float, margin: float) -> GateDecision:
    """Promote `version` to production iff it beats the production version by `margin`.

    Args:
        client: an `mlflow.MlflowClient`.
        name: registered model name.
        version: the challenger (already registered, in Staging).
        val_auc: the challenger's validation AUC.
        margin: required improvement over production's validation AUC (may be negative).

    Returns:
        The decision; the reason is also recorded on the version (`mlcycle.gate`).
    """
    current = registry.resolve_production(client, name).version
    if current is None:
        promoted, reason = True, "no production version yet"
    else:
        champion = _production_auc(client, name, current)
        promoted = math.isnan(champion) or val_auc > champion + margin
        verb = ">" if promoted else "<="
        reason = (
            f"challenger val AUC {val_auc:.4f} {verb} production v{current} "
            f"{champion:.4f} + margin {margin:+.4f}"
        )
    client.set_model_version_tag(name, version, "mlcycle.gate", reason)
    if promoted:
        registry.promote(name, version, "production", f"gate: {reason}", client=client)
    log.info(
        "gate for %s v%s: %s (%s)",
        name,
        version,
        "promoted" if promoted else "kept in staging",
        reason,
    )
    return GateDecision(version, promoted, reason, current)


def register(
    client,
    model_uri: str,
    name: str,
    run_id: str,
    val_auc: float,
    test_auc: float,
    reference_uri: str,
    margin: float,
) -> GateDecision:
    """Register the logged model, tag it, stage it and run the gate.

    Args:
        client: an `mlflow.MlflowClient`.
        model_uri: URI of the logged pyfunc model.
        name: registered model name.
        run_id: the training run.
        val_auc: validation AUC of the model.
        test_auc: test AUC of the model.
        reference_uri: URI of the reference sample.
        margin: promotion margin for the gate.

    Returns:
        The gate's decision.
    """
    import mlflow

    mv = mlflow.register_model(model_uri, name)
    version = str(mv.version)
    tags = {
        "mlcycle.val_auc": f"{val_auc:.6f}",
        "mlcycle.test_auc": f"{test_auc:.6f}",
        "mlcycle.reference_uri": reference_uri,
        "mlcycle.source_run_id": run_id,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    registry.promote(name, version, "staging", f"trained in run {run_id}", client=client)
    return gate(client, name, version, val_auc, margin)
