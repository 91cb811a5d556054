"""Live performance on the Monitoring page: the reader against the performance job's own
writer (`monitoring.perfreport`), stitching successive checks, and files it must survive."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.perfreport import LATEST
from serving.web import performance
from serving.web.performance import read_live_performance
from tests.helpers import performance_traffic, write_performance_check

H, DAY = 3_600.0, 86_400.0
MODEL = "credit-risk"
VALIDATION = {"1": 0.9, "2": 0.8}


def traffic(hours: float, start: float = 0.0):
    return performance_traffic(hours, start)


def write_check(root, rows, start, end, now, window_s=H, label_delay=0.0) -> dict:
    return write_performance_check(
        root, rows, start, end, now, window_s, label_delay, VALIDATION, MODEL
    )


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "reports"
    folder.mkdir()
    return folder


def test_figures_and_series_are_those_the_writer_wrote(root):
    summary = write_check(root, traffic(6), 0.0, 6 * H, now=6 * H)
    got = read_live_performance(root, MODEL, now=6 * H)
    assert got is not None and got.model_name == MODEL and got.window_text == "1h"
    assert got.report_id == summary["id"] and (root / f"{summary['id']}.html").is_file()
    assert [f.version for f in got.latest] == ["1", "2"]
    for figures, written in zip(got.latest, summary["versions"], strict=True):
        assert figures.live_auc == pytest.approx(written["overall"]["auc"])
        assert figures.estimated_auc == pytest.approx(written["overall"]["estimated_auc"])
        assert figures.validation_auc == VALIDATION[figures.version]
        assert figures.n_labelled == written["overall"]["n_labelled"] > 100
        assert figures.enough_labels and figures.alert == written["alert"]
    for series, written in zip(got.series, summary["versions"], strict=True):
        assert [p.start for p in series.points] == [w["start"] for w in written["windows"]]
        assert [p.live_auc for p in series.points] == pytest.approx(
            [w["auc"] for w in written["windows"]]
        )
        assert series.validation_auc == VALIDATION[series.version]


def test_older_checks_fill_in_the_earlier_windows_and_the_better_labelled_copy_wins(root):
    rows = traffic(36)
    older = write_check(root, rows, 0.0, 24 * H, now=24 * H, label_delay=6 * H)
    newer = write_check(root, rows, 12.5 * H, 36 * H, now=36 * H, label_delay=6 * H)
    got = read_live_performance(root, MODEL, now=36 * H)
    (v1,) = [s for s in got.series if s.version == "1"]
    by_start = {p.start: p for p in v1.points}
    assert sorted(by_start) == [h * H for h in range(36)]  # 0-12 h only in the older check

    def window(summary, start):
        (entry,) = [v for v in summary["versions"] if v["version"] == "1"]
        return next(w for w in entry["windows"] if w["start"] == start)

    # 12-13 h: the newer range starts at 12.5 h, so the older check saw the whole hour
    assert by_start[12 * H].n_predictions == window(older, 12 * H)["n_predictions"]
    assert by_start[12 * H].n_predictions > window(newer, 12 * H)["n_predictions"]
    # 20-21 h: same rows in both, but the older check ran before those labels arrived
    assert window(older, 20 * H)["n_labelled"] == 0
    assert by_start[20 * H].n_labelled == window(newer, 20 * H)["n_labelled"] > 0
    assert by_start[20 * H].live_auc == pytest.approx(window(newer, 20 * H)["auc"])
    assert got.latest[0].n_predictions == newer["versions"][0]["overall"]["n_predictions"]


def test_a_one_window_check_updates_the_table_but_not_the_series(root):
    """`retrain-on-drift` runs one check over its whole range; the chart keeps the hourly
    windows of the performance job."""
    rows = traffic(24)
    write_check(root, rows, 0.0, 24 * H, now=24 * H)
    loop = write_check(root, rows, 0.0, 24 * H, now=24 * H + 60, window_s=7 * DAY)
    got = read_live_performance(root, MODEL, now=24 * H + 60)
    assert got.report_id == loop["id"] and got.window_text == "1h"
    assert len(got.series[0].points) == 24
    assert got.latest[0].n_predictions == loop["versions"][0]["overall"]["n_predictions"]


def stub_check(t: float, span: float = DAY) -> dict:
    """A minimal summary of a check at `t` over [t - span, t) with one window per hour."""
    from datetime import datetime, timezone

    def iso(x):
        return datetime.fromtimestamp(x, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    stamp = datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    first = (t - span) // H * H
    windows = [
        {"start": s, "end": s + H, "auc": 0.8, "n_labelled": 50, "n_predictions": 100}
        for s in np.arange(first, t, H).tolist()
    ]
    return {
        "id": f"{stamp}-{MODEL}-performance-abcd",
        "kind": "performance",
        "timestamp": t,
        "model_name": MODEL,
        "window": {"from": iso(t - span), "to": iso(t), "window_s": H},
        "versions": [{"version": "1", "validation_auc": 0.85, "windows": windows}],
    }


def test_a_long_history_is_stitched_from_a_few_files(root, monkeypatch):
    """Checks every 15 minutes for 5 days, each over the last day: the chart covers the 5
    days without a gap, opening about one file per day, not hundreds."""
    now = 10 * DAY
    for k in range(5 * 96):
        summary = stub_check(now - k * 900)
        (root / f"{summary['id']}.json").write_text(json.dumps(summary))
        if k == 0:
            (root / f"{LATEST}.json").write_text(json.dumps(summary))
    opened = []
    real_load = performance._load
    monkeypatch.setattr(performance, "_load", lambda p: opened.append(p) or real_load(p))
    got = read_live_performance(root, MODEL, now=now)
    starts = [p.start for p in got.series[0].points]
    assert set(np.diff(starts)) == {H}, "a gap or an overlap in the stitched windows"
    # the oldest check ran 119.75 h ago, over the day before that
    assert (starts[0], starts[-1]) == (now - 144 * H, now - H)
    assert len(opened) <= 8, f"opened {len(opened)} of 480 files"


@pytest.mark.parametrize(
    "content",
    ["", "{not json", "[]", '{"versions": {}}', '{"model_name": "credit-risk"}', "null"],
)
def test_an_unreadable_latest_file_means_no_live_performance(root, content):
    (root / f"{LATEST}.json").write_text(content)
    assert read_live_performance(root, MODEL) is None


def test_no_folder_no_file_or_another_model_means_none(tmp_path, root):
    assert read_live_performance(tmp_path / "absent", MODEL) is None
    assert read_live_performance(root, MODEL) is None
    write_check(root, traffic(3), 0.0, 3 * H, now=3 * H)
    assert read_live_performance(root, "other-model", now=3 * H) is None


def test_malformed_entries_are_skipped_not_fatal(root):
    summary = stub_check(DAY)
    summary["versions"] += [
        "not a dict",
        {"no": "version"},
        {
            "version": "3",
            "overall": "junk",
            "validation_auc": "high",
            "windows": [
                {"start": "x", "end": 1, "auc": 0.7},
                {"start": 0.0, "end": H, "auc": float("nan"), "estimated_auc": None},
                {"start": 0.0, "end": H, "auc": 0.7, "n_labelled": -3, "n_predictions": "?"},
                {"start": 9e18, "end": 9e18 + H, "auc": 0.7},
                None,
            ],
        },
    ]
    summary["timestamp"] = 1e300
    (root / f"{LATEST}.json").write_text(json.dumps(summary))
    (root / f"{summary['id']}.json").write_text("{broken")
    got = read_live_performance(root, MODEL, now=DAY)
    assert [f.version for f in got.latest] == ["1", "3"] and got.checked_text == ""
    three = got.latest[1]
    assert three.live_auc is None and three.validation_auc is None and three.n_labelled == 0
    (series,) = [s for s in got.series if s.version == "3"]
    assert [(p.live_auc, p.n_labelled, p.n_predictions) for p in series.points] == [(0.7, 0, 0)]
