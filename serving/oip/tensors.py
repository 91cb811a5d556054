"""OIP v2 gRPC tensors to columns, and probabilities back.

In: a `ModelInferRequest` (one 1-D tensor per input column, its values either in the typed
`contents` or in `raw_input_contents`: little-endian values, BYTES as 4-byte length prefixes
followed by the bytes) and the model's `Schema`.
Out: `(columns, n_rows, request id or None)` for `Schema.validate`, exactly like
`serving.protocols.parse_v2` gives them for the REST protocol, or a `RequestError` naming the
input; `infer_response` turns the REST answer's body into a `ModelInferResponse`.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson

from serving.errors import RequestError
from serving.protocols import check_datatype
from serving.schema import LOOP_ROWS, Column, Schema

OUTPUT = "probability"
RAW_DTYPES = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
# Where each datatype's values go in `InferTensorContents` (FP16 has no typed field: raw only).
TYPED_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_LENGTH = struct.Struct("<I")


def parse_infer(request, schema: Schema) -> tuple[dict, int, str | None]:
    """A `ModelInferRequest` to columns.

    Returns:
        `(columns, n_rows, the request's id or None)`: float64 arrays (Python floats for a few
        rows) for numeric columns, `str` values for categorical ones.

    Raises:
        RequestError: 400 naming the input for anything malformed.
    """
    inputs, raw = request.inputs, request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise RequestError(
            f"raw_input_contents has {len(raw)} entries for {len(inputs)} inputs: "
            "send one per input, in the order of inputs",
            field="raw_input_contents",
        )
    if request.outputs:
        _check_outputs(request)
    by_name = schema.by_name
    columns: dict = {}
    n = None
    for i, tensor in enumerate(inputs):
        name, dtype = tensor.name, tensor.datatype
        col = by_name.get(name)
        if col is None:
            raise RequestError(f"unexpected input '{name}'", field=name)
        if name in columns:
            raise RequestError(f"input '{name}' given twice", field=name)
        if not (dtype in RAW_DTYPES if col.numeric else dtype == "BYTES"):
            check_datatype(col, dtype)  # raises, naming the column
        values = _raw_values(tensor, raw[i], col) if raw else _typed_values(tensor, col)
        count = len(values)
        shape = tensor.shape
        if len(shape) != 1 or shape[0] != count:
            _check_shape(tensor, count)
        if n is None:
            n = count
        elif count != n:
            raise RequestError(f"column '{name}' has {count} values, expected {n}", field=name)
        columns[name] = _for_validation(col, values, n)
    if len(columns) != len(by_name):
        schema.check_names(columns.keys())
    if not n:
        raise RequestError("empty batch: send at least one row", field="inputs")
    return columns, n, request.id or None


def _check_outputs(request) -> None:
    for out in request.outputs:
        if out.name != OUTPUT:
            raise RequestError(
                f"unknown output '{out.name}': this model has '{OUTPUT}'", field="outputs"
            )


def _typed_values(tensor, col: Column):
    """The tensor's `contents` field for its datatype, as an array (BYTES: a list of str)."""
    field = TYPED_FIELDS.get(tensor.datatype)
    if field is None:
        raise RequestError(
            f"input '{col.name}': datatype {tensor.datatype} has no typed contents; "
            "send it in raw_input_contents",
            field=col.name,
        )
    values = getattr(tensor.contents, field)
    if tensor.datatype == "BYTES":
        return _texts(col, values)
    return np.fromiter(values, RAW_DTYPES[tensor.datatype], len(values))


def _raw_values(tensor, buffer: bytes, col: Column):
    """The tensor's entry of `raw_input_contents` as an array (BYTES: a list of str)."""
    if tensor.HasField("contents"):
        raise RequestError(
            f"input '{col.name}': send raw_input_contents or contents, not both", field=col.name
        )
    if tensor.datatype == "BYTES":
        return _texts(col, _split_bytes(col, buffer))
    dtype = RAW_DTYPES[tensor.datatype]
    if len(buffer) % dtype.itemsize:
        raise RequestError(
            f"input '{col.name}': {len(buffer)} raw bytes are not whole {tensor.datatype} values",
            field=col.name,
        )
    return np.frombuffer(buffer, dtype)


def _split_bytes(col: Column, buffer: bytes) -> list[bytes]:
    """Raw BYTES: each element a 4-byte little-endian length, then that many bytes."""
    out, at, end = [], 0, len(buffer)
    while at < end:
        if at + 4 > end:
            raise RequestError(
                f"input '{col.name}': raw BYTES end inside a length prefix", field=col.name
            )
        (size,) = _LENGTH.unpack_from(buffer, at)
        at += 4
        if at + size > end:
            raise RequestError(
                f"input '{col.name}': raw BYTES element of {size} bytes overruns the buffer",
                field=col.name,
            )
        out.append(buffer[at : at + size])
        at += size
    return out


def _texts(col: Column, values) -> list[str]:
    try:
        return [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        raise RequestError(f"input '{col.name}' must hold UTF-8 text", field=col.name) from None


def _check_shape(tensor, count: int) -> None:
    shape = list(tensor.shape)
    if any(s < 0 for s in shape) or math.prod(shape) != count:
        raise RequestError(
            f"input '{tensor.name}': shape {shape} does not match {count} values",
            field=tensor.name,
        )


def _for_validation(col: Column, values, n: int):
    """Values in the form `Schema.validate` takes fastest: numbers as float64 (Python floats
    for the few rows it checks in a loop), many categories as an object array."""
    if col.numeric:
        arr = np.asarray(values, dtype=np.float64)
        return arr.tolist() if n <= LOOP_ROWS else arr
    if n <= LOOP_ROWS:
        return values
    arr = np.empty(n, dtype=object)
    arr[:] = values
    return arr


def infer_response(response_cls, body: dict, raw: bool):
    """The REST protocol's v2 answer (`Predictor.outcome`) as a `ModelInferResponse`.

    Args:
        response_cls: the `ModelInferResponse` class (`serving.oip.contract`).
        body: `{model_name, model_version, id, outputs: [{data: probabilities}], parameters?}`.
        raw: answer in `raw_output_contents` (as the request sent its inputs) rather than in
            the typed `fp64_contents`.
    """
    preds = np.asarray(body["outputs"][0]["data"], dtype="<f8")
    resp = response_cls(
        model_name=body["model_name"], model_version=body["model_version"], id=body["id"]
    )
    out = resp.outputs.add(name=OUTPUT, datatype="FP64", shape=[len(preds)])
    if raw:
        resp.raw_output_contents.append(preds.tobytes())
    else:
        out.contents.fp64_contents.extend(preds.tolist())
    flagged = body.get("parameters", {}).get("out_of_range")
    if flagged is not None:
        resp.parameters["out_of_range"].string_param = orjson.dumps(flagged).decode()
    explained = body.get("parameters", {}).get("explanations")
    if explained is not None:  # asked with the parameter `explain` (`serving.explain`)
        resp.parameters["explanations"].string_param = orjson.dumps(explained).decode()
    return resp
