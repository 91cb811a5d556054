"""Read the served rows of a time window with their labels, for live performance.

In: the prediction log's URL, a model name, a time window `[start, end)` and optionally the
versions to keep. Out: a DataFrame with one row per served row: `ts`, `model_version`,
`prediction` (the served probability) and `label` (0.0/1.0, NaN while no label has arrived).

Both log tables are read (Contract 2): a `predictions` row is labelled by the `labels` row of
its request id and its position in the request (`positioned_rows_sql`); row i of a
`prediction_batches` blob by the label of its request id and row i (only the `prediction`
column of a blob is decoded). A log without `prediction_batches` or without `labels` (written
before they existed) reads as having none. Only the four columns cross into Python, never the
inputs JSON, so a window of 100k rows reads in well under a second on SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mlcycle.core.logdb import open_log
from mlcycle.core.prediction_log import (
    BATCH_FORMAT,
    BATCHES,
    LABELS,
    ROWS,
    decode_batch,
    positioned_rows_sql,
)

log = logging.getLogger(__name__)

COLUMNS = ("ts", "model_version", "prediction", "label")


def _where(
    alias: str, model_name: str, start: float, end: float, versions: Iterable[str] | None
) -> tuple[str, dict]:
    params: dict[str, Any] = {"m": model_name, "a": float(start), "b": float(end)}
    where = f"{alias}.model_name = :m AND {alias}.ts >= :a AND {alias}.ts < :b"
    if versions is not None:
        names = [str(v) for v in versions]
        marks = ", ".join(f":v{i}" for i in range(len(names))) or "NULL"
        where += f" AND {alias}.model_version IN ({marks})"
        params.update({f"v{i}": v for i, v in enumerate(names)})
    return where, params


def _row_frame(conn: Any, where: str, params: dict, labels: bool) -> Any:
    """The window's `predictions` rows with their labels: the rows of labelled request ids
    are ranked in their requests and joined to `labels` by (request id, position); the others
    are read as unlabelled."""
    import pandas as pd
    import sqlalchemy as sa

    if labels:
        has_label = f"EXISTS (SELECT 1 FROM {LABELS} AS k WHERE k.request_id = p.request_id)"
        ids = f"SELECT p.request_id FROM {ROWS} AS p WHERE {where} AND {has_label}"
        ranked = positioned_rows_sql(
            "id, ts, request_id, model_name, model_version, prediction", ids
        )
        sql = (
            f"SELECT p.ts, p.model_version, p.prediction, l.label FROM ({ranked}) AS p "
            f"LEFT JOIN {LABELS} AS l ON l.request_id = p.request_id "
            f'AND l."row" = p.position WHERE {where} '
            f"UNION ALL SELECT p.ts, p.model_version, p.prediction, NULL FROM {ROWS} AS p "
            f"WHERE {where} AND NOT {has_label}"
        )
    else:
        sql = f"SELECT p.ts, p.model_version, p.prediction, NULL FROM {ROWS} AS p WHERE {where}"
    result = conn.execution_options(stream_results=True).execute(sa.text(sql), params)
    return pd.DataFrame(result.fetchall(), columns=list(COLUMNS))


def _batch_labels(conn: Any, where: str, params: dict) -> dict[int, list[tuple[int, int]]]:
    """`{batch id: [(row, label), ...]}` of the window's batches."""
    import sqlalchemy as sa

    sql = (
        f'SELECT b.id, l."row", l.label FROM {BATCHES} AS b '
        f"JOIN {LABELS} AS l ON l.request_id = b.request_id WHERE {where}"
    )
    found: dict[int, list[tuple[int, int]]] = {}
    for batch_id, row, label in conn.execute(sa.text(sql), params):
        found.setdefault(int(batch_id), []).append((int(row), int(label)))
    return found


def _batch_frame(conn: Any, where: str, params: dict, labels: bool) -> Any:
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    found = _batch_labels(conn, where, params) if labels else {}
    sql = sa.text(
        f"SELECT b.id, b.ts, b.model_version, b.n_rows, b.format, b.data "
        f"FROM {BATCHES} AS b WHERE {where} ORDER BY b.id"
    )
    parts = []
    result = conn.execution_options(stream_results=True, yield_per=1).execute(sql, params)
    for batch_id, ts, version, n_rows, fmt, data in result:
        try:
            if fmt != BATCH_FORMAT:
                raise ValueError(f"unknown format {fmt!r}")
            predictions = decode_batch(data, [])["prediction"]
        except Exception as exc:  # one unreadable batch must not stop the whole window
            log.warning("skipping prediction batch %s (%s rows): %s", batch_id, n_rows, exc)
            continue
        n = len(predictions)
        label = np.full(n, np.nan)
        for row, value in found.get(int(batch_id), ()):
            if row < n:
                label[row] = value
        parts.append(
            pd.DataFrame(
                {
                    "ts": np.full(n, float(ts)),
                    "model_version": np.full(n, version, dtype=object),
                    "prediction": predictions,
                    "label": label,
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else None


def read_labelled(
    url: str,
    model_name: str,
    start: float,
    end: float,
    versions: Iterable[str] | None = None,
) -> Any:
    """The served rows of `model_name` with `start <= ts < end`, with their labels.

    Args:
        url: SQLAlchemy URL of the prediction log.
        model_name: registered model name.
        start: window start (Unix time, inclusive).
        end: window end (Unix time, exclusive).
        versions: keep only these model versions (None: every served version).

    Returns:
        A DataFrame with columns `ts` (float64), `model_version` (str), `prediction`
        (float64) and `label` (float64: 0.0, 1.0 or NaN when not labelled yet), ordered by
        `ts`.

    Raises:
        mlcycle.core.logdb.LogError: the log is missing or cannot be read.
    """
    import pandas as pd
    import sqlalchemy as sa

    versions = None if versions is None else list(versions)
    engine = open_log(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            labels = inspector.has_table(LABELS)
            where, params = _where("p", model_name, start, end, versions)
            frames = [_row_frame(conn, where, params, labels)]
            if inspector.has_table(BATCHES):
                where, params = _where("b", model_name, start, end, versions)
                frames.append(_batch_frame(conn, where, params, labels))
    finally:
        engine.dispose()
    frames = [f for f in frames if f is not None and len(f)]
    if frames:
        frame = pd.concat(frames, ignore_index=True)
    else:
        frame = pd.DataFrame({c: [] for c in COLUMNS})
    frame = frame.astype(
        {"ts": "float64", "model_version": object, "prediction": "float64", "label": "float64"}
    )
    frame["model_version"] = frame["model_version"].astype(str)
    return frame.sort_values("ts", kind="stable", ignore_index=True)


def _labelled_row_inputs(conn: Any, where: str, params: dict) -> list[dict]:
    """The window's labelled `predictions` rows: their inputs, `ts`, `model_version`, label."""
    import sqlalchemy as sa

    from mlcycle.core.prediction_log import decode_inputs

    has_label = f"EXISTS (SELECT 1 FROM {LABELS} AS k WHERE k.request_id = p.request_id)"
    ids = f"SELECT p.request_id FROM {ROWS} AS p WHERE {where} AND {has_label}"
    ranked = positioned_rows_sql("id, ts, request_id, model_name, model_version, inputs", ids)
    sql = (
        f"SELECT p.ts, p.model_version, p.inputs, l.label FROM ({ranked}) AS p "
        f'JOIN {LABELS} AS l ON l.request_id = p.request_id AND l."row" = p.position '
        f"WHERE {where}"
    )
    out = []
    for ts, version, inputs, label in conn.execute(sa.text(sql), params):
        out.append(
            {
                **decode_inputs(inputs),
                "ts": float(ts),
                "model_version": str(version),
                "label": int(label),
            }
        )
    return out


def _labelled_batch_inputs(conn: Any, where: str, params: dict, columns: list[str]) -> list:
    """The labelled rows of the window's batches, as DataFrames of `columns` + the rest."""
    import numpy as np
    import pandas as pd
    import sqlalchemy as sa

    found = _batch_labels(conn, where, params)
    if not found:
        return []
    sql = sa.text(
        f"SELECT b.id, b.ts, b.model_version, b.format, b.data FROM {BATCHES} AS b "
        f"WHERE {where} AND b.id IN ({', '.join(str(int(i)) for i in found)}) ORDER BY b.id"
    )
    parts = []
    for batch_id, ts, version, fmt, data in conn.execute(sql, params):
        if fmt != BATCH_FORMAT:
            log.warning("skipping prediction batch %s: unknown format %r", batch_id, fmt)
            continue
        rows, labels = zip(*sorted(found[int(batch_id)]), strict=True)
        decoded = decode_batch(data, columns)
        n = len(decoded["prediction"])
        keep = np.array([r for r in rows if r < n], dtype=np.int64)
        frame = pd.DataFrame({c: decoded[c][keep] for c in columns})
        frame["ts"], frame["model_version"] = float(ts), str(version)
        frame["label"] = np.array(labels[: len(keep)], dtype=np.int64)
        parts.append(frame)
    return parts


def read_labelled_inputs(
    url: str, model_name: str, start: float, end: float, columns: list[str]
) -> Any:
    """The labelled served rows of `model_name` with `start <= ts < end`, with their inputs:
    what fine-tuning and the gate learn from and judge on.

    Args:
        url: SQLAlchemy URL of the prediction log.
        model_name: registered model name.
        start: window start (Unix time, inclusive).
        end: window end (Unix time, exclusive).
        columns: the input columns to return (absent values become missing).

    Returns:
        A DataFrame of `columns` plus `ts`, `model_version` and `label` (0/1 int), ordered by
        `ts`; empty when nothing in the window is labelled.

    Raises:
        mlcycle.core.logdb.LogError: the log is missing or cannot be read.
    """
    import pandas as pd
    import sqlalchemy as sa

    engine = open_log(url)
    parts = []
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if inspector.has_table(LABELS):
                where, params = _where("p", model_name, start, end, None)
                rows = _labelled_row_inputs(conn, where, params)
                if rows:
                    parts.append(
                        pd.DataFrame(rows).reindex(
                            columns=[*columns, "ts", "model_version", "label"]
                        )
                    )
                if inspector.has_table(BATCHES):
                    where, params = _where("b", model_name, start, end, None)
                    parts += _labelled_batch_inputs(conn, where, params, columns)
    finally:
        engine.dispose()
    if not parts:
        return pd.DataFrame({c: [] for c in [*columns, "ts", "model_version", "label"]})
    frame = pd.concat(parts, ignore_index=True).sort_values("ts", kind="stable")
    return frame.reset_index(drop=True)
