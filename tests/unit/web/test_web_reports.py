"""The report-by-id guard and the drift-run list (real files in a tmp reports folder)."""

from __future__ import annotations

import json
import os

import pytest

from serving.web import reports


@pytest.fixture
def reports_dir(tmp_path):
    root = tmp_path / "reports"
    root.mkdir()
    (root / "run-1.html").write_text("<html>report 1</html>")
    (root / "run-1.json").write_text(json.dumps({"id": "run-1"}))
    (tmp_path / "secret.html").write_text("outside")
    os.symlink(tmp_path / "secret.html", root / "escape.html")
    (root / "sub").mkdir()
    (root / "sub" / "deep.html").write_text("nested")
    return root


def test_a_plain_id_maps_to_its_file(reports_dir):
    assert reports.report_file(reports_dir, "run-1") == (reports_dir / "run-1.html").resolve()
    assert reports.report_file(reports_dir, "run-1.html") == (reports_dir / "run-1.html").resolve()
    assert reports.report_file(reports_dir, "run-1", ".json").name == "run-1.json"


@pytest.mark.parametrize(
    "report_id",
    [
        "../secret",
        "..",
        "../reports/run-1",
        "/etc/passwd",
        "/tmp/secret",
        "..%2Fsecret",
        "%2e%2e%2fsecret",
        "..\\secret",
        "sub/deep",
        "sub%2Fdeep",
        ".hidden",
        "",
        "escape",  # a symlink inside the folder that points outside it
        "missing",
        "run-1\x00",
        "a" * 300,
    ],
)
def test_anything_else_maps_to_nothing(reports_dir, report_id):
    assert reports.report_file(reports_dir, report_id) is None


def test_runs_come_from_the_index_newest_first(reports_dir):
    index = {
        "runs": [
            {
                "id": "run-1",
                "timestamp": 200.0,
                "model_version": "2",
                "window": "last 300 rows",
                "verdict": "no_drift",
                "dataset_drift": False,
                "drift_share": 0.1,
                "rows": 300,
            },
            {
                "id": "run-0",
                "timestamp": 100.0,
                "model_version": "1",
                "window": "since 1h",
                "verdict": "drift",
                "dataset_drift": True,
                "drift_share": 0.5,
                "rows": 999,
            },
        ]
    }
    (reports_dir / "index.json").write_text(json.dumps(index))
    runs = reports.list_runs(reports_dir)
    assert [r.id for r in runs] == ["run-1", "run-0"]
    assert runs[0].verdict == "no drift" and not runs[0].drift and runs[0].has_report
    assert runs[1].drift and not runs[1].has_report  # run-0.html does not exist
    assert runs[0].time_text == "1970-01-01 00:03:20 UTC"


def test_a_missing_or_broken_index_lists_nothing(tmp_path):
    assert reports.list_runs(tmp_path / "nope") == []
    (tmp_path / "index.json").write_text("{not json")
    assert reports.list_runs(tmp_path) == []


def test_without_an_index_performance_summaries_are_not_listed_as_drift_runs(reports_dir):
    """The performance job writes its JSON summaries into the same folder."""
    from tests.helpers import performance_traffic, write_performance_check

    write_performance_check(reports_dir, performance_traffic(2), 0.0, 7_200.0, now=7_200.0)
    assert len(list(reports_dir.glob("*performance*.json"))) == 2
    assert [r.id for r in reports.list_runs(reports_dir)] == ["run-1"]
