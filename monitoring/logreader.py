"""Read a window of the prediction log (Contract 2) for one model version.

In: a SQLAlchemy URL, model name/version (+ the version's run id), a `Window`, a row cap.
Out: a `LogWindow`: the window's row count and time span and a DataFrame of the (sampled) rows'
inputs and predictions.

Cheap by design, so a check over a million logged rows stays in seconds and in bounded memory:
first only the ids (and times) of the window are read, through the `(model_name, model_version,
ts)` index; when the window holds more rows than the cap, a uniform random sample of ids is
drawn; only those rows' `inputs` JSON is then fetched (in chunks by id) and parsed with orjson.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.windows import Window

log = logging.getLogger(__name__)

_FETCH_CHUNK = 900  # ids per `IN (...)` query: below SQLite's bound-parameter limit everywhere


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
        n_other_run: fetched rows dropped because another run's model logged them.
    """

    n_window: int
    first_ts: float
    last_ts: float
    frame: Any
    n_other_run: int = 0


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


def window_ids(engine: Any, model_name: str, model_version: str, window: Window) -> tuple:
    """Ids and times of the window's rows for one model version.

    Args:
        engine: the log's engine.
        model_name: registered model name.
        model_version: registry version.
        window: the window.

    Returns:
        (ids, ts) as numpy arrays.
    """
    import sqlalchemy as sa

    params: dict[str, Any] = {"m": model_name, "v": str(model_version)}
    where = "model_name = :m AND model_version = :v"
    if window.last is not None:
        sql = f"SELECT id, ts FROM predictions WHERE {where} ORDER BY id DESC LIMIT :n"
        params["n"] = int(window.last)
    else:
        sql = f"SELECT id, ts FROM predictions WHERE {where} AND ts >= :a AND ts < :b"
        params.update(a=float(window.start), b=float(window.end))
    ids: list[int] = []
    times: list[float] = []
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(sa.text(sql), params)
        for part in result.partitions(50_000):
            ids.extend(r[0] for r in part)
            times.extend(r[1] for r in part)
    return np.asarray(ids, dtype=np.int64), np.asarray(times, dtype=np.float64)


def sample_ids(ids: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """A uniform random sample of at most `cap` ids, sorted (all ids when cap <= 0 or not hit).

    Args:
        ids: the window's ids.
        cap: the most ids to keep.
        seed: random seed.

    Returns:
        The sampled ids, ascending.
    """
    if cap <= 0 or len(ids) <= cap:
        return np.sort(ids)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=cap, replace=False))


def fetch_rows(engine: Any, ids: np.ndarray) -> list[tuple[str, float, str | None]]:
    """The `(inputs, prediction, model_run_id)` of the given ids, in chunks.

    Args:
        engine: the log's engine.
        ids: row ids.

    Returns:
        One tuple per found row.
    """
    import sqlalchemy as sa

    query = sa.text(
        "SELECT inputs, prediction, model_run_id FROM predictions WHERE id IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    rows: list[tuple[str, float, str | None]] = []
    with engine.connect() as conn:
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = [int(i) for i in ids[start : start + _FETCH_CHUNK]]
            rows.extend(tuple(r) for r in conn.execute(query, {"ids": chunk}))
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
        run_id: the version's run id; rows logged by another run are dropped (mixed stores).
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
    try:
        ids, times = window_ids(engine, model_name, model_version, window)
        described = f"{model_name} v{model_version}, {window.describe()}"
        if len(ids) < max(min_rows, 1):
            raise LogError(
                f"too few rows to judge drift: {len(ids)} logged for {described} "
                f"(need at least {min_rows}; widen the window or set MLCYCLE_DRIFT_MIN_ROWS)"
            )
        rows = fetch_rows(engine, sample_ids(ids, cap, seed))
    finally:
        engine.dispose()
    kept = [r for r in rows if not run_id or not r[2] or r[2] == run_id]
    n_other = len(rows) - len(kept)
    if n_other:
        log.warning("%d rows of %s were logged by another run than %s", n_other, described, run_id)
    if len(kept) < max(1, min(min_rows, len(rows))):
        raise LogError(
            f"rows logged for {described} come from another run than the registry's {run_id}: "
            "is the prediction log shared between MLflow stores?"
        )
    return LogWindow(
        n_window=len(ids),
        first_ts=float(times.min()),
        last_ts=float(times.max()),
        frame=rows_to_frame(kept, columns),
        n_other_run=n_other,
    )
