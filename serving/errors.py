"""Errors the server answers on purpose, each carrying its HTTP status and the field it concerns.

In: raised by authentication, parsing, validation, the range guard, admission control and the
prediction log. Out: turned into one JSON error body by the app (`to_dict`, plus the request
id), with `headers` (e.g. `Retry-After`) on the response. Anything else raised while serving a
request is an internal error: a 500 with the request id, logged with its traceback.
`request_id` gives that id: the client's `X-Request-ID`, else a fresh one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


class RequestError(Exception):
    """A request the server refuses: a 4xx the client can fix, or a 503 it can retry.

    Attributes:
        status: HTTP status.
        field: the input field (column, JSON key) the error concerns, if one.
        detail: extra JSON-able facts for the body (e.g. a column's training range).
        retry_after: seconds for a `Retry-After` header (503 answers).
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        field: str | None = None,
        *,
        detail: dict | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field
        self.detail = detail
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error asks for."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}

    def to_dict(self, request_id: str | None = None) -> dict:
        """The JSON error body: MLflow-style `error_code` + `message`, then `field`, `detail`
        and `request_id` when known."""
        body = {"error_code": ERROR_CODES.get(self.status, "BAD_REQUEST"), "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.detail is not None:
            body["detail"] = self.detail
        if request_id is not None:
            body["request_id"] = request_id
        return body


def request_id(environ: Mapping) -> str:
    """The request's `X-Request-ID` header (WSGI environ), else a fresh id.

    A fresh id is 33 hex digits, time-ordered like a UUIDv7: 13 of microseconds since the epoch,
    then 20 random. Ids that grow with time land at the end of the log's `request_id` index
    (which the labels look up), where an insert touches the pages already in cache; random ids
    would write all over it.
    """
    return (
        environ.get("HTTP_X_REQUEST_ID") or f"{time.time_ns() // 1000:012x}{os.urandom(10).hex()}"
    )


def internal_error_body(request_id: str) -> dict:
    """The body of a 500: no detail of the fault (that goes to the log), the request id."""
    return {"error_code": "INTERNAL_ERROR", "message": "internal error", "request_id": request_id}


class Unavailable(RequestError):
    """A 503 the client may retry after `retry_after` seconds (overload, store down, draining)."""

    def __init__(self, message: str, retry_after: int = 1, field: str | None = None) -> None:
        super().__init__(message, 503, field, retry_after=retry_after)
