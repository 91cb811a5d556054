"""Ops routes, auth, admin token, metrics and the OpenAPI document of the serving app."""

from __future__ import annotations

from serving.app import create_app
from tests.unit.serving.stub import ROW, make_service


def test_ops_routes(client):
    assert client.get("/ping").status_code == 200
    health = client.get("/health").get_json()
    assert health["ready"] and health["model_version"] == "1"
    assert client.get("/v2/health/live").get_json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.headers["X-Model-Version"] == "1"
    assert client.get("/version").get_json()["model_version"] == "1"
    assert client.get("/nope").status_code == 404
    assert client.get("/invocations").status_code == 405


def test_openapi_covers_every_route(client):
    doc = client.get("/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    served = {}
    for rule in client.application.url_map.iter_rules():
        if rule.rule.startswith("/ui") or rule.rule in ("/", "/static/<path:filename>"):
            continue  # the web pages are not part of the API document
        path = rule.rule.replace("<", "{").replace(">", "}")
        served.setdefault(path, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    documented = {
        path: {m.upper() for m in ops if m != "parameters"} for path, ops in doc["paths"].items()
    }
    assert documented == served
    row = doc["components"]["schemas"]["Row"]
    assert set(row["properties"]) == set(ROW) and set(row["required"]) == set(ROW)
    assert row["additionalProperties"] is False
    assert row["properties"]["home"]["enum"] == ["OWN", "RENT", None]
    assert row["properties"]["purpose"] == {"type": "string", "enum": ["car", "edu"]}
    assert row["properties"]["income"] == {"type": "number"}


def test_metrics_count_requests_and_append_drift(client, settings, tmp_path):
    client.post("/invocations", json={"instances": [ROW]})
    client.post("/invocations", data="{", content_type="application/json")
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "drift.prom").write_text(
        'mlcycle_drift_detected{model_name="credit-risk",model_version="1"} 1\n'
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'mlcycle_requests_total{method="POST",model_version="1",route="/invocations",'
        'status="200"}' in text
    )
    assert 'status="400"' in text
    assert "mlcycle_prediction_score_bucket" in text
    assert (
        'mlcycle_model_info{model_name="credit-risk",model_version="1",run_id="run-1"} 1.0' in text
    )
    assert "mlcycle_prediction_log_rows_total" in text
    assert text.rstrip().endswith(
        'mlcycle_drift_detected{model_name="credit-risk",model_version="1"} 1'
    )


def test_metrics_append_the_live_performance_gauges_too(client, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "drift.prom").write_text('mlcycle_drift_share{model_version="1"} 0.5')
    (reports / "performance.prom").write_text(
        'mlcycle_live_auc{model_name="credit-risk",model_version="1"} 0.81\n'
    )
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mlcycle_drift_share{model_version="1"} 0.5\nmlcycle_live_auc{' in text
    assert text.endswith('mlcycle_live_auc{model_name="credit-risk",model_version="1"} 0.81\n')


def test_api_keys_guard_prediction_routes_only(settings):
    app = create_app(settings.model_copy(update={"api_keys": ("k1", "k2")}), make_service())
    c = app.test_client()
    assert c.post("/invocations", json={"instances": [ROW]}).status_code == 401
    assert (
        c.post("/invocations", json={"instances": [ROW]}, headers={"X-API-Key": "bad"}).status_code
        == 403
    )
    assert (
        c.post("/invocations", json={"instances": [ROW]}, headers={"X-API-Key": "k2"}).status_code
        == 200
    )
    assert c.post("/predict", json=ROW, headers={"Authorization": "Bearer k1"}).status_code == 200
    assert c.get("/v2/health/ready").status_code == 200
    app.extensions["mlcycle"].close()


def test_admin_reload_needs_the_token(client, settings):
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 403
    ok = client.post(
        "/admin/reload", headers={"Authorization": "Bearer admin-secret-0123456789abcdef"}
    )
    assert ok.status_code == 200


def test_admin_disabled_without_a_token(settings):
    app = create_app(settings.model_copy(update={"admin_token": None}), make_service())
    resp = app.test_client().post("/admin/reload", headers={"X-Admin-Token": "anything"})
    assert resp.status_code == 403
    app.extensions["mlcycle"].close()


def test_not_ready_until_a_model_is_loaded(settings, monkeypatch):
    app = create_app(settings)  # no model and no watcher (no MLflow): never ready
    serving = app.extensions["mlcycle"]
    monkeypatch.setattr(serving.state.ready, "wait", lambda timeout=None: False)
    c = app.test_client()
    ready = c.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.get_json()["ready"] is False
    assert c.get("/health").get_json()["status"] == "loading"
    assert c.get("/ping").status_code == 503
    assert c.post("/invocations", json={"instances": [ROW]}).status_code == 503
    serving.state.swap(make_service("3"))
    assert c.get("/v2/health/ready").status_code == 200
    assert c.get("/health").get_json()["status"] == "ok"
    assert c.post("/invocations", json={"instances": [ROW]}).headers["X-Model-Version"] == "3"
    serving.close()
