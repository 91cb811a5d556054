"""Reading the prediction log: missing/empty logs, windows, sampling, mixed runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.logreader import (
    LogError,
    batch_mask,
    open_log,
    read_window,
    rows_to_frame,
    sample_condition,
    served_version,
)
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


# ---------------------------------------------------------------- large requests as batches
# Serving logs a request of >= MLCYCLE_LOG_BATCH_ROWS rows as one `prediction_batches` row (an
# Arrow IPC blob); the reader must see those rows exactly like `predictions` rows.


def _batch(n: int, start: int = 0, ts: float = 1000.0, version: str = "1", run_id: str = "r1"):
    from mlcycle.core.prediction_log import build_batch

    arrays = {
        "age": np.arange(start, start + n, dtype=float),
        "home": np.array(["RENT", "OWN"] * (n // 2) + ["RENT"] * (n % 2), dtype=object),
    }
    preds = np.full(n, 0.25)
    return build_batch(f"b{start}", "m", version, run_id, tuple(COLS), arrays, preds, ts=ts)


def _row_requests(ages, ts, version: str = "1", run_id: str = "r1") -> list[tuple]:
    """One single-row request per age, at the matching time (as serving logs small requests)."""
    from mlcycle.core.prediction_log import build_rows

    rows = []
    for age, when in zip(ages, np.broadcast_to(ts, (len(ages),)), strict=True):
        columns = {"age": [int(age)], "home": ["RENT"]}
        rows += build_rows(
            f"r{age}", "m", version, run_id, tuple(COLS), columns, np.array([0.5]), ts=float(when)
        )
    return rows


def _store(tmp_path: Path, rows: list[tuple] = (), batches: list[tuple] = ()) -> str:
    from serving.predlog import SqliteStore

    path = tmp_path / "served.db"
    store = SqliteStore(str(path))
    store.write(list(rows), list(batches))
    store.close()
    return f"sqlite:///{path}"


def _mixed(tmp_path: Path) -> str:
    """100 rows at ts 0..99 (age 0..99), a 300-row batch at ts 150 (age 1000..1299), 50 rows at
    ts 200..249 (age 2000..2049), plus a batch and rows of other versions/runs (never read)."""
    rows = _row_requests(range(100), np.arange(100.0)) + _row_requests(
        range(2000, 2050), np.arange(200.0, 250.0)
    )
    rows += _row_requests(range(5000, 5010), 300.0, version="2")
    batches = [_batch(300, 1000, ts=150.0), _batch(400, 7000, ts=160.0, version="2")]
    batches.append(_batch(400, 8000, ts=170.0, run_id="other-run"))
    return _store(tmp_path, rows, batches)


def test_a_time_window_counts_and_reads_rows_and_batches(tmp_path: Path) -> None:
    url = _mixed(tmp_path)
    got = _read(url, Window(start=50, end=220))
    assert got.n_window == 50 + 300 + 20 == len(got.frame)
    assert (got.first_ts, got.last_ts) == (50, 219)
    ages = sorted(got.frame["age"])
    assert ages == [*range(50, 100), *range(1000, 1300), *range(2000, 2020)]
    assert list(got.frame.columns) == COLS + ["prediction"]
    batch_rows = got.frame[got.frame["age"].between(1000, 1299)]
    assert set(batch_rows["home"]) == {"RENT", "OWN"} and (batch_rows["prediction"] == 0.25).all()
    # a window holding only the batch's time still counts its rows
    only = _read(url, Window(start=150, end=151))
    assert only.n_window == 300 and (only.first_ts, only.last_ts) == (150, 150)


def test_last_n_runs_over_both_tables_by_time(tmp_path: Path) -> None:
    url = _mixed(tmp_path)
    newest = _read(url, Window(last=50), min_rows=1)
    assert newest.n_window == 50 and sorted(newest.frame["age"]) == list(range(2000, 2050))
    # the batch straddles the 100-row boundary: it is taken whole
    straddle = _read(url, Window(last=100), min_rows=1)
    assert straddle.n_window == 350 == len(straddle.frame)
    assert sorted(straddle.frame["age"]) == [*range(1000, 1300), *range(2000, 2050)]
    exact = _read(url, Window(last=400), min_rows=1)
    assert exact.n_window == 400
    assert sorted(exact.frame["age"]) == [*range(50, 100), *range(1000, 1300), *range(2000, 2050)]
    everything = _read(url, Window(last=10_000), min_rows=1)
    assert everything.n_window == 450 and everything.first_ts == 0 and everything.last_ts == 249


def test_a_log_with_the_batch_table_but_no_batches_reads_the_newest_ids(tmp_path: Path) -> None:
    url = _store(tmp_path, _row_requests(range(300), 5.0))  # one ts for all: ids decide
    got = _read(url, Window(last=120))
    assert got.n_window == 120 and sorted(got.frame["age"]) == list(range(180, 300))


def test_a_batch_only_log(tmp_path: Path) -> None:
    batches = [_batch(300, 0, ts=10.0), _batch(300, 300, ts=20.0), _batch(300, 600, ts=30.0)]
    url = _store(tmp_path, batches=batches)
    got = _read(url, Window(last=500))
    assert got.n_window == 600 and sorted(got.frame["age"]) == list(range(300, 900))
    timed = _read(url, Window(start=0, end=25))
    assert timed.n_window == 600 and (timed.first_ts, timed.last_ts) == (10, 20)
    assert got.frame["age"].dtype == np.float64 and got.frame["home"].dtype == object


def test_batch_rows_are_sampled_evenly_and_reproducibly(tmp_path: Path) -> None:
    batches = [_batch(1000, 1000 * i, ts=10.0 + i) for i in range(4)]
    url = _store(tmp_path, _row_requests(range(10_000, 11_000), 1.0), batches)
    a = _read(url, Window(last=10_000), cap=1000, seed=7)
    b = _read(url, Window(last=10_000), cap=1000, seed=7)
    c = _read(url, Window(last=10_000), cap=1000, seed=8)
    assert a.n_window == 5000 and abs(len(a.frame) - 1000) <= 30
    assert a.frame.equals(b.frame)
    # another seed keeps other rows (in both tables), not the same ones shifted by a residue
    for lo, hi in ((0, 4000), (10_000, 11_000)):
        kept_a = set(a.frame["age"][a.frame["age"].between(lo, hi)])
        kept_c = set(c.frame["age"][c.frame["age"].between(lo, hi)])
        assert len(kept_a & kept_c) < 0.5 * len(kept_a), (lo, len(kept_a & kept_c))
    # each batch and each half of a batch keeps ~1/5 of its rows, the logged rows too
    counts = np.histogram(a.frame["age"], bins=np.arange(0, 11_001, 500))[0]
    halves, rows = counts[:8], counts[20]
    assert all(90 <= h <= 110 for h in halves), halves
    assert 160 <= rows + counts[21] <= 240
    unsampled = _read(url, Window(last=10_000), cap=5000)
    assert len(unsampled.frame) == 5000


def test_batch_mask_fraction_and_spread() -> None:
    mask = batch_mask(17, 100_000, count=1_000_000, cap=20_000, seed=0)
    assert abs(mask.sum() - 2_000) <= 5  # the hash is low-discrepancy, not just unbiased
    assert all(abs(part.sum() - 200) <= 3 for part in np.array_split(mask, 10))
    assert not np.array_equal(mask, batch_mask(18, 100_000, 1_000_000, 20_000, 0))
    assert batch_mask(17, 10, count=100, cap=100, seed=0) is None


def test_missing_values_and_categories_read_like_logged_rows(tmp_path: Path) -> None:
    """The same 300 rows, logged row by row (v1) and as one batch (v2), coerce identically."""
    from mlcycle.core.prediction_log import build_batch, build_rows
    from monitoring.reference import ModelRef, coerce

    n = 300
    age = np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n, dtype=float))
    home = ["OWN" if i % 3 else None for i in range(n)]
    preds = np.linspace(0, 1, n)
    columns = {"age": [None if a != a else int(a) for a in age], "home": home}
    rows = build_rows("q1", "m", "1", "r1", tuple(COLS), columns, preds, ts=50.0)
    categorical = pd.Categorical(home, categories=["OWN", "RENT"])  # as the schema hands it over
    batch = build_batch(
        "q2", "m", "2", "r1", tuple(COLS), {"age": age, "home": categorical}, preds, ts=50.0
    )
    url = _store(tmp_path, rows, [batch])
    ref = ModelRef("m", "1", "r1", "unused", numerical=["age"], categorical=["home"])
    by_rows = _read(url, Window(last=n)).frame
    by_batch = read_window(url, "m", "2", "r1", Window(last=n), COLS, 100, 0, 0).frame
    assert by_batch["age"].isna().sum() == 43 and by_batch["home"].isna().sum() == 100
    assert by_batch["home"].dropna().map(type).eq(str).all()
    pd.testing.assert_frame_equal(coerce(by_rows, ref), coerce(by_batch, ref))
    pd.testing.assert_series_equal(by_rows["home"], by_batch["home"])


def test_columns_absent_from_a_batch_are_missing(tmp_path: Path) -> None:
    url = _store(tmp_path, batches=[_batch(300)])
    got = _read(url, Window(last=300), columns=["age", "purpose"])
    assert list(got.frame.columns) == ["age", "purpose", "prediction"]
    assert got.frame["purpose"].isna().all() and got.frame["age"].notna().all()


def test_too_few_rows_hint_counts_batches_of_other_runs(tmp_path: Path) -> None:
    url = _store(tmp_path, batches=[_batch(300, run_id="other-run"), _batch(50, ts=2000.0)])
    with pytest.raises(LogError, match=r": 50 logged .*300 rows of that name and version"):
        _read(url, Window(last=1000))


def test_an_unreadable_batch_is_skipped_but_counted(tmp_path: Path, caplog) -> None:
    broken = (*_batch(300, 5000)[:-1], b"not arrow")
    url = _store(tmp_path, batches=[_batch(300), broken])
    got = _read(url, Window(last=1000))
    assert got.n_window == 600 and len(got.frame) == 300
    assert "skipping prediction batch" in caplog.text


def test_served_version_is_the_newest_row_or_batch(tmp_path: Path) -> None:
    url = _mixed(tmp_path)  # newest: version 2's rows at ts 300
    assert served_version(url, "m") == "2"
    later = _store(tmp_path, batches=[_batch(10, 9000, ts=400.0, version="3")])
    assert served_version(later, "m") == "3"  # a batch newer than every row
    assert served_version(url, "other-model") is None
    create_log(tmp_path / "empty.db")
    assert served_version(f"sqlite:///{tmp_path / 'empty.db'}", "m") is None
    assert served_version(f"sqlite:///{tmp_path / 'missing.db'}", "m") is None
    assert not (tmp_path / "missing.db").exists()
