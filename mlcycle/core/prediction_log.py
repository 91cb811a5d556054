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
- `labels`: the observed outcome of a served row, which arrives later than its prediction:
  `(request_id, row)` names the row (`row` = its 0-based position in the request: row i of a
  batch, or the i-th `predictions` row of the request id in `id` order: `positioned_rows_sql`),
  `label` is 0 or 1, `ts` when that label was received. One label per key: a re-sent label
  replaces the old one when it differs (a correction) and leaves the row alone when it is the
  same (`ts` stays that of the first receipt), so sending a file twice changes nothing.
- `shadow_predictions`: one row per row scored in shadow (`MLCYCLE_SHADOW`): `(request_id,
  row)` names the served row as labels do, `shadow_version` the candidate that scored it and
  `shadow_prediction` its probability, beside `production_version` / `production_prediction`,
  the answer the client got. Written by the shadow scorer in transactions of its own, never
  with the production rows; read by `mlcycle.core.shadowlog` (agreement, live AUC of both).

Private columns (`LogPrivacy`, from `MLCYCLE_LOG_HASH_COLUMNS`, `MLCYCLE_LOG_DROP_COLUMNS`): a
hashed column holds `hmac-<32 hex>` (HMAC-SHA256 keyed by `MLCYCLE_LOG_HASH_KEY` over the
value's text, numbers written as Python floats) instead of the value, the same for the same
value and key, so readers compare it with a reference hashed alike (`LogPrivacy.frame`); a
dropped column is absent from `inputs` and from batches (readers see it missing).

In: scored rows as column values and predictions; labels. Out: row tuples in `ROW_COLUMNS` /
`BATCH_COLUMNS` / `LABEL_COLUMNS` order, DDL, insert (labels: upsert) statements, and the
decoders readers use.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import lru_cache
from typing import Any

import orjson

ROWS = "predictions"
BATCHES = "prediction_batches"
WRITERS = "prediction_log_writers"
LABELS = "labels"
SHADOW = "shadow_predictions"
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
LABEL_COLUMNS = ("request_id", "row", "label", "ts")
SHADOW_COLUMNS = (
    "ts",
    "request_id",
    "row",
    "model_name",
    "shadow_version",
    "production_version",
    "shadow_prediction",
    "production_prediction",
)
HASH_PREFIX = "hmac-"


def tables(metadata: Any = None) -> tuple[Any, Any, Any, Any, Any]:
    """The five tables as SQLAlchemy `Table`s (on `metadata`, or a fresh `MetaData`):
    `predictions`, `prediction_batches`, `prediction_log_writers`, `labels`,
    `shadow_predictions`.

    `id` is an `INTEGER PRIMARY KEY`: SQLite's own rowid (no `AUTOINCREMENT`, which would
    cost a `sqlite_sequence` write per commit), a serial column on PostgreSQL. The
    `request_id` indexes serve the labels: whether a labelled row was served, and which
    position a `predictions` row holds in its request.
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
        sa.Index("ix_predictions_request", "request_id", "id"),
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
        sa.Index("ix_prediction_batches_request", "request_id"),
    )
    writers = sa.Table(
        WRITERS,
        meta,
        sa.Column("writer", sa.Text, primary_key=True),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
    )
    labels = sa.Table(
        LABELS,
        meta,
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
        sa.CheckConstraint("label IN (0, 1)", name="ck_labels_label"),
        sa.CheckConstraint('"row" >= 0', name="ck_labels_row"),
    )
    shadow = sa.Table(
        SHADOW,
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float(precision=53), nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("model_name", sa.Text),
        sa.Column("shadow_version", sa.Text),
        sa.Column("production_version", sa.Text),
        sa.Column("shadow_prediction", sa.Float(precision=53)),
        sa.Column("production_prediction", sa.Float(precision=53)),
        sa.Index("ix_shadow_predictions_model_ts", "model_name", "ts"),
        sa.Index("ix_shadow_predictions_request", "request_id", "row"),
    )
    return rows, batches, writers, labels, shadow


def create_schema(engine: Any) -> None:
    """Create the tables and indexes of `tables()` that `engine`'s database lacks.

    `MetaData.create_all` adds missing tables only; an index added to the contract later
    (the `request_id` ones) is created here on a log that predates it (a one-off build that
    holds the table's write lock while it runs).
    """
    import sqlalchemy as sa

    meta = sa.MetaData()
    tables(meta)
    meta.create_all(engine, checkfirst=True)
    inspector = sa.inspect(engine)
    for table in meta.sorted_tables:
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in sorted(table.indexes, key=lambda i: i.name):
            if index.name not in present:
                index.create(engine, checkfirst=True)


def label_upsert(table: Any, dialect: str) -> Any:
    """The idempotent insert of `labels` rows for SQLAlchemy (`sqlite` or `postgresql`).

    Execute it with a list of `{request_id, row, label, ts}` dicts: a new key is inserted, a
    key whose stored label differs gets the new label and `ts`, a key with the same label is
    left as it is.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ValueError(f"labels need SQLite or PostgreSQL (ON CONFLICT), not {dialect!r}")
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.request_id, table.c.row],
        set_={"label": statement.excluded.label, "ts": statement.excluded.ts},
        where=table.c.label != statement.excluded.label,
    )


def positioned_rows_sql(columns: str, request_ids: str) -> str:
    """SQL selecting `columns` and `position` of the `predictions` rows whose request id is in
    `request_ids` (a subquery); `position` is the row's 0-based place in its request.

    The rows of one request share its `request_id` and are inserted in order, so a row's
    position is its rank by `id` among the rows of its request id (over the whole log, not
    only a window: a request cut by a window's edge keeps its rows' positions). The ranking
    reads `ix_predictions_request` in order.
    """
    return (
        f"SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY id) - 1 "
        f"AS position FROM {ROWS} WHERE request_id IN ({request_ids})"
    )


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
    """A qmark-style (sqlite3) INSERT of one row of `table` in its columns' order.

    For `labels` it is the upsert `label_upsert` describes.
    """
    columns = {
        ROWS: ROW_COLUMNS,
        BATCHES: BATCH_COLUMNS,
        WRITERS: WRITER_COLUMNS,
        LABELS: LABEL_COLUMNS,
        SHADOW: SHADOW_COLUMNS,
    }[table]
    marks = ", ".join("?" * len(columns))
    names = ", ".join(f'"{c}"' if c == "row" else c for c in columns)
    if table == LABELS:
        return (
            f'INSERT INTO {LABELS} ({names}) VALUES ({marks}) ON CONFLICT (request_id, "row") '
            f"DO UPDATE SET label = excluded.label, ts = excluded.ts "
            f"WHERE {LABELS}.label <> excluded.label"
        )
    verb = "INSERT OR REPLACE" if table == WRITERS else "INSERT"
    return f"{verb} INTO {table} ({names}) VALUES ({marks})"


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


class LogPrivacy:
    """Which input columns the log keeps only as a keyed hash, and which it leaves out.

    Args:
        hash_columns: columns stored as `hmac-<hex>`.
        drop_columns: columns not stored.
        key: the HMAC key (required with `hash_columns`).
    """

    def __init__(
        self, hash_columns: tuple[str, ...], drop_columns: tuple[str, ...], key: str | None
    ):
        if hash_columns and not key:
            raise ValueError("hashed log columns need a key (MLCYCLE_LOG_HASH_KEY)")
        self.hash_columns = frozenset(hash_columns)
        self.drop_columns = frozenset(drop_columns)
        self._key = (key or "").encode()
        self.hash_value = lru_cache(maxsize=65_536)(self._hash)

    @classmethod
    def from_settings(cls, settings: Any) -> LogPrivacy | None:
        """The privacy of `settings` (`SharedSettings`), or None when no column is private."""
        if not settings.log_hash_columns and not settings.log_drop_columns:
            return None
        return cls(settings.log_hash_columns, settings.log_drop_columns, settings.log_hash_key)

    def _hash(self, value: Any) -> str | None:
        """`hmac-<hex>` of one value; missing values (None, NaN) stay missing."""
        if value is None or value != value:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = repr(float(value))
        else:
            text = str(value)
        mac = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:32]
        return HASH_PREFIX + mac

    def kept(self, names: tuple[str, ...]) -> tuple[str, ...]:
        """The columns of `names` the log stores."""
        return tuple(n for n in names if n not in self.drop_columns)

    def protect(self, names: tuple[str, ...], values: dict, arrays: dict) -> tuple[tuple, dict]:
        """The columns to log for one request: dropped ones left out, hashed ones replaced.

        Args:
            names: input columns, in schema order.
            values: what `build_rows` or `build_batch` would log (lists or arrays).
            arrays: the request's validated columns (hashes are taken of these, so a number
                sent as `3` or `"3"` hashes alike).

        Returns:
            (the kept names, their values), for `build_rows` / `build_batch`.
        """
        import numpy as np

        kept = self.kept(names)
        out = {}
        for name in kept:
            if name in self.hash_columns:
                out[name] = np.array(self._hash_all(arrays[name]), dtype=object)
            else:
                out[name] = values[name]
        return kept, out

    def _hash_all(self, values: Any) -> list:
        import numpy as np

        if hasattr(values, "codes") and hasattr(values, "categories"):  # pandas.Categorical
            hashed = [self.hash_value(c) for c in values.categories.tolist()]
            return [hashed[i] if i >= 0 else None for i in np.asarray(values.codes).tolist()]
        return [self.hash_value(v) for v in np.asarray(values).tolist()]

    def frame(self, frame: Any) -> Any:
        """A copy of a DataFrame (a reference sample) as the log would hold its columns."""
        out = frame.drop(columns=[c for c in frame.columns if c in self.drop_columns])
        for name in self.hash_columns & set(out.columns):
            out[name] = self._hash_all(out[name].astype(object).where(out[name].notna(), None))
        return out
