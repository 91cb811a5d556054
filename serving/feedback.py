"""`POST /labels`: the observed outcomes of served rows, stored beside the prediction log.

In: a JSON list of `{request_id, row, label}` (`row` defaults to 0; also `{"labels": [...]}`),
with an API key when `MLCYCLE_API_KEYS` is set. Out: the receipt of
`serving.predlog.labels.LabelStore.store` as JSON: how many were stored, updated, unchanged,
duplicated, and which were unknown or invalid. A bad entry never fails the rest; a body that is
not a list of entries is a 400, one that is not `application/json` a 415; with the prediction
log off there is nothing to label (404); a log that cannot be opened is a 503 to retry.
"""

from __future__ import annotations

import logging
import threading

import orjson
from flask import Flask, Response, request

from serving.auth import require_api_key
from serving.errors import RequestError, Unavailable, request_id

log = logging.getLogger(__name__)
JSON = "application/json"


class Labels:
    """One worker's `LabelStore`, opened on the first `POST /labels` (no I/O at start-up)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self._url, self._timeout_s = url, timeout_s
        self._store = None
        self._lock = threading.Lock()

    def store(self, entries: list):
        """Store `entries`; the receipt. Raises `Unavailable` when the log cannot be opened."""
        from serving.predlog import open_store
        from serving.predlog.labels import LabelError, LabelStore

        with self._lock:
            if self._store is None:
                try:
                    # The server's own log: create it if no prediction has been logged yet.
                    open_store(self._url, timeout_s=self._timeout_s).close()
                    self._store = LabelStore(self._url, timeout_s=self._timeout_s)
                except (LabelError, OSError, *_store_errors()) as exc:
                    log.warning("labels: cannot open the prediction log: %s", exc)
                    raise Unavailable("the prediction log cannot be opened now; retry") from exc
        return self._store.store(entries)


def _store_errors() -> tuple[type[Exception], ...]:
    import sqlite3

    import sqlalchemy as sa

    return sqlite3.Error, sa.exc.SQLAlchemyError


def entries_of(body: bytes) -> list:
    """The label entries of a request body, or a 400 naming what is wrong with it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not JSON: {exc}") from None
    if isinstance(doc, dict) and set(doc) == {"labels"}:
        doc = doc["labels"]
    if not isinstance(doc, list):
        raise RequestError(
            'body must be a JSON list of {"request_id", "row", "label"} objects', field="labels"
        )
    return doc


def register(app: Flask, settings, labels: Labels | None) -> None:
    """Add `POST /labels` to `app`; `labels` is None when the prediction log is off."""

    @app.post("/labels")
    def post_labels():
        rid = request_id(request.environ)
        try:
            require_api_key(request.environ, settings.api_keys)
            if labels is None:
                raise RequestError(
                    "the prediction log is off (MLCYCLE_LOG_PREDICTIONS): no rows to label",
                    status=404,
                )
            if request.mimetype != JSON:
                raise RequestError(
                    f"content type {request.mimetype or 'none'} is not supported: send {JSON}",
                    status=415,
                )
            limit = settings.max_body_bytes
            body = request.stream.read(limit + 1)  # bounded also without a Content-Length
            if len(body) > limit or (request.content_length or 0) > limit:
                raise RequestError(f"body over {limit} bytes (MLCYCLE_MAX_BODY_BYTES)", 413)
            receipt = labels.store(entries_of(body))
        except RequestError as exc:
            body, status, headers = exc.to_dict(rid), exc.status, exc.headers
        else:
            body, status, headers = receipt.as_dict(), 200, {}
            log.info("labels %s: %s", rid, receipt.line())
        return Response(
            orjson.dumps(body), status, headers={**headers, "X-Request-ID": rid}, mimetype=JSON
        )
