"""The prediction-log contract (Contract 2): its tables, columns, row and batch encodings.

The one definition that the writer (`serving.predlog`), the readers (`monitoring.logreader`,
the web charts), the synthetic log (`monitoring.synthlog`), the benchmarks and the tests
import; it belongs to no stage.

Tables (SQLite file or any SQLAlchemy database, e.g. PostgreSQL):
- `predictions`: one row per scored row; `inputs` is a JSON object `{column: value}` (missing
  values as null), `prediction` the probability.
- `prediction_batches`: one row per large request; `data` holds its `n_rows` rows as one Arrow
  IPC stream (`BATCH_FORMAT`): one column per input (categories dictionary-encoded, missing
  values null) and then `prediction`. A reader counts a batch as its `n_rows` rows at its `ts`.
- `prediction_log_writers`: one row per serving process, `ts` of its last successful write
  or health probe (the writer's heartbeat; not scored data).

In: scored rows as column values and predictions. Out: row tuples in `ROW_COLUMNS` /
`BATCH_COLUMNS` order, DDL, insert statements, and the decoders readers use.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

import orjson

ROWS = "predictions"
BATCHES = "prediction_batches"
WRITERS = "prediction_log_writers"
BATCH_FORMAT = "arrow-ipc"
ROW_COLUMNS = (
    "ts",
    "request_id",
    "model_name",
    "model_version",
    "model_run_id",
    "inputs",
    "prediction",
)
BATCH_COLUMNS = (
    "ts",
    "request_id",
    "model_name",
    "model_version",
    "model_run_id",
    "n_rows",
    "format",
    "data",
)
WRITER_COLUMNS = ("writer", "ts")


def tables(metadata: Any = None) -> tuple[Any, Any, Any]:
    """The three tables as SQLAlchemy `Table`s (on `metadata`, or a fresh `MetaData`).

    `id` is an `INTEGER PRIMARY KEY`: SQLite's own rowid (no `AUTOINCREMENT`, which would
    cost a `sqlite_sequence` write per commit), a serial column on PostgreSQL.
    """
    import sqlalchemy as sa

    meta = metadata if metadata is not None else sa.MetaData()

    def common() -> list:  # fresh Column objects: a Column belongs to one table
        return [
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("ts", sa.Float(precision=53), nullable=False),
            sa.Column("request_id", sa.Text),
            sa.Column("model_name", sa.Text),
            sa.Column("model_version", sa.Text),
            sa.Column("model_run_id", sa.Text),
        ]

    rows = sa.Table(
        ROWS,
        meta,
        *common(),
        sa.Column("inputs", sa.Text),
        sa.Column("prediction", sa.Float(precision=53)),
        sa.Index("ix_predictions_model_ts", "model_name", "model_version", "ts"),
        sa.Index("ix_predictions_ts", "ts"),
    )
    batches = sa.Table(
        BATCHES,
        meta,
        *common(),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Index("ix_prediction_batches_model_ts", "model_name", "model_version", "ts"),
        sa.Index("ix_prediction_batches_ts", "ts"),
    )
    writers = sa.Table(
        WRITERS,
        meta,
        sa.Column("writer", sa.Text, primary_key=True),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
    )
    return rows, batches, writers


@lru_cache(maxsize=1)
def sqlite_ddl() -> tuple[str, ...]:
    """`CREATE TABLE/INDEX IF NOT EXISTS` statements for SQLite, compiled from `tables()`."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = sqlite.dialect()
    out = []
    for table in tables(sa.MetaData()):
        out.append(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name):
            out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    return tuple(out)


def insert_sql(table: str) -> str:
    """A qmark-style (sqlite3) INSERT of one row of `table` in its columns' order."""
    columns = {ROWS: ROW_COLUMNS, BATCHES: BATCH_COLUMNS, WRITERS: WRITER_COLUMNS}[table]
    marks = ", ".join("?" * len(columns))
    verb = "INSERT OR REPLACE" if table == WRITERS else "INSERT"
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def build_rows(
    request_id: str,
    model_name: str,
    model_version: str,
    run_id: str,
    names: tuple[str, ...],
    columns: dict,
    predictions: Any,
    ts: float | None = None,
) -> list[tuple]:
    """The `predictions` rows (`ROW_COLUMNS` order) of one scored request.

    Args:
        request_id: the request's id (every row of the request shares it).
        model_name: registered model name.
        model_version: registry version.
        run_id: the version's run id.
        names: input columns, in schema order.
        columns: input values per column (lists as received, or arrays); NaN is logged as null.
        predictions: one probability per row.
        ts: Unix time of the request (default: now).
    """
    ts = time.time() if ts is None else ts
    lists = [_plain(columns[c]) for c in names]
    preds = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
    dumps = orjson.dumps
    return [
        (
            ts,
            request_id,
            model_name,
            model_version,
            run_id,
            dumps(dict(zip(names, values, strict=True))).decode(),
            p,
        )
        for values, p in zip(zip(*lists, strict=True), preds, strict=True)
    ]


def decode_inputs(raw: str | bytes | None) -> dict:
    """The `{column: value}` of one `predictions.inputs` (empty when unreadable)."""
    try:
        record = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return {}
    return record if isinstance(record, dict) else {}


def _plain(values: Any) -> list:
    import numpy as np

    if type(values) is list:
        return values
    values = np.asarray(values)  # a pandas.Categorical becomes an object array (NaN = missing)
    if values.dtype.kind in "fO":
        return [None if v != v else v for v in values.tolist()]
    return values.tolist()


def build_batch(
    request_id: str,
    model_name: str,
    model_version: str,
    run_id: str,
    names: tuple[str, ...],
    arrays: dict,
    predictions: Any,
    ts: float | None = None,
) -> tuple:
    """The `prediction_batches` row (`BATCH_COLUMNS` order) of one large scored request.

    Args:
        arrays: the request's validated columns (float64 arrays with NaN = missing; object
            arrays of str or `pandas.Categorical` for categories).
        (the others as in `build_rows`)
    """
    ts = time.time() if ts is None else ts
    blob = encode_batch(names, arrays, predictions)
    return (ts, request_id, model_name, model_version, run_id, len(predictions), BATCH_FORMAT, blob)


def encode_batch(names: tuple[str, ...], arrays: dict, predictions: Any) -> bytes:
    """Inputs and predictions as one Arrow IPC stream (LZ4 buffers, categories dictionaries)."""
    import numpy as np
    import pyarrow as pa

    fields = {name: _arrow_column(arrays[name]) for name in names}
    fields["prediction"] = pa.array(np.asarray(predictions, dtype=np.float64))
    table = pa.table(fields)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _arrow_column(values: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    if hasattr(values, "codes") and hasattr(values, "categories"):  # pandas.Categorical
        codes = np.asarray(values.codes)
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, mask=codes < 0),
            pa.array(np.asarray(values.categories, dtype=object), type=pa.string()),
        )
    values = np.asarray(values)
    if values.dtype.kind == "O":
        return pa.array(values, type=pa.string(), from_pandas=True).dictionary_encode()
    return pa.array(values.astype(np.float64, copy=False), from_pandas=True)


def decode_batch(data: bytes, columns: list[str], mask: Any = None) -> dict[str, Any]:
    """The columns of one `prediction_batches.data` blob as numpy arrays.

    Args:
        data: the blob (an Arrow IPC stream).
        columns: the input columns to keep (absent ones become missing values).
        mask: rows to keep (boolean array), or None for all.

    Returns:
        `{column: array}` for `columns` plus `prediction`: numbers as float64 (null -> NaN),
        strings (dictionary-encoded categories too) as object arrays of str (null -> None):
        the values `decode_inputs` gives for the same rows logged one by one.
    """
    import numpy as np
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    if mask is not None:
        table = table.filter(pa.array(mask))
    out = {}
    for name in [*columns, "prediction"]:
        if name in table.column_names:
            out[name] = _to_numpy(table.column(name))
        else:
            out[name] = np.full(table.num_rows, None, dtype=object)
    return out


def _to_numpy(column: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    return column.to_numpy(zero_copy_only=False)
