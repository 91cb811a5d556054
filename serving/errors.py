"""Errors a client can cause, each carrying its HTTP status and the field it concerns.

In: raised by parsing and validation. Out: turned into one JSON error body by the app.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request the server refuses; `status` is a 4xx code, `field` names the culprit."""

    def __init__(self, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field

    def to_dict(self) -> dict:
        """The JSON error body (MLflow-style `error_code` + `message`, plus `field`)."""
        codes = {
            400: "BAD_REQUEST",
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            404: "RESOURCE_DOES_NOT_EXIST",
            405: "METHOD_NOT_ALLOWED",
            413: "REQUEST_TOO_LARGE",
            415: "UNSUPPORTED_MEDIA_TYPE",
            503: "NOT_READY",
        }
        body = {"error_code": codes.get(self.status, "BAD_REQUEST"), "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body
