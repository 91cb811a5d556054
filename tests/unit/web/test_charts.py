"""The Monitoring chart is well-formed SVG with escaped text, and volume comes from the log."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET

from serving.web import charts

NS = "{http://www.w3.org/2000/svg}"


def test_chart_has_a_point_per_run_and_a_bar_per_hour():
    svg = charts.drift_volume_svg(
        [(3600.0, 0.2, False), (7200.0, 0.6, True)], [(0.0, 10), (3600.0, 40)], now=9000.0
    )
    root = ET.fromstring(svg)
    circles = root.findall(f".//{NS}circle")
    assert [c.get("class") for c in circles] == ["ok", "drift"]
    assert len(root.findall(f".//{NS}rect")) == 2
    assert root.find(f".//{NS}polyline") is not None


def test_empty_chart_says_so():
    svg = charts.drift_volume_svg([], [], now=1000.0)
    assert "no drift runs yet" in svg and "no predictions logged" in svg
    ET.fromstring(svg)


def test_hourly_volume_counts_rows_per_hour(tmp_path):
    path = tmp_path / "log.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts REAL, prediction REAL)")
        rows = [(3600.0 * 10 + 5,), (3600.0 * 10 + 3000,), (3600.0 * 12 + 1,), (5.0,)]
        db.executemany("INSERT INTO predictions (ts) VALUES (?)", rows)
    volume = charts.hourly_volume(f"sqlite:///{path}", since=3600.0)
    assert volume == [(36000.0, 2), (43200.0, 1)]


def test_a_missing_log_gives_no_volume(tmp_path):
    assert charts.hourly_volume(f"sqlite:///{tmp_path / 'absent.db'}", since=0.0) == []
    assert not (tmp_path / "absent.db").exists()


def test_hourly_volume_adds_the_rows_of_logged_batches(tmp_path):
    """A large request logged as one `prediction_batches` row counts as its n_rows."""
    import numpy as np

    from mlcycle.core.prediction_log import build_batch, build_rows
    from serving.predlog import SqliteStore

    def batch(n, ts):
        arrays = {"age": np.arange(n, dtype=float)}
        return build_batch("b", "m", "1", "r", ("age",), arrays, np.zeros(n), ts=ts)

    path = tmp_path / "served.db"
    store = SqliteStore(str(path))
    rows = build_rows("s", "m", "1", "r", ("age",), {"age": [1, 2, 3]}, np.zeros(3), ts=36005.0)
    store.write(rows, [batch(300, 36100.0), batch(500, 3600.0 * 13 + 7), batch(900, 10.0)])
    store.close()
    volume = charts.hourly_volume(f"sqlite:///{path}", since=3600.0)
    assert volume == [(36000.0, 303), (46800.0, 500)]


def _series(version, validation, points):
    from serving.web.performance import Point, VersionSeries

    return VersionSeries(
        version,
        validation,
        [Point(s, s + 3600.0, live, est, 50, 100) for s, live, est in points],
    )


def test_live_auc_chart_draws_each_version_with_its_references():
    series = [
        _series("1", 0.9, [(0.0, 0.88, 0.89), (3600.0, 0.80, 0.87), (7200.0, None, 0.86)]),
        _series("2", None, [(3600.0, 0.75, None)]),
    ]
    root = ET.fromstring(charts.live_auc_svg(series, margin=0.05))
    circles = root.findall(f".//{NS}circle")
    assert len(circles) == 3, "one point per window with a live AUC"
    assert [c.get("class") for c in circles] == ["pt", "low", "pt"]  # 0.80 < 0.90 - 0.05
    assert len({c.get("fill") for c in circles}) == 2, "one colour per version"
    validation = [line for line in root.iter(f"{NS}line") if line.get("class") == "val"]
    assert len(validation) == 1 and "0.900" in validation[0].find(f"{NS}title").text
    lines = {p.get("class") for p in root.findall(f".//{NS}polyline")}
    assert lines == {"live", "est"}
    # higher AUC is drawn higher: 0.88 above 0.80
    assert float(circles[0].get("cy")) < float(circles[1].get("cy"))


def test_live_auc_chart_escapes_versions_and_says_when_no_labels_yet():
    hostile = "<script>x</script>"
    svg = charts.live_auc_svg([_series(hostile, 0.8, [(0.0, None, 0.7), (3600.0, None, 0.72)])])
    assert "<script>" not in svg and "no labelled windows yet" in svg
    root = ET.fromstring(svg)
    assert root.findall(f".//{NS}circle") == []
    assert ET.fromstring(charts.live_auc_svg([])).tag == f"{NS}svg"


def test_live_auc_lines_break_where_a_window_has_no_value():
    gap = _series("1", 0.9, [(0.0, 0.8, 0.8), (3600.0, 0.8, None), (10800.0, 0.8, 0.8)])
    root = ET.fromstring(charts.live_auc_svg([gap]))
    lines = [p.get("class") for p in root.findall(f".//{NS}polyline")]
    assert lines == ["live"], "only 0-2 h are consecutive windows with a value"
    assert len(root.findall(f".//{NS}circle")) == 3
