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

With `MLCYCLE_UI_AUTH` the web pages and `/metrics` need the admin token too: a browser logs in
once (`POST /ui/login`) and gets `UI_COOKIE`, an HttpOnly, SameSite=Strict cookie holding an
expiry and an HMAC of it keyed by the admin token (`ui_session`), so any worker can check it,
it never holds the token itself, and changing the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from werkzeug.http import parse_cookie

from serving.errors import RequestError

_BEARER = "bearer "
UI_COOKIE = "mlcycle_ui"
UI_SESSION_S = 12 * 3600


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


def ui_session(token: str, now: float | None = None) -> str:
    """A web session cookie value valid for `UI_SESSION_S` seconds: `<expiry>.<hmac>`."""
    expiry = str(int((time.time() if now is None else now) + UI_SESSION_S))
    return f"{expiry}.{_session_mac(token, expiry)}"


def _session_mac(token: str, expiry: str) -> str:
    return hmac.new(token.encode(), f"mlcycle-ui:{expiry}".encode(), hashlib.sha256).hexdigest()


def _session_ok(value: str, token: str) -> bool:
    expiry, _, mac = value.partition(".")
    if not expiry.isdigit() or int(expiry) < time.time():
        return False
    return hmac.compare_digest(mac, _session_mac(token, expiry))


def require_ui(environ: Mapping, token: str | None) -> None:
    """Let a web page or `/metrics` request through when it carries a valid session cookie or
    the admin token itself (scrapers: `Authorization: Bearer <token>`); for `MLCYCLE_UI_AUTH`.

    Raises:
        RequestError: 401 without a valid session or token, 403 with a wrong token or when no
            admin token is configured.
    """
    if token:
        cookie = parse_cookie(environ.get("HTTP_COOKIE", "")).get(UI_COOKIE)
        if cookie and _session_ok(cookie, token):
            return
        if credential(environ, "X-Admin-Token") is None:
            raise RequestError("log in at /ui/login (MLCYCLE_UI_AUTH is on)", status=401)
    require_admin(environ, token)
