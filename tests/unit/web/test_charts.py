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
