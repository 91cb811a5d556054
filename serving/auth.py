"""Who may call what: API keys for the prediction routes, the admin token for admin actions.

In: a request's WSGI environ (from Flask's `request.environ` or the raw-WSGI fast path) and
the configured secrets (`MLCYCLE_API_KEYS`, `MLCYCLE_ADMIN_TOKEN`). Out: nothing when the
request may go on, else a `RequestError`: 401 when no credential was sent, 403 when it is wrong
(or, for admin actions, when no admin token is configured at all). The API routes and the web
pages both call this module, so every route accepts the same headers and answers the same
JSON error body.

A credential is read from its own header (`X-API-Key`, `X-Admin-Token`) or, when that header is
absent, from `Authorization: Bearer <secret>`. Secrets are compared in constant time, and an API
key is compared against every configured key, so timing says nothing about which keys exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from serving.errors import RequestError

_BEARER = "bearer "


def require_api_key(environ: Mapping, keys: tuple[str, ...]) -> None:
    """Let the request through when API keys are off or it carries one of them.

    Args:
        environ: the request's WSGI environ.
        keys: the accepted API keys; empty means the routes are open.

    Raises:
        RequestError: 401 without a key, 403 with a key that is not accepted.
    """
    if not keys:
        return
    given = credential(environ, "X-API-Key")
    if given is None:
        raise RequestError(
            "missing API key: send header X-API-Key or Authorization: Bearer <key>", status=401
        )
    matches = [hmac.compare_digest(given, key.encode()) for key in keys]
    if not any(matches):
        raise RequestError("invalid API key", status=403)


def require_admin(environ: Mapping, token: str | None) -> None:
    """Let the request through only when it carries the configured admin token.

    Args:
        environ: the request's WSGI environ.
        token: the admin token; None (unset) turns admin actions off.

    Raises:
        RequestError: 403 when admin actions are off or the token is wrong, 401 without one.
    """
    if not token:
        raise RequestError("admin routes are disabled: set MLCYCLE_ADMIN_TOKEN", status=403)
    given = credential(environ, "X-Admin-Token")
    if given is None:
        raise RequestError(
            "missing admin token: send header X-Admin-Token or Authorization: Bearer <token>",
            status=401,
        )
    if not hmac.compare_digest(given, token.encode()):
        raise RequestError("invalid admin token", status=403)


def credential(environ: Mapping, header: str) -> bytes | None:
    """The secret sent in `header`, else in `Authorization: Bearer`; None when neither has one.

    Args:
        environ: the request's WSGI environ.
        header: the credential's own header, e.g. `X-API-Key`.

    Returns:
        The secret as bytes (WSGI header values are latin-1 text, so this is their raw bytes),
        or None when it is absent or empty.
    """
    given = environ.get("HTTP_" + header.upper().replace("-", "_"))
    if given is None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        given = auth[len(_BEARER) :] if auth[: len(_BEARER)].lower() == _BEARER else ""
    given = given.strip()
    return given.encode("latin-1", "replace") if given else None
