"""The lifecycle loop's own decisions: which drift verdict triggers, which rows the gate keeps,
what each outcome's exit code is (the loop itself runs in tests/e2e/test_lifecycle_loop.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlcycle.lifecycle import LoopResult, drift_trigger, split_recent

NOW = 1_800_000_000.0


def _latest(folder, **summary) -> None:
    (folder / "latest.json").write_text(json.dumps(summary))


@pytest.mark.parametrize(
    ("summary", "triggers"),
    [
        ({"model_name": "m", "dataset_drift": True, "timestamp": NOW - 60}, True),
        ({"model_name": "m", "dataset_drift": False, "timestamp": NOW - 60}, False),
        ({"model_name": "other", "dataset_drift": True, "timestamp": NOW - 60}, False),
        ({"model_name": "m", "dataset_drift": True, "timestamp": NOW - 7200}, False),  # stale
    ],
)
def test_only_a_recent_drift_verdict_about_the_model_triggers(tmp_path, summary, triggers):
    _latest(tmp_path, **summary)
    assert bool(drift_trigger(tmp_path, "m", 3600, NOW)) is triggers


def test_no_or_corrupt_drift_report_does_not_trigger(tmp_path):
    assert drift_trigger(tmp_path, "m", 3600, NOW) == {}
    (tmp_path / "latest.json").write_text("{not json")
    assert drift_trigger(tmp_path, "m", 3600, NOW) == {}


def test_the_gate_keeps_the_most_recent_rows_out_of_training():
    rows = pd.DataFrame({"ts": range(10), "x": range(10)})
    train, gate = split_recent(rows, 0.2)
    assert train["ts"].tolist() == list(range(8)) and gate["ts"].tolist() == [8, 9]
    train, gate = split_recent(rows.head(3), 0.05)
    assert len(gate) == 1 and len(train) == 2  # at least one row for the gate


@pytest.mark.parametrize(("action", "code"), [("promoted", 0), ("not promoted", 1), ("skipped", 3)])
def test_exit_codes(action, code):
    result = LoopResult(action, "why", ["forced"])
    assert result.exit_code == code
    assert result.line() == f"{action}: why (triggers: forced)"
