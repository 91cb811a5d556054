"""Request bodies of the three protocols parsed into columns, and responses built back.

In: raw body bytes + content type (MLflow scoring protocol: `dataframe_split`,
`dataframe_records`, `instances`, `inputs`, `text/csv`; `/predict`: one object or a list;
Open Inference Protocol v2 `inputs` tensors). Out: `(columns: {name: list}, n_rows)` for
`Schema.validate`, or a `RequestError` (400 malformed, 415 wrong content type).
"""

from __future__ import annotations

import csv
import io
import json
import operator
import re

import numpy as np
import orjson

from serving.errors import RequestError
from serving.schema import COLUMNAR_ROWS, Schema

_ARROW_CSV_BYTES = 64 * 1024  # CSV bodies from this size are parsed by pyarrow (C++)

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
V2_NUMERIC = {
    "FP16",
    "FP32",
    "FP64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "BOOL",
}


def media_type(content_type: str | None) -> str:
    """The bare media type (`application/json`) of a Content-Type header value."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def loads(body: bytes):
    """Parse JSON (orjson), turning any decoding problem into a 400."""
    if not body:
        raise RequestError("empty body: send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc):
            raise RequestError(f"malformed JSON: {exc}") from None
    return _loads_with_infinities(body)


def _loads_with_infinities(body: bytes):
    """Parse JSON holding a number too large for a double (`1e999`) with the standard library,
    which reads it as infinity, so the validator can answer 400 naming its column.

    Only bodies orjson refused for that reason come here (at most ~1.5x orjson's time).
    """

    def no_constants(name: str):
        raise RequestError(f"malformed JSON: {name} is not a JSON value")

    try:
        return json.loads(body, parse_constant=no_constants)
    except ValueError as exc:
        raise RequestError(f"malformed JSON: {exc}") from None


def parse_invocations(body: bytes, content_type: str | None, schema: Schema):
    """Parse an MLflow `/invocations` body (JSON or CSV) into columns.

    Returns:
        `(columns, n_rows)`.

    Raises:
        RequestError: 415 for other content types, 400 for anything malformed.
    """
    kind = media_type(content_type)
    if kind in ("text/csv", "application/csv"):
        return parse_csv(body, schema)
    if kind != "application/json":
        raise RequestError(
            f"unsupported content type '{kind or 'none'}': use application/json or text/csv",
            status=415,
        )
    doc = loads(body)
    if type(doc) is not dict:
        raise RequestError("body must be a JSON object with one of " + ", ".join(MLFLOW_FORMATS))
    present = [k for k in MLFLOW_FORMATS if k in doc]
    unknown = [k for k in doc if k not in MLFLOW_FORMATS and k != "params"]
    if unknown:
        raise RequestError(
            f"unknown key '{unknown[0]}'; expected one of " + ", ".join(MLFLOW_FORMATS),
            field=str(unknown[0]),
        )
    if len(present) != 1:
        raise RequestError(
            "send exactly one of "
            + ", ".join(MLFLOW_FORMATS)
            + (f" (got {', '.join(present)})" if present else "")
        )
    if type(doc.get("params", {})) is not dict:
        raise RequestError("'params' must be an object", field="params")
    fmt = present[0]
    value = doc[fmt]
    if fmt == "dataframe_split":
        return split_to_columns(value, schema)
    if fmt == "inputs" and type(value) is dict:
        return dict_to_columns(value, schema, fmt)
    return records_to_columns(value, schema, fmt)


def records_to_columns(records, schema: Schema, where: str = "records"):
    """A list of `{column: value}` objects to columns; every row must have exactly the columns."""
    if type(records) is not list:
        raise RequestError(f"'{where}' must be a list of objects", field=where)
    if not records:
        raise RequestError("empty batch: send at least one row", field=where)
    if len(records) >= COLUMNAR_ROWS:
        cols = _records_columnar(records, schema)
        if cols is not None:
            return cols, len(records)
    names = schema.name_set
    for i, row in enumerate(records):
        if type(row) is not dict:
            raise RequestError(f"'{where}' row {i} must be an object of column values", field=where)
        if row.keys() != names:
            schema.check_names(row.keys())
    return {c: [row[c] for row in records] for c in schema.names}, len(records)


def _records_columnar(records: list, schema: Schema) -> dict | None:
    """Many records to object-array columns with C-level checks only; None when any row is
    not an object of exactly the schema's columns (the caller's loop then names it)."""
    if set(map(type, records)) != {dict} or set(map(len, records)) != {len(schema.names)}:
        return None
    try:  # every row has all the names and no more (the lengths match): exactly the columns
        rows = list(map(operator.itemgetter(*schema.names), records))
    except KeyError:
        return None
    return _transpose(rows, schema.names)


def _transpose(rows: list, names) -> dict | None:
    """Rows (lists or tuples of `len(names)` values) to object-array columns, in one C pass.

    Returns None when the rows do not form a rectangle of scalars (the caller's Python path
    then finds and names the bad row or value).
    """
    if len(names) < 2:
        return None  # itemgetter of one name gives bare values, not tuples
    try:
        grid = np.array(rows, dtype=object)
    except ValueError:
        return None
    if grid.ndim != 2 or grid.shape[1] != len(names):
        return None
    return {name: grid[:, j] for j, name in enumerate(names)}


_SPLIT_KEYS = frozenset(("columns", "data", "index"))


def split_to_columns(split, schema: Schema):
    """pandas `split` orientation (`columns` + `data`, a list `index` ignored) to columns."""
    if type(split) is not dict:
        raise RequestError(
            "'dataframe_split' must be an object with 'columns' and 'data'", field="dataframe_split"
        )
    unknown = sorted(k for k in split if k not in _SPLIT_KEYS)
    if unknown:  # pandas' read_json(orient="split") refuses them too
        raise RequestError(
            f"unknown key 'dataframe_split.{unknown[0]}'; expected columns, data, index",
            field=f"dataframe_split.{unknown[0]}",
        )
    if type(split.get("index", [])) is not list:
        raise RequestError("'dataframe_split.index' must be a list", field="dataframe_split.index")
    columns, data = split.get("columns"), split.get("data")
    if type(columns) is not list or not all(type(c) is str for c in columns):
        raise RequestError(
            "'dataframe_split.columns' must be a list of column names",
            field="dataframe_split.columns",
        )
    if type(data) is not list:
        raise RequestError(
            "'dataframe_split.data' must be a list of rows", field="dataframe_split.data"
        )
    if not data:
        raise RequestError("empty batch: send at least one row", field="dataframe_split.data")
    if len(set(columns)) != len(columns):
        raise RequestError("duplicate column names", field="dataframe_split.columns")
    schema.check_names(columns)
    width = len(columns)
    if len(data) >= COLUMNAR_ROWS:
        cols = _transpose(data, columns)
        if cols is not None:
            return cols, len(data)
    for i, row in enumerate(data):
        if type(row) is not list or len(row) != width:
            raise RequestError(
                f"'dataframe_split.data' row {i} must be a list of {width} values",
                field="dataframe_split.data",
            )
    cols = {name: [row[j] for row in data] for j, name in enumerate(columns)}
    return cols, len(data)


def dict_to_columns(columns: dict, schema: Schema, where: str = "inputs"):
    """Columnar `{column: [values]}` (a scalar counts as one row) to columns."""
    schema.check_names(columns.keys())
    out = {}
    n = None
    for name in schema.names:
        values = columns[name]
        if type(values) is not list:
            values = [values]
        if n is None:
            n = len(values)
        elif len(values) != n:
            raise RequestError(
                f"column '{name}' has {len(values)} values, expected {n}", field=name
            )
        out[name] = values
    if not n:
        raise RequestError("empty batch: send at least one row", field=where)
    return out, n


def parse_csv(body: bytes, schema: Schema):
    """CSV with a header row to columns; empty cells are missing, numbers parsed as floats."""
    if len(body) >= _ARROW_CSV_BYTES:
        return _parse_csv_arrow(body, schema)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("CSV body must be UTF-8") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:  # a NUL byte, a field over csv's size limit
        raise RequestError(f"malformed CSV: {exc}") from None
    if not rows:
        raise RequestError("empty CSV: send a header row and at least one row")
    header, data = rows[0], [r for r in rows[1:] if r]
    if len(set(header)) != len(header):
        raise RequestError("duplicate column names in the CSV header")
    schema.check_names(header)
    if not data:
        raise RequestError("empty batch: send at least one row")
    out = {}
    for j, name in enumerate(header):
        try:
            raw = [r[j] for r in data]
        except IndexError:
            raise RequestError("CSV rows must all have the header's width") from None
        col = schema.by_name[name]
        out[name] = (
            [_csv_number(col.name, v) for v in raw]
            if col.numeric
            else [v if v != "" else None for v in raw]
        )
    return out, len(data)


def _csv_header(body: bytes, schema: Schema) -> list[str]:
    """The header row of a CSV body, checked against the schema."""
    first = body.split(b"\n", 1)[0]
    try:
        header = next(csv.reader(io.StringIO(first.decode("utf-8"))), [])
    except UnicodeDecodeError:
        raise RequestError("CSV body must be UTF-8") from None
    except csv.Error as exc:
        raise RequestError(f"malformed CSV: {exc}") from None
    if not header:
        raise RequestError("empty CSV: send a header row and at least one row")
    if len(set(header)) != len(header):
        raise RequestError("duplicate column names in the CSV header")
    schema.check_names(header)
    return header


def _parse_csv_arrow(body: bytes, schema: Schema):
    """A large CSV body parsed by pyarrow: float64 numbers, dictionary-encoded categories."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    header = _csv_header(body, schema)
    types = {
        c.name: pa.float64() if c.numeric else pa.dictionary(pa.int32(), pa.string())
        for c in schema.columns
    }
    convert = pcsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True)
    try:
        table = pcsv.read_csv(pa.py_buffer(body), convert_options=convert)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        raise RequestError(_csv_error(message, header), field=_csv_field(message, header)) from None
    if table.column_names != header:  # e.g. a quoted line break inside the header row
        raise RequestError("malformed CSV: the header row could not be read")
    if table.num_rows == 0:
        raise RequestError("empty batch: send at least one row")
    out = {}
    for name in header:
        column = table.column(name).combine_chunks()
        out[name] = (
            column.to_numpy(zero_copy_only=False)
            if schema.by_name[name].numeric
            else arrow_categorical(column)
        )
    return out, table.num_rows


def arrow_categorical(arr):
    """A dictionary-encoded Arrow column as a `pandas.Categorical` (nulls are code -1).

    Any other column (or a dictionary repeating an entry) comes back as a numpy array.
    """
    import pandas as pd
    import pyarrow as pa

    if not pa.types.is_dictionary(arr.type):
        return arr.to_numpy(zero_copy_only=False)
    codes = arr.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    categories = arr.dictionary.to_pylist()
    if len(set(categories)) != len(categories):
        return arr.to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(codes, categories=categories)


def _csv_field(message: str, header: list[str]) -> str | None:
    found = re.search(r"column #(\d+)", message)
    if found and int(found.group(1)) < len(header):
        return header[int(found.group(1))]
    return None


def _csv_error(message: str, header: list[str]) -> str:
    """pyarrow's CSV error as a message naming the column (its text, first line only)."""
    name = _csv_field(message, header)
    if "Expected" in message and "columns" in message:
        return "CSV rows must all have the header's width"
    detail = message.strip().splitlines()[0][:200]
    if name is not None and "conversion error" in message:
        value = re.search(r"invalid value '([^']*)'", message)
        shown = repr(value.group(1)[:40]) if value else "a non-number"
        return f"column '{name}' must be a number, got {shown}"
    return f"malformed CSV: {detail}"


def _csv_number(name: str, text: str):
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        raise RequestError(
            f"column '{name}' must be a number, got {text[:40]!r}", field=name
        ) from None


def parse_predict(body: bytes, content_type: str | None, schema: Schema):
    """`/predict`: one JSON object (one row) or a list of objects.

    Returns:
        `(columns, n_rows, single)` where `single` says the body was one object.
    """
    if media_type(content_type) != "application/json":
        raise RequestError("unsupported content type: use application/json", status=415)
    doc = loads(body)
    if type(doc) is dict:
        cols, n = records_to_columns([doc], schema, "body")
        return cols, n, True
    if type(doc) is list:
        cols, n = records_to_columns(doc, schema, "body")
        return cols, n, False
    raise RequestError("body must be a JSON object (one row) or a list of objects")


def parse_v2(body: bytes, content_type: str | None, schema: Schema):
    """Open Inference Protocol v2 request: one 1-D input tensor per column.

    Returns:
        `(columns, n_rows, request_id)`.
    """
    kind = media_type(content_type)
    if kind not in ("application/json", ""):
        raise RequestError("unsupported content type: use application/json", status=415)
    doc = loads(body)
    if type(doc) is not dict or type(doc.get("inputs")) is not list:
        raise RequestError(
            "body must be an object with an 'inputs' list of tensors", field="inputs"
        )
    _v2_check_keys(doc, _V2_REQUEST, "")
    rid = doc.get("id")
    if "id" in doc and type(rid) is not str:
        raise RequestError("'id' must be a string", field="id")
    outputs = doc.get("outputs", [])
    if type(outputs) is not list or not all(type(o) is dict for o in outputs):
        raise RequestError("'outputs' must be a list of objects", field="outputs")
    columns = {}
    for i, tensor in enumerate(doc["inputs"]):
        name, values = _v2_tensor(i, tensor, schema)
        if name in columns:
            raise RequestError(f"input '{name}' given twice", field=name)
        columns[name] = values
    cols, n = dict_to_columns(columns, schema, "inputs") if columns else ({}, 0)
    if not n:
        raise RequestError("empty batch: send at least one row", field="inputs")
    return cols, n, rid


_V2_REQUEST = frozenset(("id", "inputs", "outputs", "parameters"))
_V2_TENSOR = frozenset(("name", "datatype", "shape", "data", "parameters"))


def _v2_check_keys(doc: dict, allowed: frozenset, where: str) -> None:
    """Only the Open Inference Protocol's keys, and `parameters` (when given) an object."""
    unknown = sorted(k for k in doc if k not in allowed)
    if unknown:
        raise RequestError(f"unknown key '{where}{unknown[0]}'", field=f"{where}{unknown[0]}")
    if type(doc.get("parameters", {})) is not dict:
        raise RequestError(f"'{where}parameters' must be an object", field=f"{where}parameters")


def _dimension(value) -> bool:
    """A non-negative integer; `2.0` counts, as it does for JSON Schema's `integer`."""
    if type(value) is float:
        return value.is_integer() and value >= 0
    return type(value) is int and value >= 0


def _v2_tensor(i: int, tensor, schema: Schema):
    if type(tensor) is not dict:
        raise RequestError(f"inputs[{i}] must be a tensor object", field=f"inputs[{i}]")
    _v2_check_keys(tensor, _V2_TENSOR, f"inputs[{i}].")
    name, dtype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if type(name) is not str:
        raise RequestError(f"inputs[{i}].name must be a string", field=f"inputs[{i}].name")
    if name not in schema.name_set:
        raise RequestError(f"unexpected input '{name}'", field=name)
    if type(data) is not list:
        raise RequestError(f"input '{name}': 'data' must be a list", field=name)
    if data and all(type(row) is list for row in data):  # [n, 1] (or [n, k]) row by row
        data = [v for row in data for v in row]
    if type(shape) is not list or not all(_dimension(s) for s in shape):
        raise RequestError(
            f"input '{name}': 'shape' must be a list of non-negative integers", field=name
        )
    size = 1
    for s in shape:
        size *= int(s)
    if size != len(data):
        raise RequestError(
            f"input '{name}': shape {shape} does not match {len(data)} values", field=name
        )
    check_datatype(schema.by_name[name], dtype)
    return name, data


def check_datatype(col, dtype) -> None:
    """An OIP v2 tensor's datatype must suit its column: numeric, or BYTES for categories.

    Raises:
        RequestError: 400 naming the column.
    """
    if col.numeric and (type(dtype) is not str or dtype not in V2_NUMERIC):
        raise RequestError(
            f"input '{col.name}' must have a numeric datatype (FP64, INT64, ...), got {dtype!r}",
            field=col.name,
        )
    if not col.numeric and dtype != "BYTES":
        raise RequestError(
            f"input '{col.name}' must have datatype BYTES, got {dtype!r}", field=col.name
        )
