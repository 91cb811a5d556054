"""One live-performance check end to end: labelled log + registry baselines -> metrics -> outputs.

In: the prediction log's URL, a model name, a time range and a window length, the reports
folder and the MLflow experiment (explicit arguments: the CLI and schedules pass them from the
settings). Out: the JSON/HTML reports, `performance.prom` and one MLflow run per served
version (`monitoring.perfreport.publish`), and an `Outcome` whose exit code is 0 (no alert),
1 (a version's live AUC is below its validation AUC by more than the margin) or 2 (could not
judge: missing log, no served rows in the range, unreadable registry).

Baselines per served version (`load_baselines`): the validation AUC (version tag
`mlcycle.val_auc`, else its run's `val_auc` metric) and the CBPE calibration, fitted on the
sample the version names with tag `mlcycle.holdout_uri` (a holdout: the right data for it),
else on its training reference sample (`mlcycle.reference_uri`, which holds the target and
the model's `prediction`; in-sample, so the estimate comes out a little optimistic; the
calibration text in the report says which was used).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from mlcycle.core.labelled import read_labelled
from mlcycle.core.logdb import LogError
from monitoring.job import EXIT_CANNOT_JUDGE, Outcome
from monitoring.performance import Calibrator, evaluate, fit_calibrator
from monitoring.reference import REFERENCE_TAG, ModelRefError, read_sample

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ALERT = 0, 1
HOLDOUT_TAG = "mlcycle.holdout_uri"
VAL_AUC_TAG = "mlcycle.val_auc"


@dataclass(frozen=True)
class Baseline:
    """What a version's live figures are compared with.

    Attributes:
        validation_auc: the version's validation AUC (None when the registry has none).
        calibrator: its CBPE calibration (identity, with the reason, when none can be fitted).
    """

    validation_auc: float | None
    calibrator: Calibrator


def _validation_auc(client: Any, mv: Any) -> float | None:
    value = (mv.tags or {}).get(VAL_AUC_TAG)
    if value is None and mv.run_id:
        value = client.get_run(mv.run_id).data.metrics.get("val_auc")
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _calibrator(mv: Any, what: str, target: str) -> Calibrator:
    tags = mv.tags or {}
    uri, source = tags.get(HOLDOUT_TAG), "holdout sample"
    if not uri:
        uri, source = tags.get(REFERENCE_TAG), "training reference sample (in-sample)"
    if not uri and mv.run_id:
        uri = f"runs:/{mv.run_id}/reference/reference.parquet"
    if not uri:
        return Calibrator(method=f"identity: {what} names no holdout or reference sample")
    try:
        frame = read_sample(uri, f"the {source} of {what}")
    except ModelRefError as exc:
        log.warning("%s; CBPE uses the served probabilities as they are", exc)
        return Calibrator(method=f"identity: {exc}")
    if "prediction" not in frame.columns or target not in frame.columns:
        return Calibrator(method=f"identity: the {source} of {what} has no prediction/{target}")
    fitted = fit_calibrator(frame["prediction"], frame[target])
    if fitted.method != "isotonic":
        return fitted
    return Calibrator(fitted.x, fitted.y, fitted.n_holdout, f"isotonic on the {source}")


def load_baselines(
    model_name: str, versions: list[str], client: Any = None, target: str = "default"
) -> dict[str, Baseline]:
    """The validation AUC and CBPE calibration of each version (see the module docstring).

    Args:
        model_name: registered model name.
        versions: the served versions.
        client: an `MlflowClient` (default: one on the current tracking URI).
        target: the label column of the holdout/reference sample.

    Returns:
        `{version: Baseline}`; a version the registry does not know gets no validation AUC
        and the identity calibration.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    client = client or mlflow.MlflowClient()
    out = {}
    for version in versions:
        what = f"{model_name} v{version}"
        try:
            mv = client.get_model_version(model_name, str(version))
        except MlflowException:
            out[version] = Baseline(None, Calibrator(method=f"identity: {what} is not registered"))
            continue
        out[version] = Baseline(_validation_auc(client, mv), _calibrator(mv, what, target))
    return out


def check(
    log_url: str,
    model_name: str,
    start: float,
    end: float,
    window_s: float,
    reports_dir: Any,
    experiment: str | None = "monitoring",
    margin: float = 0.05,
    min_labelled: int = 100,
    baselines: dict[str, Baseline] | None = None,
    now: float | None = None,
) -> Outcome:
    """Run one live-performance check (what `mlcycle performance --since 1d` does).

    Args:
        log_url: the prediction log's SQLAlchemy URL.
        model_name: registered model name.
        start: range start (Unix time, inclusive).
        end: range end (Unix time, exclusive).
        window_s: window length in seconds (e.g. 3600 for hourly figures).
        reports_dir: the reports folder.
        experiment: MLflow experiment for the runs (None: files only).
        margin: alert when live AUC < validation AUC - margin.
        min_labelled: fewest labelled rows of a version for its live AUC to count.
        baselines: per version (default: `load_baselines` from the registry).
        now: the check's time (default: now).

    Returns:
        The outcome (exit code 0, 1 or 2 with a message; the summary unless 2). Could-not-judge
        conditions do not raise.
    """
    from pathlib import Path

    from monitoring.perfreport import build_summary, publish

    now = time.time() if now is None else now
    try:
        frame = read_labelled(log_url, model_name, start, end)
    except LogError as exc:
        return Outcome(EXIT_CANNOT_JUDGE, f"cannot judge live performance: {exc}")
    if frame.empty:
        return Outcome(
            EXIT_CANNOT_JUDGE,
            f"cannot judge live performance: no rows of {model_name} served in the range",
        )
    versions = sorted(set(frame["model_version"]))
    if baselines is None:
        try:
            baselines = load_baselines(model_name, versions)
        except Exception as exc:  # an unreachable registry is a could-not-judge condition
            log.warning("cannot read the registry", exc_info=True)
            return Outcome(EXIT_CANNOT_JUDGE, f"cannot read the registry: {exc}")
    results = evaluate(
        frame["ts"],
        frame["model_version"],
        frame["prediction"],
        frame["label"],
        window_s,
        calibrators={v: b.calibrator for v, b in baselines.items()},
        validation_auc={
            v: b.validation_auc for v, b in baselines.items() if b.validation_auc is not None
        },
        margin=margin,
        min_labelled=min_labelled,
        start=start,
        end=end,
    )
    summary = build_summary(model_name, results, start, end, window_s, margin, min_labelled, now)
    publish(Path(reports_dir), summary, experiment)
    code = EXIT_ALERT if summary["alerts"] else EXIT_OK
    return Outcome(code, describe(summary), summary)


def describe(summary: dict) -> str:
    """One line per version, e.g. `credit-risk v2: live AUC 0.712 (1200/5000 labelled, 24%),
    estimated 0.790, validation 0.801: ALERT`."""

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = []
    for version in summary["versions"]:
        overall = version["overall"]
        verdict = "ALERT" if version["alert"] else "ok"
        lines.append(
            f"{summary['model_name']} v{version['version']}: live AUC {fmt(overall['auc'])} "
            f"({overall['n_labelled']}/{overall['n_predictions']} labelled, "
            f"{overall['label_coverage']:.0%}), estimated {fmt(overall['estimated_auc'])}, "
            f"validation {fmt(version['validation_auc'])}: {verdict}"
        )
    return "\n".join(lines)
