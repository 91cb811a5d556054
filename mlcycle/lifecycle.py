"""The lifecycle loop: labelled live rows → fine-tune → gate → promote, on drift or on demand.

In: the prediction log (served rows and their labels, `mlcycle.core.labelled`), the latest drift
verdict (`<reports>/latest.json`), a live-performance check run now (`monitoring.perfjob`),
and the registry. Out: a fine-tuned version gated on the same rows as production and promoted
when it wins (serving follows the alias), or the recorded reason why not. Every decision is an
MLflow run in the `monitoring` experiment, `retrain-on-drift`, whose tags link the drift run,
the performance run, the training run and the model version; the training run and the version
carry the decision run's id back (`mlcycle.retrain_run_id`).

Part of the top layer: it wires monitoring (what happened) to training (what to do about it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RUN_NAME = "retrain-on-drift"
EXIT_PROMOTED, EXIT_NOT_PROMOTED, EXIT_SKIPPED = 0, 1, 3


@dataclass(frozen=True)
class LoopOptions:
    """What one pass of the loop may do (see `mlcycle retrain-on-drift --help`).

    Attributes:
        since_s: labelled rows served this recently are used.
        min_labels: fewer labelled rows than this: nothing is trained.
        gate_share: the most recent share of the labelled rows, held out from fine-tuning
            and added to the gate's rows (both models are scored on them).
        drift_max_age_s: a drift verdict older than this does not trigger.
        performance_margin: live AUC below validation AUC by more than this triggers.
        promote_margin: the new version must beat production by more on the gate's rows.
        force: train even without a trigger.
        epochs: most fine-tuning epochs.
    """

    since_s: float = 7 * 86_400
    min_labels: int = 500
    gate_share: float = 0.2
    drift_max_age_s: float = 86_400
    performance_margin: float = 0.05
    promote_margin: float = 0.0
    force: bool = False
    epochs: int = 30


@dataclass
class LoopResult:
    """What one pass decided, and the ids that link it."""

    action: str  # promoted | not promoted | skipped
    reason: str
    triggers: list[str] = field(default_factory=list)
    labelled_rows: int = 0
    links: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 promoted, 1 trained but not promoted, 3 skipped (no trigger or too few labels)."""
        return {"promoted": EXIT_PROMOTED, "not promoted": EXIT_NOT_PROMOTED}.get(
            self.action, EXIT_SKIPPED
        )

    def line(self) -> str:
        """One line for people."""
        why = f" (triggers: {', '.join(self.triggers)})" if self.triggers else ""
        return f"{self.action}: {self.reason}{why}"


def drift_trigger(reports_dir: Path, model_name: str, max_age_s: float, now: float) -> dict:
    """The latest drift verdict if it says drift, is about `model_name` and is recent; else {}."""
    try:
        latest = json.loads((reports_dir / "latest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    recent = now - float(latest.get("timestamp") or 0) <= max_age_s
    if latest.get("model_name") == model_name and latest.get("dataset_drift") and recent:
        return latest
    return {}


def performance_check(settings: Any, model_name: str, opts: LoopOptions, now: float):
    """Run the live-performance check over the loop's window now; its outcome."""
    from monitoring.perfjob import check

    return check(
        settings.prediction_log_url,
        model_name,
        now - opts.since_s,
        now,
        3_600,
        # Its own folder: the loop's week-long check must not replace the performance job's
        # latest figures (web page, performance.prom) until the job's next run.
        Path(settings.reports_dir) / "retrain-checks",
        experiment=settings.experiment if settings.log_to_mlflow else None,
        margin=opts.performance_margin,
        now=now,
    )


def split_recent(rows: Any, share: float) -> tuple[Any, Any]:
    """(older rows to fine-tune on, the most recent `share` for the gate only)."""
    n_gate = max(1, int(round(len(rows) * share)))
    return rows.iloc[:-n_gate].reset_index(drop=True), rows.iloc[-n_gate:].reset_index(drop=True)


def _triggers(settings, model_name: str, opts: LoopOptions, now: float) -> tuple[list, dict]:
    links, triggers = {}, []
    drift = drift_trigger(Path(settings.reports_dir), model_name, opts.drift_max_age_s, now)
    if drift:
        triggers.append(f"drift ({', '.join(drift.get('drifted_columns') or []) or 'dataset'})")
        links["mlcycle.drift_run_id"] = str(drift.get("mlflow_run_id") or "")
    perf = performance_check(settings, model_name, opts, now)
    if perf.summary is not None:
        runs = perf.summary.get("mlflow_run_ids") or {}
        if runs:
            links["mlcycle.performance_run_ids"] = json.dumps(runs)
        triggers += [f"live AUC below validation (v{v})" for v in perf.summary.get("alerts", [])]
    if opts.force:
        triggers.append("forced")
    return triggers, links


def run_once(settings: Any, model_name: str, opts: LoopOptions) -> LoopResult:
    """One pass: judge the triggers, fine-tune on labelled live rows, gate, promote or not.

    Args:
        settings: monitoring settings (log URL, reports folder, experiment).
        model_name: registered model name.
        opts: the loop's options.

    Returns:
        The decision, also recorded as a `retrain-on-drift` run (see the module docstring).
    """
    now = time.time()
    triggers, links = _triggers(settings, model_name, opts, now)
    result = LoopResult("skipped", "", triggers, links=links)
    if not triggers:
        result.reason = "no drift verdict and live AUC within the margin: nothing to retrain"
        return _record(settings, model_name, result, opts)
    from pipelines.data import DataError
    from pipelines.finetune import rows_from_log
    from pipelines.register import GateError

    try:
        rows = rows_from_log(
            settings.prediction_log_url, model_name, "production", opts.since_s, now
        )
        target = rows.attrs["target"]
        result.labelled_rows = len(rows)
        if len(rows) < opts.min_labels:
            result.reason = f"only {len(rows)} labelled rows in the window (< {opts.min_labels})"
        elif rows[target].nunique() < 2:
            result.reason = "the labelled rows hold one class only: cannot fine-tune or gate"
        else:
            return _finetune(settings, model_name, opts, result, rows, target)
    except (DataError, GateError) as exc:  # unusable rows or parent: a decision, not a crash
        result.action, result.reason = "not promoted", f"cannot fine-tune: {exc}"
    return _record(settings, model_name, result, opts)


def _finetune(settings, model_name, opts: LoopOptions, result: LoopResult, rows, target):
    from pipelines.finetune import FinetuneConfig, finetune

    train, gate = split_recent(rows, opts.gate_share)
    window = f"log, last {opts.since_s / 86_400:g} d"
    cfg = FinetuneConfig(
        model_name=model_name,
        target=target,
        epochs=opts.epochs,
        margin=opts.promote_margin,
        data_window=window,
        experiment=settings.experiment,
    )
    done = finetune(train, "production", cfg, gate_rows=gate)
    result.action = "promoted" if done.promoted else "not promoted"
    result.reason = f"v{done.version} from v{done.parent_version}: {done.reason}"
    result.links.update(
        {
            "mlcycle.training_run_id": done.run_id,
            "mlcycle.model_version": str(done.version),
            "mlcycle.parent_version": str(done.parent_version),
        }
    )
    return _record(settings, model_name, result, opts)


def _record(settings, model_name: str, result: LoopResult, opts: LoopOptions) -> LoopResult:
    """The decision as a `retrain-on-drift` run; its id on the training run and version."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment)
    experiment_id = (
        experiment.experiment_id if experiment else client.create_experiment(settings.experiment)
    )
    tags = {
        "mlflow.runName": RUN_NAME,
        "mlcycle.job": RUN_NAME,
        "mlcycle.model_name": model_name,
        "mlcycle.decision": result.action,
        "mlcycle.reason": result.reason[:4_000],
        "mlcycle.triggers": ", ".join(result.triggers) or "none",
        **{k: v for k, v in result.links.items() if v},
    }
    run = client.create_run(experiment_id, tags=tags)
    client.log_param(run.info.run_id, "labelled_rows", result.labelled_rows)
    client.log_param(run.info.run_id, "since_s", opts.since_s)
    client.set_terminated(run.info.run_id)
    result.links["mlcycle.retrain_run_id"] = run.info.run_id
    if "mlcycle.training_run_id" in result.links:
        client.set_tag(
            result.links["mlcycle.training_run_id"], "mlcycle.retrain_run_id", run.info.run_id
        )
        client.set_model_version_tag(
            model_name,
            result.links["mlcycle.model_version"],
            "mlcycle.retrain_run_id",
            run.info.run_id,
        )
    log.info("retrain-on-drift: %s", result.line())
    return result
