"""The OpenAPI 3 document of every serving route (served at `/openapi.json`).

In: the registered model name and, when loaded, its input columns. Out: a dict.
"""

from __future__ import annotations

from serving.schema import Schema

_ERR = {"$ref": "#/components/responses/Error"}


def _op(
    summary: str,
    tag: str,
    body: dict | None = None,
    ok: dict | None = None,
    errors: tuple[str, ...] = ("400", "401", "403", "413", "415", "503"),
    security: bool = False,
) -> dict:
    op: dict = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            "200": {
                "description": "OK",
                "headers": {
                    "X-Model-Version": {"schema": {"type": "string"}},
                    "X-Request-ID": {"schema": {"type": "string"}},
                },
                "content": {"application/json": {"schema": ok or {"type": "object"}}},
            }
        },
    }
    for code in errors:
        op["responses"][code] = _ERR
    if body is not None:
        op["requestBody"] = {"required": True, "content": body}
    if security:
        op["security"] = [{"ApiKey": []}, {"Bearer": []}, {}]
    return op


def _row_schema(schema: Schema | None) -> dict:
    if schema is None:
        return {"type": "object", "additionalProperties": True}
    props = {}
    for c in schema.columns:
        if c.numeric:
            props[c.name] = {"type": ["number", "null"] if c.allow_missing else "number"}
        else:
            prop: dict = {"type": ["string", "null"] if c.allow_missing else "string"}
            if c.categories:
                prop["enum"] = sorted(c.categories) + ([None] if c.allow_missing else [])
            props[c.name] = prop
    return {
        "type": "object",
        "properties": props,
        "required": list(schema.names),
        "additionalProperties": False,
    }


def build(model_name: str, schema: Schema | None, version: str) -> dict:
    """The OpenAPI document.

    Args:
        model_name: registered model name (for the v2 paths' examples).
        schema: the loaded model's input schema, if any.
        version: mlcycle version.
    """
    row = _row_schema(schema)
    rows = {"type": "array", "items": row, "minItems": 1}
    invocation = {
        "type": "object",
        "description": "Exactly one of the four keys.",
        "properties": {
            "dataframe_split": {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
            },
            "dataframe_records": rows,
            "instances": rows,
            "inputs": {"oneOf": [rows, {"type": "object"}]},
            "params": {"type": "object"},
        },
    }
    preds = {
        "type": "object",
        "properties": {"predictions": {"type": "array", "items": {"type": "number"}}},
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string", "enum": ["FP64", "FP32", "INT64", "INT32", "BYTES"]},
            "data": {"type": "array"},
        },
    }
    v2_req = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": tensor},
            "parameters": {"type": "object"},
        },
    }
    v2_resp = {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": tensor},
        },
    }
    decision = {
        "type": "object",
        "properties": {
            "probability": {"type": "number"},
            "decision": {"type": "integer", "enum": [0, 1]},
        },
    }
    predict_resp = {
        "type": "object",
        "properties": {
            "probability": {"type": "number"},
            "decision": {"type": "integer"},
            "threshold": {"type": "number"},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "predictions": {"type": "array", "items": decision},
        },
    }
    get = ("503",)
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "example": model_name},
    }
    ver_param = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    paths = {
        "/invocations": {
            "post": _op(
                "Score rows (MLflow scoring protocol)",
                "mlflow",
                {
                    "application/json": {"schema": invocation},
                    "text/csv": {"schema": {"type": "string"}},
                },
                preds,
                security=True,
            )
        },
        "/predict": {
            "post": _op(
                "Score one row or a list of rows; probability + decision",
                "simple",
                {"application/json": {"schema": {"oneOf": [row, rows]}}},
                predict_resp,
                security=True,
            )
        },
        "/v2/health/live": {"get": _op("Liveness (OIP v2)", "v2", errors=())},
        "/v2/health/ready": {"get": _op("Readiness (OIP v2), with detail", "v2", errors=get)},
        "/v2/models/{name}": {
            "get": {
                **_op("Model metadata (OIP v2)", "v2", errors=("404", "503")),
                "parameters": [name_param],
            }
        },
        "/v2/models/{name}/ready": {
            "get": {
                **_op("Model readiness (OIP v2)", "v2", errors=("404", "503")),
                "parameters": [name_param],
            }
        },
        "/v2/models/{name}/versions/{version}": {
            "get": {
                **_op("Metadata of the loaded version (OIP v2)", "v2", errors=("404", "503")),
                "parameters": [name_param, ver_param],
            }
        },
        "/v2/models/{name}/infer": {
            "post": {
                **_op(
                    "Inference (OIP v2): one 1-D tensor per input column",
                    "v2",
                    {"application/json": {"schema": v2_req}},
                    v2_resp,
                    security=True,
                ),
                "parameters": [name_param],
            }
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {
                **_op(
                    "Inference on the loaded version (OIP v2); 404 for any other version",
                    "v2",
                    {"application/json": {"schema": v2_req}},
                    v2_resp,
                    security=True,
                ),
                "parameters": [name_param, ver_param],
            }
        },
        "/ping": {"get": _op("MLflow-compatible health check", "ops", errors=get)},
        "/health": {"get": _op("Health with readiness detail", "ops", errors=get)},
        "/version": {"get": _op("mlcycle and model versions", "ops", errors=())},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (+ drift.prom)",
                "tags": ["ops"],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {"get": _op("This document", "ops", errors=())},
        "/admin/reload": {
            "post": {
                **_op(
                    "Check the registry now and load a new version", "admin", errors=("401", "403")
                ),
                "security": [{"AdminToken": []}, {"Bearer": []}],
            }
        },
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
            "securitySchemes": {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "AdminToken": {"type": "apiKey", "in": "header", "name": "X-Admin-Token"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            },
            "responses": {
                "Error": {
                    "description": "Error",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "error_code": {"type": "string"},
                                    "message": {"type": "string"},
                                    "field": {"type": "string"},
                                },
                            }
                        }
                    },
                }
            },
        },
    }
