"""One auth module for API keys and the admin token, on the API and the web pages alike.

Every path (own header, `Authorization: Bearer`, missing, wrong, disabled) goes through the
real app with Flask's test client, on the raw-WSGI fast path and on Flask's views.
"""

from __future__ import annotations

import pytest

from serving.app import create_app
from tests.unit.serving.stub import ROW, make_service

KEY, ADMIN = "key-two-0123456789abcdefgh", "admin-secret-0123456789abcdef"


@pytest.fixture(params=[True, False], ids=["fast-path", "flask"])
def app(request, settings):
    """The app with two API keys and an admin token."""
    cfg = settings.model_copy(update={"api_keys": ("key-1", KEY), "fast_path": request.param})
    app = create_app(cfg, make_service())
    yield app
    app.extensions["mlcycle"].close()


@pytest.fixture
def no_admin(settings):
    """A test client of the app without an admin token (admin actions off)."""
    app = create_app(settings.model_copy(update={"admin_token": None}), make_service())
    yield app.test_client()
    app.extensions["mlcycle"].close()


def _refused(resp, status: int, code: str) -> dict:
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["error_code"] == code and body["message"]
    assert body["request_id"] == resp.headers["X-Request-ID"]
    return body


PREDICTIONS = [
    ("/invocations", {"instances": [ROW]}),
    ("/predict", ROW),
    ("/v2/models/credit-risk/infer", {"inputs": [
        {"name": k, "datatype": "BYTES" if isinstance(v, str) else "FP64", "shape": [1],
         "data": [v]} for k, v in ROW.items()
    ]}),
]  # fmt: skip


@pytest.mark.parametrize("path,body", PREDICTIONS, ids=["invocations", "predict", "v2"])
def test_api_key_in_either_header(app, path, body):
    c = app.test_client()
    assert c.post(path, json=body, headers={"X-API-Key": KEY}).status_code == 200
    assert c.post(path, json=body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert c.post(path, json=body, headers={"Authorization": f"bearer  {KEY} "}).status_code == 200


@pytest.mark.parametrize("path,body", PREDICTIONS, ids=["invocations", "predict", "v2"])
def test_missing_or_wrong_api_key(app, path, body):
    c = app.test_client()
    _refused(c.post(path, json=body), 401, "UNAUTHENTICATED")
    _refused(c.post(path, json=body, headers={"Authorization": "Bearer "}), 401, "UNAUTHENTICATED")
    _refused(
        c.post(path, json=body, headers={"Authorization": "Basic a2V5"}), 401, "UNAUTHENTICATED"
    )
    _refused(c.post(path, json=body, headers={"X-API-Key": "key-3"}), 403, "PERMISSION_DENIED")
    wrong = c.post(path, json=body, headers={"Authorization": "Bearer key-"})
    assert _refused(wrong, 403, "PERMISSION_DENIED")["message"] == "invalid API key"


def test_api_keys_leave_ops_routes_open(app):
    c = app.test_client()
    assert c.get("/v2/health/ready").status_code == 200
    assert c.get("/openapi.json").status_code == 200


def test_admin_token_in_either_header_on_api_and_web(app):
    c = app.test_client()
    for headers in ({"X-Admin-Token": ADMIN}, {"Authorization": f"Bearer {ADMIN}"}):
        assert c.post("/admin/reload", headers=headers).status_code == 200
        # Past the token check the web action wants JSON (415), then a version (400).
        assert c.post("/ui/api/rollback", data="x", headers=headers).status_code == 415
        bad = c.post("/ui/api/promote", json={"version": "../1"}, headers=headers)
        assert _refused(bad, 400, "BAD_REQUEST")["field"] == "version"


@pytest.mark.parametrize("path", ["/admin/reload", "/ui/api/rollback", "/ui/api/promote"])
def test_missing_or_wrong_admin_token_same_body_on_api_and_web(app, path):
    c = app.test_client()
    missing = _refused(c.post(path, json={}), 401, "UNAUTHENTICATED")
    assert "X-Admin-Token" in missing["message"] and "Bearer" in missing["message"]
    wrong = _refused(
        c.post(path, json={}, headers={"X-Admin-Token": "x"}), 403, "PERMISSION_DENIED"
    )
    bearer = c.post(path, json={}, headers={"Authorization": "Bearer x"})
    assert _refused(bearer, 403, "PERMISSION_DENIED")["message"] == wrong["message"]
    # An API key is not an admin token.
    _refused(c.post(path, json={}, headers={"X-API-Key": KEY}), 401, "UNAUTHENTICATED")
    reference = c.post("/admin/reload", headers={"X-Admin-Token": "x"}).get_json()
    assert {k: v for k, v in wrong.items() if k != "request_id"} == {
        k: v for k, v in reference.items() if k != "request_id"
    }


@pytest.mark.parametrize("path", ["/admin/reload", "/ui/api/rollback", "/ui/api/promote"])
def test_admin_routes_disabled_without_a_token(no_admin, path):
    for headers in ({}, {"X-Admin-Token": "anything"}, {"Authorization": "Bearer anything"}):
        body = _refused(no_admin.post(path, json={}, headers=headers), 403, "PERMISSION_DENIED")
        assert body["message"] == "admin routes are disabled: set MLCYCLE_ADMIN_TOKEN"


def test_the_document_follows_the_auth_settings(app, no_admin):
    doc = app.test_client().get("/openapi.json").get_json()
    predict = doc["paths"]["/predict"]["post"]
    assert {"401", "403"} <= set(predict["responses"])
    assert predict["security"] == [{"ApiKey": []}, {"ApiKeyBearer": []}]
    assert {"200", "401", "403"} <= set(doc["paths"]["/admin/reload"]["post"]["responses"])
    off = no_admin.get("/openapi.json").get_json()
    assert "security" not in off["paths"]["/predict"]["post"]
    assert not {"401", "403"} & set(off["paths"]["/predict"]["post"]["responses"])
    assert set(off["paths"]["/admin/reload"]["post"]["responses"]) == {"403", "500"}
