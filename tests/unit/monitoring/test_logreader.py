"""Reading the prediction log: missing/empty logs, windows, sampling, mixed runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.logreader import LogError, open_log, read_window, rows_to_frame, sample_condition
from monitoring.synthlog import append_rows, create_log
from monitoring.windows import Window

COLS = ["age", "home"]


def _frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"age": np.arange(start, start + n), "home": ["RENT"] * n})


def _log(tmp_path: Path, n: int = 300, version: str = "1", run_id: str = "r1", ts=1000.0) -> str:
    path = tmp_path / "predictions.db"
    append_rows(path, _frame(n), np.linspace(0, 1, n), "m", version, run_id, ts=ts)
    return f"sqlite:///{path}"


def _read(url: str, window: Window, **kw) -> object:
    args = {"run_id": "r1", "columns": COLS, "min_rows": 100, "cap": 0, "seed": 0} | kw
    return read_window(
        url,
        "m",
        "1",
        args["run_id"],
        window,
        args["columns"],
        args["min_rows"],
        args["cap"],
        args["seed"],
    )


def test_missing_log_file_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "predictions.db"
    with pytest.raises(LogError, match="no prediction log at"):
        open_log(f"sqlite:///{path}")
    assert not path.exists()


def test_log_without_table_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with pytest.raises(LogError, match="no `predictions` table"):
        open_log(f"sqlite:///{path}")


def test_empty_log_means_too_few_rows(tmp_path: Path) -> None:
    create_log(tmp_path / "p.db")
    with pytest.raises(LogError, match="too few rows to judge drift: 0 logged"):
        _read(f"sqlite:///{tmp_path / 'p.db'}", Window(last=1000))


def test_last_window_takes_the_newest_rows_of_the_version(tmp_path: Path) -> None:
    url = _log(tmp_path, 300)
    append_rows(tmp_path / "predictions.db", _frame(50, 1000), np.zeros(50), "m", "2", "r2")
    got = _read(url, Window(last=120))
    assert got.n_window == 120
    assert sorted(got.frame["age"]) == list(range(180, 300))  # version 2's rows are not included
    assert list(got.frame.columns) == COLS + ["prediction"]


def test_time_window_and_too_few_rows_message(tmp_path: Path) -> None:
    url = _log(tmp_path, 300, ts=np.arange(300, dtype=float))
    got = _read(url, Window(start=100, end=250))
    assert got.n_window == 150 and (got.first_ts, got.last_ts) == (100, 249)
    with pytest.raises(LogError, match=r"too few rows .*: 50 logged .*need at least 100"):
        _read(url, Window(start=250, end=1000))


def test_sampling_caps_rows_reproducibly(tmp_path: Path) -> None:
    url = _log(tmp_path, 300)
    a = _read(url, Window(last=300), cap=150, seed=3)
    b = _read(url, Window(last=300), cap=150, seed=3)
    assert a.n_window == 300 and 120 <= len(a.frame) <= 180
    assert list(a.frame["age"]) == list(b.frame["age"])
    # evenly spread: about half of each third of the window is kept
    thirds = np.histogram(a.frame["age"], bins=[0, 100, 200, 300])[0]
    assert all(35 <= t <= 65 for t in thirds), thirds
    assert sample_condition(10, 0, 0) == ("", {}) and sample_condition(10, 20, 0) == ("", {})


def test_sample_size_is_close_to_the_cap_on_big_windows(tmp_path: Path) -> None:
    url = _log(tmp_path, 20_000)
    got = _read(url, Window(last=20_000), cap=2_000)
    assert got.n_window == 20_000 and abs(len(got.frame) - 2_000) <= 100


def test_rows_of_another_run_are_left_out(tmp_path: Path) -> None:
    url = _log(tmp_path, 300, run_id="other-run")
    with pytest.raises(LogError, match="300 rows of that name and version come from other runs"):
        _read(url, Window(last=300))
    append_rows(tmp_path / "predictions.db", _frame(150, 500), np.zeros(150), "m", "1", "r1")
    got = _read(url, Window(last=1000))
    assert got.n_window == 150 and got.frame["age"].min() == 500


def test_rows_to_frame_tolerates_bad_json_and_missing_keys() -> None:
    frame = rows_to_frame([('{"age": 5}', 0.5, "r"), ("not json", 0.1, "r")], COLS)
    assert frame["age"].tolist()[0] == 5 and pd.isna(frame["age"].tolist()[1])
    assert frame["home"].isna().all() and frame["prediction"].tolist() == [0.5, 0.1]
