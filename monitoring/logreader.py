"""Read a window of the prediction log (Contract 2) for one model version.

In: a SQLAlchemy URL, model name/version (+ the version's run id), a `Window`, a row cap.
Out: a `LogWindow`: the window's row count and time span and a DataFrame of the (sampled) rows'
inputs and predictions.

Cheap by design, so a check over a million logged rows stays in seconds and in bounded memory:
the window is counted in SQL (COUNT/MIN/MAX over the `(model_name, model_version, ts)` index;
for `--last N` the N-th newest id bounds it); when it holds more rows than the cap, the database
itself keeps an evenly spread, hash-selected ~cap of them (`sample_condition`), so only those
rows' `inputs` JSON crosses into Python (streamed in chunks) and is parsed with orjson.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.windows import Window

log = logging.getLogger(__name__)

_FETCH_CHUNK = 5_000  # rows per fetch while streaming


class LogError(Exception):
    """The prediction log cannot be read or does not hold enough rows (the message says why)."""


@dataclass
class LogWindow:
    """The rows of one window.

    Attributes:
        n_window: rows of the model version in the window (before sampling).
        first_ts: Unix time of the oldest row in the window.
        last_ts: Unix time of the newest row in the window.
        frame: sampled rows: one column per input in `columns`, plus `prediction`.
    """

    n_window: int
    first_ts: float
    last_ts: float
    frame: Any


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def open_log(url: str) -> Any:
    """A SQLAlchemy engine on the prediction log, after checking that the log exists.

    Args:
        url: SQLAlchemy URL of the log.

    Returns:
        The engine.

    Raises:
        LogError: if the SQLite file or the `predictions` table is missing, or the database
            cannot be reached.
    """
    import sqlalchemy as sa

    path = _sqlite_path(url)
    if path is not None and not path.is_file():
        raise LogError(
            f"no prediction log at {path}: serve some traffic first "
            "(or set MLCYCLE_PREDICTION_LOG_URL)"
        )
    try:
        engine = sa.create_engine(url)
        if not sa.inspect(engine).has_table("predictions"):
            raise LogError(f"the prediction log {_safe(url)} has no `predictions` table yet")
    except sa.exc.SQLAlchemyError as exc:
        raise LogError(
            f"cannot read the prediction log {_safe(url)}: {exc.__class__.__name__}"
        ) from exc
    return engine


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# Hash-based sampling in SQL: a row is kept iff (id * _MULT + seed) mod _MOD < k, with _MOD
# prime, so consecutive ids map to evenly spread residues and a window keeps ~k/_MOD of its rows
# spread evenly over it, without sending the other ids to Python.
_MULT, _MOD = 2654435761, 1_000_003


def _window_filter(
    conn: Any, model_name: str, model_version: str, run_id: str | None, window: Window
) -> tuple[str, dict]:
    """SQL condition and parameters selecting the window's rows of one model version.

    Rows are those of `model_name`/`model_version` scored by the version's run (`run_id`; rows
    logged without a run id count too): another MLflow store sharing the log, with its own
    "credit-risk v1", never leaks into the window.
    """
    import sqlalchemy as sa

    params: dict[str, Any] = {"m": model_name, "v": str(model_version)}
    where = "model_name = :m AND model_version = :v"
    if run_id:
        where += " AND (model_run_id = :r OR model_run_id IS NULL OR model_run_id = '')"
        params["r"] = run_id
    if window.last is None:
        params.update(a=float(window.start), b=float(window.end))
        return f"{where} AND ts >= :a AND ts < :b", params
    floor = conn.execute(
        sa.text(f"SELECT id FROM predictions WHERE {where} ORDER BY id DESC LIMIT 1 OFFSET :o"),
        {**params, "o": int(window.last) - 1},
    ).scalar()
    if floor is not None:  # fewer rows than N: the whole log of the version is the window
        where += " AND id >= :floor"
        params["floor"] = int(floor)
    return where, params


def _other_runs(conn: Any, model_name: str, model_version: str, run_id: str | None) -> int:
    """Rows of the same name/version logged by other runs (a log shared between stores)."""
    import sqlalchemy as sa

    if not run_id:
        return 0
    return int(
        conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM predictions WHERE model_name = :m AND model_version = :v "
                "AND model_run_id IS NOT NULL AND model_run_id <> '' AND model_run_id <> :r"
            ),
            {"m": model_name, "v": str(model_version), "r": run_id},
        ).scalar()
    )


def window_stats(conn: Any, where: str, params: dict) -> tuple[int, float | None, float | None]:
    """(row count, first ts, last ts) of the rows matching `where`."""
    import sqlalchemy as sa

    row = conn.execute(
        sa.text(f"SELECT COUNT(*), MIN(ts), MAX(ts) FROM predictions WHERE {where}"), params
    ).one()
    return int(row[0]), row[1], row[2]


def sample_condition(count: int, cap: int, seed: int) -> tuple[str, dict]:
    """Extra SQL condition keeping about `cap` of `count` rows (empty when no sampling is due).

    Args:
        count: rows in the window.
        cap: the most rows wanted (<= 0: all).
        seed: shifts which rows are kept.

    Returns:
        (condition starting with ` AND`, its parameters).
    """
    if cap <= 0 or count <= cap:
        return "", {}
    keep = max(1, math.ceil(cap / count * _MOD))
    return (
        f" AND ((id * {_MULT} + :seed) % {_MOD}) < :keep",
        {"seed": int(seed) % _MOD, "keep": keep},
    )


def fetch_rows(conn: Any, where: str, params: dict) -> list[tuple[str, float, str | None]]:
    """The `(inputs, prediction, model_run_id)` of the matching rows, streamed in chunks."""
    import sqlalchemy as sa

    sql = sa.text(f"SELECT inputs, prediction, model_run_id FROM predictions WHERE {where}")
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
    import orjson
    import pandas as pd

    parsed = []
    for raw, _, _ in rows:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record = None
        parsed.append(record if isinstance(record, dict) else {})
    data = {c: [r.get(c) for r in parsed] for c in columns}
    data["prediction"] = [p for _, p, _ in rows]
    return pd.DataFrame(data)


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
    engine = open_log(url)
    described = f"{model_name} v{model_version}, {window.describe()}"
    try:
        with engine.connect() as conn:
            where, params = _window_filter(conn, model_name, model_version, run_id, window)
            count, first_ts, last_ts = window_stats(conn, where, params)
            if count < max(min_rows, 1):
                others = _other_runs(conn, model_name, model_version, run_id)
                hint = (
                    f"; {others} rows of that name and version come from other runs than the "
                    f"registry's {run_id} (a log shared between MLflow stores?)"
                    if others
                    else ""
                )
                raise LogError(
                    f"too few rows to judge drift: {count} logged for {described} "
                    f"(need at least {min_rows}; widen the window or set "
                    f"MLCYCLE_DRIFT_MIN_ROWS){hint}"
                )
            extra, extra_params = sample_condition(count, cap, seed)
            rows = fetch_rows(conn, where + extra, {**params, **extra_params})
    finally:
        engine.dispose()
    return LogWindow(
        n_window=count,
        first_ts=float(first_ts),
        last_ts=float(last_ts),
        frame=rows_to_frame(rows, columns),
    )
