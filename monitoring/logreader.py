"""Read a window of the prediction log (Contract 2) for one model version.

In: a SQLAlchemy URL, model name/version (+ the version's run id), a `Window`, a row cap.
Out: a `LogWindow`: the window's row count and time span and a DataFrame of the (sampled) rows'
inputs and predictions.

The log has two tables: `predictions` (one row per scored row, inputs as JSON) and, in logs
written by serving since large requests were batched, `prediction_batches` (one row per large
request: `n_rows` scored rows in one Arrow IPC blob). Both are read as one stream of rows: a
batch counts as its `n_rows` rows, all at the batch's `ts`.

Cheap by design, so a check over a million logged rows stays in seconds and in bounded memory:
the window is counted in SQL (COUNT/MIN/MAX, plus SUM(n_rows) of batches, over the
`(model_name, model_version, ts)` indexes; for `--last N` the N-th newest row bounds it); when
it holds more rows than the cap, the database itself keeps an evenly spread, hash-selected ~cap
of the `predictions` rows (`sample_condition`), so only those rows' `inputs` JSON crosses into
Python (streamed in chunks) and is parsed with orjson; batches are streamed one blob at a time
and the same hash over (batch id, row index) keeps the same fraction of their rows
(`batch_mask`). A log without the `prediction_batches` table is read with the same queries
as before batching existed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from mlcycle.core.logdb import LogError, open_log
from mlcycle.core.prediction_log import BATCH_FORMAT, BATCHES, ROWS, decode_batch, decode_inputs
from monitoring.windows import Window

log = logging.getLogger(__name__)

_FETCH_CHUNK = 5_000  # rows per fetch while streaming


@dataclass
class LogWindow:
    """The rows of one window.

    Attributes:
        n_window: rows of the model version in the window (before sampling; a batch counts
            its `n_rows`).
        first_ts: Unix time of the oldest row in the window.
        last_ts: Unix time of the newest row in the window.
        frame: sampled rows: one column per input in `columns`, plus `prediction`.
    """

    n_window: int
    first_ts: float
    last_ts: float
    frame: Any


@dataclass
class _Filter:
    """The window's SQL condition (valid on both tables) and whether batches are read."""

    where: str
    params: dict
    batches: bool


# Hash-based sampling in SQL: a row is kept iff (id * _MULT + seed) mod _MOD < k, with _MOD
# prime, so consecutive ids map to evenly spread residues and a window keeps ~k/_MOD of its rows
# spread evenly over it, without sending the other ids to Python.
# The seed enters as a scrambled offset: a plain `+ seed` would move the residues by one, so
# seeds 0 and 1 would keep all but a handful of the same rows.
_MULT, _MOD = 2654435761, 1_000_003
_SEED_MULT = 747_796_405  # seed -> offset, spread over [0, _MOD)
_BATCH_MULT = 40_503  # spreads the batches' starting residues (batch id -> offset)


def _seed_offset(seed: int) -> int:
    return (int(seed) * _SEED_MULT) % _MOD


def _version_filter(model_name: str, model_version: str, run_id: str | None) -> tuple[str, dict]:
    """SQL condition selecting the rows (or batches) of one model version.

    Rows are those of `model_name`/`model_version` scored by the version's run (`run_id`; rows
    logged without a run id count too): another MLflow store sharing the log, with its own
    "credit-risk v1", never leaks into the window.
    """
    params: dict[str, Any] = {"m": model_name, "v": str(model_version)}
    where = "model_name = :m AND model_version = :v"
    if run_id:
        where += " AND (model_run_id = :r OR model_run_id IS NULL OR model_run_id = '')"
        params["r"] = run_id
    return where, params


def _window_filter(
    conn: Any,
    model_name: str,
    model_version: str,
    run_id: str | None,
    window: Window,
    batches: bool = False,
) -> _Filter:
    """The condition selecting the window's rows of one model version (see `_version_filter`).

    `batches` says whether the log has a `prediction_batches` table. A `--last N` window of a
    version without batches is bounded by the N-th newest id of `predictions`, as before
    batches existed; with batches it is bounded by time (see `_newest_floor`).
    """
    import sqlalchemy as sa

    where, params = _version_filter(model_name, model_version, run_id)
    if window.last is None:
        params.update(a=float(window.start), b=float(window.end))
        return _Filter(f"{where} AND ts >= :a AND ts < :b", params, batches)
    if batches and _any_batch(conn, where, params):
        floor_ts = _newest_floor(conn, where, params, int(window.last))
        if floor_ts is not None:  # fewer rows than N: the whole log of the version
            where += " AND ts >= :t0"
            params["t0"] = float(floor_ts)
        return _Filter(where, params, True)
    floor = conn.execute(
        sa.text(f"SELECT id FROM {ROWS} WHERE {where} ORDER BY id DESC LIMIT 1 OFFSET :o"),
        {**params, "o": int(window.last) - 1},
    ).scalar()
    if floor is not None:  # fewer rows than N: the whole log of the version is the window
        where += " AND id >= :floor"
        params["floor"] = int(floor)
    return _Filter(where, params, False)


def _any_batch(conn: Any, where: str, params: dict) -> bool:
    import sqlalchemy as sa

    sql = sa.text(f"SELECT 1 FROM {BATCHES} WHERE {where} LIMIT 1")
    return conn.execute(sql, params).first() is not None


def _newest_floor(conn: Any, where: str, params: dict, n: int) -> float | None:
    """The `ts` of the N-th newest row of both tables (a batch weighs its `n_rows`).

    Walks both tables newest first (one merged, index-ordered stream of `(ts, rows)`) and stops
    as soon as N rows are counted, so it reads at most N `predictions` rows' timestamps. All
    rows with that `ts` or later form the window: a request (a batch, or the rows of one small
    request, which share their `ts`) straddling the boundary is included whole, so the window
    may hold a little more than N rows. None when the version has fewer than N rows.
    """
    import sqlalchemy as sa

    sql = sa.text(
        f"SELECT ts, 1 FROM {ROWS} WHERE {where} "
        f"UNION ALL SELECT ts, n_rows FROM {BATCHES} WHERE {where} ORDER BY 1 DESC"
    )
    seen = 0
    result = conn.execution_options(stream_results=True).execute(sql, params)
    try:
        for part in result.partitions(_FETCH_CHUNK):
            for ts, rows in part:
                seen += int(rows)
                if seen >= n:
                    return float(ts)
    finally:
        result.close()
    return None


def _other_runs(
    conn: Any, model_name: str, model_version: str, run_id: str | None, batches: bool = False
) -> int:
    """Rows of the same name/version logged by other runs (a log shared between stores)."""
    import sqlalchemy as sa

    if not run_id:
        return 0
    where = (
        "model_name = :m AND model_version = :v "
        "AND model_run_id IS NOT NULL AND model_run_id <> '' AND model_run_id <> :r"
    )
    params = {"m": model_name, "v": str(model_version), "r": run_id}
    count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {ROWS} WHERE {where}"), params)
    total = int(count.scalar())
    if batches:
        rows = conn.execute(
            sa.text(f"SELECT COALESCE(SUM(n_rows), 0) FROM {BATCHES} WHERE {where}"), params
        )
        total += int(rows.scalar())
    return total


def window_stats(conn: Any, where: str, params: dict) -> tuple[int, float | None, float | None]:
    """(row count, first ts, last ts) of the `predictions` rows matching `where`."""
    import sqlalchemy as sa

    row = conn.execute(
        sa.text(f"SELECT COUNT(*), MIN(ts), MAX(ts) FROM {ROWS} WHERE {where}"), params
    ).one()
    return int(row[0]), row[1], row[2]


def batch_stats(conn: Any, where: str, params: dict) -> tuple[int, float | None, float | None]:
    """(rows in the batches, first ts, last ts) of the `prediction_batches` matching `where`."""
    import sqlalchemy as sa

    row = conn.execute(
        sa.text(f"SELECT COALESCE(SUM(n_rows), 0), MIN(ts), MAX(ts) FROM {BATCHES} WHERE {where}"),
        params,
    ).one()
    return int(row[0]), row[1], row[2]


def _stats(conn: Any, flt: _Filter) -> tuple[int, float | None, float | None, int]:
    """(rows in the window, first ts, last ts, rows of them in batches)."""
    count, first, last = window_stats(conn, flt.where, flt.params)
    if not flt.batches:
        return count, first, last, 0
    n_batched, b_first, b_last = batch_stats(conn, flt.where, flt.params)
    firsts = [t for t in (first, b_first) if t is not None]
    lasts = [t for t in (last, b_last) if t is not None]
    return (
        count + n_batched,
        min(firsts) if firsts else None,
        max(lasts) if lasts else None,
        n_batched,
    )


def _keep(count: int, cap: int) -> int | None:
    """The hash threshold keeping about `cap` of `count` rows (None: keep all)."""
    if cap <= 0 or count <= cap:
        return None
    return max(1, math.ceil(cap / count * _MOD))


def sample_condition(count: int, cap: int, seed: int) -> tuple[str, dict]:
    """Extra SQL condition keeping about `cap` of `count` rows (empty when no sampling is due).

    Args:
        count: rows in the window.
        cap: the most rows wanted (<= 0: all).
        seed: shifts which rows are kept.

    Returns:
        (condition starting with ` AND`, its parameters).
    """
    keep = _keep(count, cap)
    if keep is None:
        return "", {}
    return (
        f" AND ((id * {_MULT} + :seed) % {_MOD}) < :keep",
        {"seed": _seed_offset(seed), "keep": keep},
    )


def batch_mask(batch_id: int, n_rows: int, count: int, cap: int, seed: int) -> Any:
    """Which rows of one batch to keep so that about `cap` of `count` window rows are kept.

    The same kind of hash as `sample_condition`: row i of batch b is kept iff
    `(i * 2654435761 + b * 40503 + seed offset) mod 1000003 < k`, so consecutive rows get evenly
    spread residues (the kept rows are evenly spread over the batch) and the choice depends
    only on (seed, batch id, row index).

    Args:
        batch_id: the batch's `id`.
        n_rows: rows in the batch.
        count: rows in the window.
        cap: the most rows wanted (<= 0: all).
        seed: shifts which rows are kept.

    Returns:
        A boolean numpy array of `n_rows`, or None when every row is kept.
    """
    import numpy as np

    keep = _keep(count, cap)
    if keep is None:
        return None
    offset = (int(batch_id) * _BATCH_MULT + _seed_offset(seed)) % _MOD
    residues = (np.arange(n_rows, dtype=np.int64) * (_MULT % _MOD) + offset) % _MOD
    return residues < keep


def fetch_rows(conn: Any, where: str, params: dict) -> list[tuple[str, float, str | None]]:
    """The `(inputs, prediction, model_run_id)` of the matching rows, streamed in chunks."""
    import sqlalchemy as sa

    sql = sa.text(f"SELECT inputs, prediction, model_run_id FROM {ROWS} WHERE {where}")
    rows: list[tuple[str, float, str | None]] = []
    result = conn.execution_options(stream_results=True).execute(sql, params)
    for part in result.partitions(_FETCH_CHUNK):
        rows.extend(tuple(r) for r in part)
    return rows


def rows_to_frame(rows: list[tuple[str, float, str | None]], columns: list[str]) -> Any:
    """Parse the rows' JSON inputs into a DataFrame of `columns` plus `prediction`.

    Args:
        rows: `(inputs JSON, prediction, run id)` tuples.
        columns: the input columns to keep (absent keys become missing values).

    Returns:
        A pandas DataFrame (object columns; types are set by the caller).
    """
    import pandas as pd

    parsed = [decode_inputs(raw) for raw, _, _ in rows]
    data = {c: [r.get(c) for r in parsed] for c in columns}
    data["prediction"] = [p for _, p, _ in rows]
    return pd.DataFrame(data)


def fetch_batches(
    conn: Any, flt: _Filter, columns: list[str], count: int, cap: int, seed: int
) -> Any:
    """The (sampled) rows of the window's batches as one DataFrame, or None when none.

    Blobs are streamed one at a time and only their kept rows are retained, so memory is
    bounded by the sample (plus one batch), not by the window.
    """
    import pandas as pd
    import sqlalchemy as sa

    sql = sa.text(f"SELECT id, n_rows, format, data FROM {BATCHES} WHERE {flt.where} ORDER BY id")
    parts: dict[str, list] = {name: [] for name in [*columns, "prediction"]}
    result = conn.execution_options(stream_results=True, yield_per=1).execute(sql, flt.params)
    for batch_id, n_rows, fmt, data in result:
        mask = batch_mask(batch_id, int(n_rows), count, cap, seed)
        if mask is not None and not mask.any():
            continue
        try:
            if fmt != BATCH_FORMAT:
                raise ValueError(f"unknown format {fmt!r}")
            arrays = decode_batch(data, columns, mask)
        except Exception as exc:  # one unreadable batch must not stop a drift check
            log.warning("skipping prediction batch %s (%s rows): %s", batch_id, n_rows, exc)
            continue
        for name, values in arrays.items():
            parts[name].append(values)
    if not parts["prediction"]:
        return None
    return pd.DataFrame({name: _concat(values) for name, values in parts.items()})


def _concat(arrays: list) -> Any:
    import numpy as np

    if any(a.dtype == object for a in arrays):
        return np.concatenate([a.astype(object) for a in arrays])
    return np.concatenate(arrays)


def _combine(rows_frame: Any, batch_frame: Any) -> Any:
    import pandas as pd

    if batch_frame is None:
        return rows_frame
    if rows_frame.empty:
        return batch_frame
    return pd.concat([rows_frame, batch_frame], ignore_index=True)


def _too_few(count: int, min_rows: int, described: str, others: int, run_id: str | None) -> str:
    hint = (
        f"; {others} rows of that name and version come from other runs than the "
        f"registry's {run_id} (a log shared between MLflow stores?)"
        if others
        else ""
    )
    return (
        f"too few rows to judge drift: {count} logged for {described} "
        f"(need at least {min_rows}; widen the window or set "
        f"MLCYCLE_DRIFT_MIN_ROWS){hint}"
    )


def served_version(url: str, model_name: str) -> str | None:
    """The version of `model_name` that scored the newest logged row (or batch), if any.

    This is the version serving now as the log records it: after a promotion the server
    refused (an unsigned or changed version keeps the previous one serving), the registry's
    production version has no rows while this one has them all.

    Args:
        url: SQLAlchemy URL of the log.
        model_name: registered model name.

    Returns:
        The version, or None when the log is missing or holds no row of that model (the
        window read says which).
    """
    import sqlalchemy as sa

    try:
        engine = open_log(url)
    except LogError:
        return None
    try:
        with engine.connect() as conn:
            tables = [ROWS] + ([BATCHES] if sa.inspect(conn).has_table(BATCHES) else [])
            newest = [
                conn.execute(
                    sa.text(
                        f"SELECT ts, model_version FROM {table} WHERE model_name = :m "
                        "ORDER BY id DESC LIMIT 1"
                    ),
                    {"m": model_name},
                ).first()
                for table in tables
            ]
    finally:
        engine.dispose()
    found = [row for row in newest if row is not None]
    return str(max(found, key=lambda row: row[0])[1]) if found else None


def read_window(
    url: str,
    model_name: str,
    model_version: str,
    run_id: str | None,
    window: Window,
    columns: list[str],
    min_rows: int,
    cap: int,
    seed: int,
) -> LogWindow:
    """Read (a bounded sample of) one window of the log for one model version.

    Rows of `predictions` and of `prediction_batches` (when the log has that table) are read
    alike: a batch counts as its `n_rows` rows at its `ts`. A `--last N` window holds the N
    newest rows of the version by id when it has no batches; with batches, the N newest by
    time, a request straddling the boundary included whole (so possibly a few more than N).

    Args:
        url: SQLAlchemy URL of the log.
        model_name: registered model name.
        model_version: registry version.
        run_id: the version's run id; rows logged by another run are left out (mixed stores).
        window: which rows.
        columns: the input columns to parse.
        min_rows: fewest rows to judge.
        cap: sample at most this many rows (<= 0: no cap).
        seed: sampling seed.

    Returns:
        The window.

    Raises:
        LogError: missing log, or fewer than `min_rows` rows.
    """
    import sqlalchemy as sa

    engine = open_log(url)
    described = f"{model_name} v{model_version}, {window.describe()}"
    try:
        with engine.connect() as conn:
            batches = sa.inspect(conn).has_table(BATCHES)
            flt = _window_filter(conn, model_name, model_version, run_id, window, batches)
            count, first_ts, last_ts, n_batched = _stats(conn, flt)
            if count < max(min_rows, 1):
                others = _other_runs(conn, model_name, model_version, run_id, batches)
                raise LogError(_too_few(count, min_rows, described, others, run_id))
            extra, extra_params = sample_condition(count, cap, seed)
            rows = fetch_rows(conn, flt.where + extra, {**flt.params, **extra_params})
            batch_frame = fetch_batches(conn, flt, columns, count, cap, seed) if n_batched else None
    finally:
        engine.dispose()
    return LogWindow(
        n_window=count,
        first_ts=float(first_ts),
        last_ts=float(last_ts),
        frame=_combine(rows_to_frame(rows, columns), batch_frame),
    )
