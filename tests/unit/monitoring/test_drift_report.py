"""The Evidently report on small frames: shifted columns are named, clean data is not drifted;
the lean report (discarded widgets skipped) has the same HTML and results; the report worker
process gives the same result as the report in-process, and falls back to it when it dies."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.drift import ReportWorker, render_report, run_report, summarise
from monitoring.reference import ModelRef, coerce
from monitoring.settings import Settings
from tests.helpers import descendants


def _data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(shift, 1, n),
            "b": rng.normal(0, 1, n),
            "c": rng.gamma(2, 2, n) + shift * 2,
            "d": rng.normal(5, 2, n),
            "kind": rng.choice(["x", "y", "z"], n),
            "prediction": rng.random(n),
        }
    )


@pytest.fixture(scope="module")
def ref() -> ModelRef:
    return ModelRef("m", "1", "r", "runs:/r/ref.parquet", ["a", "b", "c", "d"], ["kind"])


def _settings(tmp_path) -> Settings:
    return Settings(prediction_log_url="sqlite://", reports_dir=tmp_path, drift_share=0.25)


def test_shifted_columns_are_named_and_verdict_is_drift(ref: ModelRef, tmp_path) -> None:
    reference = coerce(_data(3000, 1), ref)
    current = coerce(_data(1500, 2, shift=1.0), ref)
    snapshot, result = run_report(current, reference, ref, _settings(tmp_path))
    assert result.drifted_columns == ["a", "c"]
    assert result.drift_share == pytest.approx(2 / 5)
    assert result.dataset_drift is True
    by_name = {c.column: c for c in result.columns}
    assert by_name["a"].method.startswith("Wasserstein") and by_name["a"].score > 0.5
    assert by_name["kind"].column_type == "categorical"
    assert result.prediction is not None and result.prediction.drifted is False
    assert set(result.missing) == set(ref.columns)
    assert "<html" in snapshot.get_html_str(as_iframe=False).lower()


def test_clean_window_has_no_drift(ref: ModelRef, tmp_path) -> None:
    reference = coerce(_data(3000, 1), ref)
    current = coerce(_data(1500, 3), ref)
    _, result = run_report(current, reference, ref, _settings(tmp_path))
    assert result.drifted_columns == [] and result.dataset_drift is False


def test_summarise_reads_by_metric_type_not_position(ref: ModelRef) -> None:
    snapshot = {
        "metrics": [
            {
                "id": "2",
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "b",
                    "method": "K-S p_value",
                    "threshold": 0.05,
                },
                "value": 0.01,
            },
            {
                "id": "9",
                "config": {"type": "evidently:metric_v2:DatasetMissingValueCount"},
                "value": {"count": 0, "share": 0.0},
            },
            {
                "id": "1",
                "config": {"type": "evidently:metric_v2:DriftedColumnsCount"},
                "value": {"count": 1, "share": 0.2},
            },
            {
                "id": "3",
                "config": {
                    "type": "evidently:metric_v2:ValueDrift",
                    "column": "a",
                    "method": "K-S p_value",
                    "threshold": 0.05,
                },
                "value": 0.5,
            },
        ],
        "tests": [
            {"metric_config": {"metric_id": "2"}, "status": "FAIL"},
            {"metric_config": {"metric_id": "3"}, "status": "SUCCESS"},
        ],
    }
    result = summarise(snapshot, ref, 0.25)
    assert [c.column for c in result.columns] == ["a", "b"]
    assert result.drifted_columns == ["b"] and result.drift_share == 0.2
    assert result.dataset_drift is False


_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")


def _html(snapshot) -> str:
    return _IDS.sub("ID", snapshot.get_html_str(as_iframe=False))


def test_lean_report_has_the_same_html_and_results(ref: ModelRef, tmp_path) -> None:
    reference = coerce(_data(3000, 1), ref)
    current = coerce(_data(1500, 2, shift=1.0), ref)
    full_snapshot, full = run_report(current, reference, ref, _settings(tmp_path), lean=False)
    lean_snapshot, lean = run_report(current, reference, ref, _settings(tmp_path), lean=True)
    assert lean == full
    assert _html(lean_snapshot) == _html(full_snapshot)
    assert "prediction" in _html(lean_snapshot)  # the standalone ValueDrift still draws


def test_worker_gives_the_in_process_result(ref: ModelRef, tmp_path) -> None:
    reference = coerce(_data(3000, 1), ref)
    current = coerce(_data(1500, 2, shift=1.0), ref)
    expected = render_report(current, reference, ref, _settings(tmp_path), tmp_path / "a.html")
    with ReportWorker() as worker:
        got = worker.render(current, reference, ref, _settings(tmp_path), tmp_path / "b.html")
    # equal up to float summation order (Evidently orders categories by string hash, which
    # differs between processes)
    assert got.drifted_columns == expected.drifted_columns == ["a", "c"]
    assert got.drift_share == expected.drift_share and got.missing == expected.missing
    for mine, theirs in zip(
        got.columns + [got.prediction], expected.columns + [expected.prediction], strict=True
    ):
        assert (mine.column, mine.method, mine.threshold, mine.drifted) == (
            theirs.column,
            theirs.method,
            theirs.threshold,
            theirs.drifted,
        )
        assert mine.score == pytest.approx(theirs.score, rel=1e-9)
    assert (tmp_path / "b.html").stat().st_size > 10_000


def _workers() -> set[int]:
    """Pids of the Evidently worker processes below this one."""
    found = set()
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):  # exited meanwhile
            if b"serve_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
    return found


def _started_worker() -> tuple[ReportWorker, int]:
    """A new `ReportWorker` and the pid of its process."""
    before = _workers()
    worker = ReportWorker()
    (pid,) = _workers() - before
    return worker, pid


def test_worker_that_died_falls_back_to_in_process(ref: ModelRef, tmp_path) -> None:
    reference = coerce(_data(3000, 1), ref)
    current = coerce(_data(1500, 3), ref)
    worker, pid = _started_worker()
    os.kill(pid, signal.SIGKILL)  # e.g. killed for memory
    result = worker.render(current, reference, ref, _settings(tmp_path), tmp_path / "r.html")
    assert result.drifted_columns == [] and (tmp_path / "r.html").stat().st_size > 10_000


def test_unused_worker_is_stopped_on_close() -> None:
    worker, pid = _started_worker()
    worker.close()
    assert not Path(f"/proc/{pid}").exists(), "stopped and reaped"
    worker.close()  # twice is fine
