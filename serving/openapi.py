"""The OpenAPI 3.1 document of every serving route, exact enough to fuzz (at `/openapi.json`).

In: the registered model name, the loaded model's input `Schema`, version and one example row
(all None before the first load), the mlcycle version and whether API keys and the admin token
are configured. Out: a dict.

Every operation lists each status and content type it can answer, and each body's exact
schema (`additionalProperties: false`). Request schemas say what the validator
(`serving.protocols` + `serving.schema`) accepts, as tightly as JSON Schema can: per-column types,
`enum` for categories, `required` columns, no other keys, at least one row. What JSON Schema
cannot say (equal column lengths, a v2 `shape` matching its `data`, the order-dependent types
of `dataframe_split.data`) is left looser, never stricter, so a body the document calls invalid
is always refused. `tests/integration/serving/test_api_contract.py` fuzzes a real server
against this document. The web pages under `/ui` are not part of the API and are left out.
"""

from __future__ import annotations

import csv
import io

from serving.errors import ERROR_CODES
from serving.protocols import V2_NUMERIC
from serving.schema import Column, Schema

_STRING = {"type": "string"}
_PREDICTION_ERRORS = ("400", "413", "415", "422", "500", "503")
_ERROR_TEXT = {
    "400": "Malformed or invalid input (the field is named), or a non-finite input value.",
    "401": "No API key (or admin token) was sent.",
    "403": "The API key (or admin token) is wrong, or admin routes are disabled.",
    "404": "Unknown model name, or that version is not the one loaded.",
    "413": "Body over MLCYCLE_MAX_BODY_BYTES, or more rows than MLCYCLE_MAX_ROWS.",
    "415": "Content type other than the ones listed for the request body.",
    "422": (
        "A row outside the training range (MLCYCLE_OUT_OF_RANGE=reject), an unseen category, "
        "or a non-finite model output."
    ),
    "500": "Internal error: nothing about the fault is shown; the log has it under request_id.",
    "503": (
        "Retry later (see Retry-After): no model loaded yet, too many requests in flight, "
        "prediction log unavailable, or shutting down."
    ),
}


def build(
    model_name: str,
    schema: Schema | None,
    version: str,
    *,
    loaded: str | None = None,
    example: dict[str, list] | None = None,
    api_keys: bool = False,
    admin: bool = True,
) -> dict:
    """The OpenAPI document.

    Args:
        model_name: registered model name (the only `{name}` the v2 routes know).
        schema: the loaded model's input schema; None before the first load (then any row).
        version: mlcycle version.
        loaded: the loaded model version (the only `{version}` the v2 routes know), if any.
        example: one valid row as `{column: [value]}` for the request examples, if any.
        api_keys: whether `MLCYCLE_API_KEYS` is set (the prediction routes may then answer
            401/403 and need a key).
        admin: whether `MLCYCLE_ADMIN_TOKEN` is set (else `/admin/reload` only answers 403).

    Returns:
        The OpenAPI 3.1 document as a dict.
    """
    params = {
        False: _path_params(model_name, None),
        True: _path_params(model_name, loaded or ""),
    }
    row = {name: values[0] for name, values in example.items()} if example else None
    paths = {
        **_prediction_paths(params, api_keys, _examples(row, schema) if row and schema else {}),
        **_health_paths(),
        **_v2_model_paths(params),
        **_ops_paths(admin),
        **_label_paths(api_keys),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mlcycle serving",
            "version": version,
            "description": f"Serves the production version of `{model_name}`.",
        },
        "paths": paths,
        "components": {
            "schemas": {**_request_schemas(schema), **_response_schemas()},
            "responses": _error_responses(),
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "ApiKeyBearer": {"type": "http", "scheme": "bearer"},
                "AdminToken": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"},
                "AdminBearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_ok(schema: dict, description: str = "OK", headers: dict | None = None) -> dict:
    out = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _errors(*codes: str) -> dict:
    return {code: {"$ref": f"#/components/responses/E{code}"} for code in codes}


def _model_headers() -> dict:
    return {
        "X-Model-Version": {"description": "The version that answered.", "schema": _STRING},
        "X-Model-Name": {"description": "The registered model name.", "schema": _STRING},
    }


def _path_params(model_name: str, loaded: str | None) -> list[dict]:
    """`{name}`, and `{version}` unless `loaded` is None (its only value when not empty)."""
    params = [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "description": "The registered model name; any other name is a 404.",
            "schema": {"type": "string", "enum": [model_name]},
        }
    ]
    if loaded is not None:
        version = {"type": "string", "enum": [loaded]} if loaded else {"type": "string"}
        params.append(
            {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "The loaded version; any other version is a 404.",
                "schema": {**version, "minLength": 1},
            }
        )
    return params


def _examples(row: dict, schema: Schema) -> dict[str, dict]:
    """Example bodies of every request format, each holding the one example row."""
    names = list(schema.names)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerows([names, ["" if row[n] is None else row[n] for n in names]])
    tensors = [
        {
            "name": c.name,
            "datatype": "FP64" if c.numeric else "BYTES",
            "shape": [1],
            "data": [row[c.name]],
        }
        for c in schema.columns
    ]
    split = {"columns": names, "data": [[row[n] for n in names]], "index": [0]}
    invocation = {
        "dataframe_split": {"dataframe_split": split},
        "dataframe_records": {"dataframe_records": [row]},
        "instances": {"instances": [row]},
        "inputs": {"inputs": {n: [row[n]] for n in names}, "params": {}},
    }
    return {
        "invocations": {k: {"value": v} for k, v in invocation.items()},
        "csv": {"csv": {"value": text.getvalue()}},
        "predict": {"one row": {"value": row}, "rows": {"value": [row, row]}},
        "v2": {"tensors": {"value": {"id": "example-1", "inputs": tensors}}},
    }


# Request bodies ------------------------------------------------------------------------------


def _value(col: Column) -> dict:
    """One cell of a column: a number, or one of its categories; null where missing is ok."""
    if col.numeric:
        return {"type": ["number", "null"] if col.allow_missing else "number"}
    value: dict = {"type": ["string", "null"] if col.allow_missing else "string"}
    if col.categories is not None:
        value["enum"] = sorted(col.categories) + ([None] if col.allow_missing else [])
    return value


def _request_schemas(schema: Schema | None) -> dict:
    if schema is None:  # no model yet: every prediction answers 503, any row will do
        row, columns, split, tensor = ({"type": "object"},) * 4
        n_inputs: dict = {"minItems": 1}
    else:
        row = _row(schema)
        columns = _columnar(schema)
        split = _split(schema)
        tensor = {"oneOf": [_tensor(col) for col in schema.columns]}
        n_inputs = {
            "minItems": len(schema.columns),
            "maxItems": len(schema.columns),
            "allOf": [
                {"contains": {"type": "object", "properties": {"name": {"const": c.name}}}}
                for c in schema.columns
            ],
        }
    rows = {"type": "array", "items": _ref("Row"), "minItems": 1}
    return {
        "Row": row,
        "Rows": rows,
        "ColumnarInputs": columns,
        "DataframeSplit": split,
        "Invocation": _invocation(),
        "PredictRequest": {"oneOf": [_ref("Row"), _ref("Rows")]},
        "V2Tensor": tensor,
        "V2Request": _v2_request(n_inputs),
    }


def _row(schema: Schema) -> dict:
    return {
        **_closed({c.name: _value(c) for c in schema.columns}),
        "description": "One row: every input column, no other key.",
    }


def _columnar(schema: Schema) -> dict:
    def column(col: Column) -> dict:
        return {"anyOf": [_value(col), {"type": "array", "items": _value(col), "minItems": 1}]}

    return {
        **_closed({c.name: column(c) for c in schema.columns}),
        "description": "Columns: a list of values per column (all of one length) or one value.",
    }


def _split(schema: Schema) -> dict:
    width = len(schema.columns)
    cells = _any_cell(schema.columns)
    return {
        "type": "object",
        "description": (
            "pandas `split` orientation: `columns` names every input column once, in any order; "
            "each row of `data` has one value per column, typed as that column (`index`, as "
            "MLflow clients send it, is ignored)."
        ),
        "properties": {
            "columns": {
                "type": "array",
                "items": {"type": "string", "enum": list(schema.names)},
                "minItems": width,
                "maxItems": width,
                "uniqueItems": True,
            },
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "array", "items": cells, "minItems": width, "maxItems": width},
            },
            "index": {"type": "array"},
        },
        "required": ["columns", "data"],
        "additionalProperties": False,
    }


def _any_cell(columns: list[Column]) -> dict:
    """A cell of any column (a `dataframe_split` row's types depend on the `columns` order)."""
    options, seen = [], []
    for col in columns:
        value = _value(col)
        if value not in seen:
            seen.append(value)
            options.append(value)
    return options[0] if len(options) == 1 else {"anyOf": options}


def _invocation() -> dict:
    formats = {
        "dataframe_split": _ref("DataframeSplit"),
        "dataframe_records": _ref("Rows"),
        "instances": _ref("Rows"),
        "inputs": {"oneOf": [_ref("Rows"), _ref("ColumnarInputs")]},
    }
    return {
        "type": "object",
        "description": "MLflow scoring protocol: exactly one of the four formats (+ `params`).",
        "properties": {**formats, "params": {"type": "object"}},
        "oneOf": [{"required": [key]} for key in formats],
        "additionalProperties": False,
    }


def _tensor(col: Column) -> dict:
    value = _value(col)
    datatypes = sorted(V2_NUMERIC) if col.numeric else ["BYTES"]
    return {
        "type": "object",
        "properties": {
            "name": {"const": col.name},
            "datatype": {"type": "string", "enum": datatypes},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "data": {
                "anyOf": [
                    {"type": "array", "items": value},
                    {"type": "array", "items": {"type": "array", "items": value}},
                ]
            },
            "parameters": {"type": "object"},
        },
        "required": ["name", "datatype", "shape", "data"],
        "additionalProperties": False,
    }


def _v2_request(n_inputs: dict) -> dict:
    return {
        "type": "object",
        "description": "One tensor per input column; the product of `shape` is its row count.",
        "properties": {
            "id": _STRING,
            "inputs": {"type": "array", "items": _ref("V2Tensor"), **n_inputs},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "parameters": {
                "type": "object",
                "properties": {
                    "explain": {
                        "type": "boolean",
                        "description": "Attributions per row in the answer's "
                        "`parameters.explanations` (costly: at most 16 rows).",
                    }
                },
            },
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }


# Response bodies -----------------------------------------------------------------------------


def _closed(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """An object with exactly these keys (those in `optional` may be absent)."""
    return {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }


def _response_schemas() -> dict:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    flagged = {"type": "array", "items": _STRING, "description": "Columns out of range."}
    decision = _closed(
        {"probability": probability, "decision": {"enum": [0, 1]}, "out_of_range": flagged},
        ("out_of_range",),
    )
    common = {"threshold": {"type": "number"}, "model_name": _STRING, "model_version": _STRING}
    explanation = _ref("Explanation")
    decision["properties"]["explanation"] = explanation
    decision["required"] = ["probability", "decision"]
    return {
        "Error": _error_schema(None),
        "Explanation": _closed(
            {
                "base_value": {"type": "number"},
                "attributions": {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                    "description": "Per input column; they add up to the prediction minus "
                    "`base_value` (in `space`).",
                },
                "space": {"enum": ["probability", "log_odds"]},
            }
        ),
        "OutOfRange": {
            "type": "array",
            "description": "The rows with a value outside the training range, and which columns.",
            "items": _closed(
                {
                    "row": {"type": "integer", "minimum": 0},
                    "columns": {"type": "array", "items": _STRING},
                }
            ),
        },
        "Predictions": _closed(
            {
                "predictions": {"type": "array", "items": probability, "minItems": 1},
                "out_of_range": _ref("OutOfRange"),
                "explanations": {"type": "array", "items": explanation},
            },
            ("out_of_range", "explanations"),
        ),
        "PredictResponse": {
            "oneOf": [
                _closed({**decision["properties"], **common}, ("out_of_range", "explanation")),
                _closed(
                    {"predictions": {"type": "array", "items": decision, "minItems": 1}, **common}
                ),
            ]
        },
        "V2Response": _closed(
            {
                "model_name": _STRING,
                "model_version": _STRING,
                "id": _STRING,
                "outputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": _closed(
                        {
                            "name": {"const": "probability"},
                            "datatype": {"const": "FP64"},
                            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                            "data": {"type": "array", "items": probability, "minItems": 1},
                        }
                    ),
                },
                "parameters": _closed(
                    {
                        "out_of_range": _ref("OutOfRange"),
                        "explanations": {"type": "array", "items": explanation},
                    },
                    ("out_of_range", "explanations"),
                ),
            },
            ("parameters",),
        ),
        "Readiness": _closed(_readiness(), READINESS_EXTRA),
    }


READINESS_EXTRA = ("draining", "worker_pid", "prediction_log")  # the health routes add these


def _readiness() -> dict:
    """The properties of `ServingState.detail()` plus what the health routes add (`/health`
    also adds `status`)."""
    nullable = {"type": ["string", "null"]}
    number = {"type": ["number", "null"]}
    load_error = _closed(
        {
            "version": _STRING,
            "error": _STRING,
            "at": {"type": "number"},
            "attempts": {"type": "integer"},
            "next_retry_at": {"type": "number"},
        }
    )
    prediction_log = _closed(
        {
            "available": {"type": "boolean"},
            "error": nullable,
            "unavailable_since": number,
            "waiting": {"type": "integer"},
            "stalled_s": {"type": "number"},
        }
    )
    return {
        "ready": {"type": "boolean"},
        "model_name": nullable,
        "model_version": nullable,
        "run_id": nullable,
        "target_version": nullable,
        "last_load_error": {"oneOf": [{"type": "null"}, load_error]},
        "registry_error": nullable,
        "last_check": number,
        "draining": nullable,
        "worker_pid": {"type": "integer"},
        "prediction_log": prediction_log,
    }


def _error_schema(status: str | None) -> dict:
    code = {"type": "string"}
    if status is not None:
        code = {"const": ERROR_CODES[int(status)]}
    return _closed(
        {
            "error_code": code,
            "message": _STRING,
            "field": _STRING,
            "detail": {"type": "object"},
            "request_id": _STRING,
        },
        ("field", "detail", "request_id"),
    )


def _error_responses() -> dict:
    out = {}
    for status, text in _ERROR_TEXT.items():
        headers = {"X-Request-ID": {"schema": _STRING}}
        if status == "503":
            headers["Retry-After"] = {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        out[f"E{status}"] = {**_json_ok(_error_schema(status), text), "headers": headers}
    return out


# Paths ---------------------------------------------------------------------------------------


def _prediction_op(summary: str, tag: str, body: dict, ok: str, api_keys: bool, v2: bool) -> dict:
    codes = _PREDICTION_ERRORS + (("401", "403") if api_keys else ()) + (("404",) if v2 else ())
    headers = {"X-Request-ID": {"schema": _STRING}, **_model_headers()}
    op = {
        "summary": summary,
        "tags": [tag],
        "requestBody": {"required": True, "content": body},
        "responses": {"200": _json_ok(_ref(ok), headers=headers), **_errors(*sorted(codes))},
    }
    if api_keys:
        op["security"] = [{"ApiKey": []}, {"ApiKeyBearer": []}]
    return op


EXPLAIN_QUERY = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean"},
    "description": "Add each row's additive feature attributions (exact Shapley values; at "
    "most 16 rows, up to ~1 s each): `explanation` per row on /predict, `explanations` on "
    "/invocations.",
}


def _media(schema: dict, examples: dict | None) -> dict:
    return {"schema": schema, "examples": examples} if examples else {"schema": schema}


def _prediction_paths(params: dict[bool, list], api_keys: bool, examples: dict) -> dict:
    json_body = {"application/json": _media(_ref("V2Request"), examples.get("v2"))}
    text = _media(
        {"type": "string", "description": "A header row, then one line per row."},
        examples.get("csv"),
    )
    invocations = {
        "application/json": _media(_ref("Invocation"), examples.get("invocations")),
        "text/csv": text,
        "application/csv": text,
    }
    v2 = _prediction_op(
        "Inference (OIP v2): one 1-D tensor per input column",
        "v2",
        json_body,
        "V2Response",
        api_keys,
        True,
    )
    v2_version = _prediction_op(
        "Inference on the loaded version (OIP v2); 404 for any other version",
        "v2",
        json_body,
        "V2Response",
        api_keys,
        True,
    )
    predict_body = {"application/json": _media(_ref("PredictRequest"), examples.get("predict"))}
    paths = {
        "/invocations": {
            "post": _prediction_op(
                "Score rows (MLflow scoring protocol)",
                "mlflow",
                invocations,
                "Predictions",
                api_keys,
                False,
            )
        },
        "/predict": {
            "post": _prediction_op(
                "Score one row (object) or many (list): probability + decision",
                "simple",
                predict_body,
                "PredictResponse",
                api_keys,
                False,
            )
        },
        "/v2/models/{name}/infer": {"parameters": params[False], "post": v2},
        "/v2/models/{name}/versions/{version}/infer": {
            "parameters": params[True],
            "post": v2_version,
        },
    }
    for path in ("/invocations", "/predict"):
        paths[path]["post"]["parameters"] = [EXPLAIN_QUERY]
    return paths


def _get(summary: str, tag: str, responses: dict) -> dict:
    return {
        "get": {"summary": summary, "tags": [tag], "responses": {**responses, **_errors("500")}}
    }


def _health_paths() -> dict:
    ready = _ref("Readiness")
    health = _closed({**_readiness(), "status": {"enum": ["ok", "loading"]}}, READINESS_EXTRA)
    live = _closed({"live": {"type": "boolean"}, "reason": _STRING}, ("reason",))
    text = {"text/plain": {"schema": _STRING}}
    return {
        "/ping": _get(
            "MLflow-compatible health check: 200 with a model loaded (body a line break)",
            "ops",
            {
                "200": {"description": "A model is loaded.", "content": text},
                "503": {"description": "No model loaded yet.", "content": text},
            },
        ),
        "/health": _get(
            "Health with readiness detail",
            "ops",
            {"200": _json_ok(health), "503": _json_ok(health, "Not ready in every worker.")},
        ),
        "/v2/health/live": _get(
            "Liveness (OIP v2)",
            "v2",
            {"200": _json_ok(live), "503": _json_ok(live, "Not live: restart the server.")},
        ),
        "/v2/health/ready": _get(
            "Readiness (OIP v2), with detail",
            "v2",
            {"200": _json_ok(ready), "503": _json_ok(ready, "No model in every worker yet.")},
        ),
    }


def _v2_model_paths(params: dict[bool, list]) -> dict:
    tensor_meta = _closed(
        {
            "name": _STRING,
            "datatype": {"enum": ["FP64", "BYTES"]},
            "shape": {"type": "array", "items": {"type": "integer"}},
        }
    )
    metadata = _closed(
        {
            "name": _STRING,
            "versions": {"type": "array", "items": _STRING},
            "platform": _STRING,
            "inputs": {"type": "array", "items": tensor_meta},
            "outputs": {"type": "array", "items": tensor_meta},
        }
    )
    ready = _closed({"name": _STRING, "version": _STRING, "ready": {"const": True}})
    model_errors = _errors("404", "503")
    out = {
        "/v2": _get(
            "Server metadata (OIP v2)",
            "v2",
            {
                "200": _json_ok(
                    _closed(
                        {
                            "name": _STRING,
                            "version": _STRING,
                            "extensions": {"type": "array", "items": _STRING},
                        }
                    )
                )
            },
        )
    }
    for suffix, with_version in (("", False), ("/versions/{version}", True)):
        meta = _get("Model metadata (OIP v2)", "v2", {"200": _json_ok(metadata), **model_errors})
        readiness = _get("Model readiness (OIP v2)", "v2", {"200": _json_ok(ready), **model_errors})
        out[f"/v2/models/{{name}}{suffix}"] = {"parameters": params[with_version], **meta}
        out[f"/v2/models/{{name}}{suffix}/ready"] = {
            "parameters": params[with_version],
            **readiness,
        }
    return out


def _ops_paths(admin: bool) -> dict:
    nullable = {"type": ["string", "null"]}
    version = _closed(
        {
            "mlcycle": _STRING,
            "model_name": _STRING,
            "model_version": nullable,
            "run_id": nullable,
        }
    )
    reloaded = {
        "oneOf": [
            _closed({"reloaded": {"const": False}, "reason": _STRING}),
            _closed(
                {
                    "reloaded": {"type": "boolean"},
                    "previous_version": nullable,
                    "model_version": nullable,
                    "worker_pid": {"type": "integer"},
                    "other_workers_signalled": {"type": "boolean"},
                    "detail": _ref("Readiness"),
                }
            ),
        ]
    }
    reload_responses = (
        {"200": _json_ok(reloaded), **_errors("401", "403", "500")}
        if admin
        else _errors("403", "500")
    )
    reload = {
        "summary": "Check the registry now and load a new version (admin token)",
        "tags": ["admin"],
        "responses": reload_responses,
    }
    if admin:
        reload["security"] = [{"AdminToken": []}, {"AdminBearer": []}]
    metrics = {"text/plain; version=0.0.4": {"schema": _STRING}}
    return {
        "/version": _get("mlcycle and model versions", "ops", {"200": _json_ok(version)}),
        "/metrics": _get(
            "Prometheus metrics of all workers (+ the drift job's drift.prom)",
            "ops",
            {"200": {"description": "Prometheus text format 0.0.4.", "content": metrics}},
        ),
        "/openapi.json": _get("This document", "ops", {"200": _json_ok({"type": "object"})}),
        "/admin/reload": {"post": reload},
    }


def _label_paths(api_keys: bool) -> dict:
    count = {"type": "integer", "minimum": 0}
    # Any list is accepted: an entry that is not {request_id, row?, label} is counted as
    # invalid in the receipt, never a reason to refuse the others.
    entry = {
        "description": (
            "{request_id: string (1-200 characters), row: integer >= 0 (default 0), label: 0, 1, "
            "true or false}; anything else is counted as invalid in the receipt."
        ),
        "examples": [{"request_id": "3f2a9c", "row": 0, "label": 1}],
    }
    entries = {"type": "array", "items": entry}
    body = {"oneOf": [entries, _closed({"labels": entries})]}
    receipt = _closed(
        {
            **{k: count for k in ("received", "stored", "updated", "unchanged", "duplicates")},
            "unknown": count,
            "invalid": count,
            "unknown_ids": {
                "type": "array",
                "items": _closed({"request_id": _STRING, "row": count}),
            },
            "invalid_entries": {
                "type": "array",
                "items": _closed({"index": count, "reason": _STRING}),
            },
        }
    )
    codes = ("400", "404", "413", "415", "500", "503") + (("401", "403") if api_keys else ())
    op = {
        "summary": "Observed outcomes of served rows (by request id and row)",
        "description": (
            "Idempotent on (request_id, row): a changed label replaces the old one. Unknown "
            "rows and invalid entries are counted and named in the receipt, never stored; "
            "they do not fail the rest of the list."
        ),
        "tags": ["feedback"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": _json_ok(receipt, headers={"X-Request-ID": {"schema": _STRING}}),
            **_errors(*sorted(codes)),
        },
    }
    if api_keys:
        op["security"] = [{"ApiKey": []}, {"ApiKeyBearer": []}]
    return {"/labels": {"post": op}}
