"""The Evidently drift report of a window against the reference, and its summary.

In: the current and reference DataFrames (typed by `reference.coerce`), the column types and the
thresholds from the settings. Out: the Evidently snapshot (for the HTML) and a `DriftResult`
with per-column method/threshold/score/verdict, the share of drifted input columns, the
dataset-level verdict, prediction (score) drift and missing values.

Evidently 0.7 API: `Report([DataDriftPreset(...), ValueDrift("prediction"),
DatasetMissingValueCount()])` run on `Dataset.from_pandas(..., DataDefinition(...))`. Results are
read by metric type and column from the snapshot's dict, never by list position; a column's
verdict is its `Value Drift` test status (FAIL means drifted), which is right for both
p-value tests and distances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from monitoring.reference import ModelRef

log = logging.getLogger(__name__)

_VALUE_DRIFT = "ValueDrift"
_DRIFTED_COUNT = "DriftedColumnsCount"


@dataclass
class ColumnDrift:
    """Drift of one column as Evidently judged it.

    Attributes:
        column: column name.
        kind: `numerical` or `categorical`.
        method: the stat test Evidently used (e.g. `Wasserstein distance (normed)`).
        threshold: the test's threshold.
        score: the drift score (a distance, or a p-value for p-value tests).
        drifted: True if the column drifted.
    """

    column: str
    kind: str
    method: str
    threshold: float | None
    score: float | None
    drifted: bool

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return {
            "type": self.kind,
            "method": self.method,
            "threshold": self.threshold,
            "score": self.score,
            "drifted": self.drifted,
        }


@dataclass
class DriftResult:
    """The outcome of one drift comparison.

    Attributes:
        columns: per input column drift, signature order.
        drift_share: share of drifted input columns.
        drift_share_threshold: the dataset-level verdict threshold.
        dataset_drift: True when `drift_share >= drift_share_threshold`.
        prediction: drift of the model's score, if both sides have it.
        missing: per column missing-value share, `{column: {"current": x, "reference": y}}`.
    """

    columns: list[ColumnDrift]
    drift_share: float
    drift_share_threshold: float
    dataset_drift: bool
    prediction: ColumnDrift | None = None
    missing: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted input columns."""
        return [c.column for c in self.columns if c.drifted]


def build_report(ref: ModelRef, settings: Any, with_prediction: bool) -> Any:
    """The Evidently report for `ref`'s columns (not run yet).

    Args:
        ref: model reference with column types.
        settings: monitoring settings (drift share, methods, thresholds).
        with_prediction: also compare the `prediction` column.

    Returns:
        An `evidently.Report`.
    """
    from evidently import Report
    from evidently.metrics import DatasetMissingValueCount, ValueDrift
    from evidently.presets import DataDriftPreset

    metrics: list[Any] = [
        DataDriftPreset(
            columns=ref.columns,
            drift_share=settings.drift_share,
            num_method=settings.num_method,
            cat_method=settings.cat_method,
            num_threshold=settings.num_threshold,
            cat_threshold=settings.cat_threshold,
        )
    ]
    if with_prediction:
        metrics.append(ValueDrift(column="prediction"))
    metrics.append(DatasetMissingValueCount())
    return Report(metrics, include_tests=True)


def _definition(ref: ModelRef, with_prediction: bool) -> Any:
    from evidently import DataDefinition

    numerical = ref.numerical + (["prediction"] if with_prediction else [])
    return DataDefinition(numerical_columns=numerical, categorical_columns=ref.categorical)


def run_report(
    current: Any, reference: Any, ref: ModelRef, settings: Any
) -> tuple[Any, DriftResult]:
    """Run the drift report and summarise it.

    Args:
        current: the window's typed rows.
        reference: the reference's typed rows.
        ref: model reference with column types.
        settings: monitoring settings.

    Returns:
        (Evidently snapshot, drift result).
    """
    from evidently import Dataset

    with_prediction = _has_values(current, "prediction") and _has_values(reference, "prediction")
    cols = ref.columns + (["prediction"] if with_prediction else [])
    definition = _definition(ref, with_prediction)
    report = build_report(ref, settings, with_prediction)
    snapshot = report.run(
        current_data=Dataset.from_pandas(current[cols], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[cols], data_definition=definition),
    )
    result = summarise(snapshot.dict(), ref, settings.drift_share)
    result.missing = missing_shares(current, reference, ref.columns)
    return snapshot, result


def _has_values(frame: Any, column: str) -> bool:
    return column in frame.columns and bool(frame[column].notna().any())


def _failed_metric_ids(snapshot_dict: dict) -> set[str]:
    failed = set()
    for test in snapshot_dict.get("tests", []):
        metric_id = (test.get("metric_config") or {}).get("metric_id")
        if metric_id and test.get("status") == "FAIL":
            failed.add(metric_id)
    return failed


def _metric_kind(metric: dict) -> str:
    return str((metric.get("config") or {}).get("type", "")).rsplit(":", 1)[-1]


def summarise(snapshot_dict: dict, ref: ModelRef, drift_share_threshold: float) -> DriftResult:
    """Read the snapshot's results by metric type and column name.

    Args:
        snapshot_dict: `Snapshot.dict()`.
        ref: model reference with column types.
        drift_share_threshold: the dataset-level verdict threshold.

    Returns:
        The drift result (missing values not filled in).
    """
    failed = _failed_metric_ids(snapshot_dict)
    by_column: dict[str, ColumnDrift] = {}
    share = None
    for metric in snapshot_dict.get("metrics", []):
        kind, config = _metric_kind(metric), metric.get("config") or {}
        if kind == _DRIFTED_COUNT:
            share = float((metric.get("value") or {}).get("share", 0.0))
        elif kind == _VALUE_DRIFT:
            name = config.get("column")
            score = metric.get("value")
            by_column[name] = ColumnDrift(
                column=name,
                kind="categorical" if name in ref.categorical else "numerical",
                method=str(config.get("method")),
                threshold=config.get("threshold"),
                score=None if score is None else float(score),
                drifted=metric.get("id") in failed,
            )
    columns = [by_column[c] for c in ref.columns if c in by_column]
    if share is None:  # the preset always yields it; recompute rather than guess if it did not
        share = sum(c.drifted for c in columns) / max(len(columns), 1)
    return DriftResult(
        columns=columns,
        drift_share=share,
        drift_share_threshold=drift_share_threshold,
        dataset_drift=share >= drift_share_threshold,
        prediction=by_column.get("prediction"),
    )


def missing_shares(current: Any, reference: Any, columns: list[str]) -> dict[str, dict[str, float]]:
    """Share of missing values per column on both sides.

    Args:
        current: the window's rows.
        reference: the reference rows.
        columns: columns to count.

    Returns:
        `{column: {"current": share, "reference": share}}`.
    """
    return {
        c: {
            "current": float(current[c].isna().mean()) if len(current) else 0.0,
            "reference": float(reference[c].isna().mean()) if len(reference) else 0.0,
        }
        for c in columns
    }
