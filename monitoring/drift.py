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

Importing Evidently costs more CPU than anything else in a check (~5 s here), so a check runs
the report in a `ReportWorker`: a child Python process started first thing, which imports
Evidently while the parent imports MLflow and reads the registry, the reference and the log (the
two halves take about as long, and run on two cores at once); the parent then sends it the two
samples, it runs the same report, saves the HTML and sends back the `DriftResult`. If the worker
cannot start or dies, the report runs in the parent.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
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
        column_type: `numerical` or `categorical`.
        method: the stat test Evidently used (e.g. `Wasserstein distance (normed)`).
        threshold: the test's threshold.
        score: the drift score (a distance, or a p-value for p-value tests).
        drifted: True if the column drifted.
    """

    column: str
    column_type: str
    method: str
    threshold: float | None
    score: float | None
    drifted: bool

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return {
            "type": self.column_type,
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


@contextmanager
def skip_discarded_widgets(columns: list[str]) -> Iterator[None]:
    """Skip the widgets Evidently draws and then throws away, while a report runs.

    `ValueDrift` draws its plots while it calculates (`ValueDriftCalculation._render`), but
    inside a `DataDriftPreset` those plots are dropped: the preset renders its own drift table.
    That is ~20% of the report's time. Inside this block the `ValueDrift`s of `columns` (the
    preset's) draw nothing; the standalone `ValueDrift("prediction")` still does. The HTML
    report is unchanged (tests/unit/monitoring/test_drift_report.py compares it); an Evidently
    without that method is left alone.

    Args:
        columns: the preset's columns.
    """
    from evidently.metrics import column_statistics

    calc = getattr(column_statistics, "ValueDriftCalculation", None)
    original = getattr(calc, "_render", None)
    if calc is None or original is None:
        yield
        return
    preset = set(columns)

    def render(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.metric, "column", None) in preset:
            return []
        return original(self, *args, **kwargs)

    calc._render = render
    try:
        yield
    finally:
        calc._render = original


def run_report(
    current: Any, reference: Any, ref: ModelRef, settings: Any, lean: bool = True
) -> tuple[Any, DriftResult]:
    """Run the drift report and summarise it.

    Args:
        current: the window's typed rows.
        reference: the reference's typed rows.
        ref: model reference with column types.
        settings: monitoring settings.
        lean: skip the widgets Evidently would throw away (`skip_discarded_widgets`).

    Returns:
        (Evidently snapshot, drift result).
    """
    from evidently import Dataset

    with_prediction = _has_values(current, "prediction") and _has_values(reference, "prediction")
    cols = ref.columns + (["prediction"] if with_prediction else [])
    definition = _definition(ref, with_prediction)
    report = build_report(ref, settings, with_prediction)
    with skip_discarded_widgets(ref.columns) if lean else nullcontext():
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


def _metric_type(metric: dict) -> str:
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
        metric_type, config = _metric_type(metric), metric.get("config") or {}
        if metric_type == _DRIFTED_COUNT:
            share = float((metric.get("value") or {}).get("share", 0.0))
        elif metric_type == _VALUE_DRIFT:
            name = config.get("column")
            score = metric.get("value")
            by_column[name] = ColumnDrift(
                column=name,
                column_type="categorical" if name in ref.categorical else "numerical",
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


def render_report(
    current: Any, reference: Any, ref: ModelRef, settings: Any, html: Path
) -> DriftResult:
    """Run the drift report, save its HTML and summarise it.

    Args:
        current: the window's typed rows.
        reference: the reference's typed rows.
        ref: model reference with column types.
        settings: monitoring settings.
        html: where the Evidently HTML report goes.

    Returns:
        The drift result.
    """
    snapshot, result = run_report(current, reference, ref, settings)
    snapshot.save_html(str(html))
    if ref.not_judged:
        _note_not_judged(html, ref.not_judged)
    return result


def _note_not_judged(html: Path, columns: list[str]) -> None:
    """Say at the top of the report which input columns it could not judge (not logged)."""
    from html import escape

    note = (
        '<p style="margin:8px;padding:8px;background:#fff4e5;font-family:sans-serif">'
        "Not judged: input columns left out of the prediction log (MLCYCLE_LOG_DROP_COLUMNS): "
        f"{escape(', '.join(columns))}</p>"
    )
    text = html.read_text(encoding="utf-8")
    at = text.find("<body")
    at = text.find(">", at) + 1 if at >= 0 else 0
    html.write_text(text[:at] + note + text[at:], encoding="utf-8")


_WORKER_MAIN = "from monitoring.drift import serve_worker; serve_worker()"


class ReportWorker:
    """`render_report` in a child Python process that imports Evidently as soon as it starts.

    Start it before the slow, Evidently-free part of a check, call `render` once, and `close`
    it in every case (a check that cannot judge kills it unused).
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # `monitoring` importable from anywhere
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER_MAIN],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            log.warning(
                "could not start the Evidently worker (%s); the report runs in-process", exc
            )

    def render(
        self, current: Any, reference: Any, ref: ModelRef, settings: Any, html: Path
    ) -> DriftResult:
        """`render_report` in the worker (in this process if the worker is gone or fails)."""
        request = {
            "current": current,
            "reference": reference,
            "ref": ref,
            "settings": settings,
            "html": html,
        }
        reply = self._ask(request)
        if reply is None or "error" in reply:
            detail = "it exited" if reply is None else reply["error"]
            log.warning("the Evidently worker failed (%s); running the report in-process", detail)
            return render_report(current, reference, ref, settings, html)
        return reply["result"]

    def _ask(self, request: dict) -> dict | None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            return None
        try:
            pickle.dump(request, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.close()
            return pickle.load(proc.stdout)  # the worker exits by itself; `close` reaps it
        except (OSError, EOFError, pickle.UnpicklingError):
            self.close()
            return None

    def close(self) -> None:
        """Stop the worker (at once if it has not answered) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None and not (proc.stdin and proc.stdin.closed):
            proc.kill()
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:  # unflushed request to a dead worker
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> ReportWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _preload() -> None:
    """Import what the report needs, so the request finds it loaded."""
    import evidently  # noqa: F401
    import pandas  # noqa: F401
    from evidently.metrics import DatasetMissingValueCount, ValueDrift  # noqa: F401
    from evidently.presets import DataDriftPreset  # noqa: F401


def serve_worker() -> None:
    """Body of the worker process: preload Evidently, read one pickled request from stdin,
    answer `{"result": DriftResult}` or `{"error": traceback}` on the original stdout.

    Stray prints go to stderr (stdout carries the answer); Ctrl-C is left to the parent, which
    kills the worker when it does not need it. No request (stdin closed): exit quietly. The
    process ends here (`os._exit`) once it has answered.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _preload()
    try:
        request = pickle.load(sys.stdin.buffer)
    except EOFError:
        return
    try:
        reply: dict = {"result": render_report(**request)}
    except Exception:  # sent to the parent, which logs it and runs the report itself
        reply = {"error": traceback.format_exc()}
    try:
        with answer:
            pickle.dump(reply, answer, protocol=pickle.HIGHEST_PROTOCOL)
    except BrokenPipeError:  # the parent is gone: nobody to answer
        pass
    sys.stderr.flush()
    os._exit(0)  # skip tearing down Evidently's modules: nothing is left to clean up
