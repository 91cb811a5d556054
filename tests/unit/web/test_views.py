"""The web routes through Flask's test client, on the real serving app with a tiny real model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tests.helpers import performance_traffic, write_performance_check

HOSTILE = "<script>alert(1)</script>"
TOKEN = "web-admin-token-0123456789abcdef"
SPEC = {
    "target": "default",
    "positive_label": 1,
    "numeric": [
        {
            "name": "age",
            "dtype": "long",
            "mean": 40.0,
            "std": 10.0,
            "median": 40.0,
            "min": 18.0,
            "max": 80.0,
            "allow_missing": True,
        },
    ],
    "categorical": [{"name": "home", "categories": ["OWN", HOSTILE], "allow_missing": True}],
    "feature_order": ["age", "home=OWN", f"home={HOSTILE}"],
}


def make_client(tmp_path, admin_token: str | None = TOKEN, **settings_fields):
    from pipelines.model_code import TabularNetModel
    from serving.app import create_app
    from serving.model import ModelService
    from serving.settings import Settings

    rng = np.random.default_rng(0)
    model = TabularNetModel().setup(
        SPEC, [(rng.normal(size=(3, 4)), np.zeros(4)), (rng.normal(size=(4, 1)), np.zeros(1))]
    )
    settings = Settings(
        prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}",
        reports_dir=str(tmp_path / "reports"),
        admin_token=admin_token,
        start_watcher=False,
        log_predictions=False,
        batching=False,
        **settings_fields,
    )
    app = create_app(settings, ModelService(model, "credit-risk", "7", "run"))
    return app.test_client()


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)


def test_home_is_the_predict_form_with_escaped_categories(client):
    resp = client.get("/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert 'name="age"' in html and 'data-min="18"' in html and 'data-max="80"' in html
    assert ' min="18"' not in html  # shown, not enforced: the server flags values outside
    assert 'name="home"' in html and HOSTILE not in html and "&lt;script&gt;" in html
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert "v7" in html


@pytest.mark.parametrize("path", ["/ui/predict", "/ui/live", "/ui/monitoring"])
def test_pages_render(client, path):
    assert client.get(path).status_code == 200


def test_monitoring_lists_runs_escaped_and_serves_their_report(client, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "r1.html").write_text("<html>evidently report</html>")
    entry = {
        "id": "r1",
        "timestamp": 1.0e9,
        "model_version": "7",
        "window": HOSTILE,
        "verdict": "drift",
        "dataset_drift": True,
        "drift_share": 0.5,
        "rows": 10,
    }
    (reports / "index.json").write_text(json.dumps({"runs": [entry]}))
    html = client.get("/ui/monitoring").get_data(as_text=True)
    assert "/ui/reports/r1" in html and HOSTILE not in html and "<svg" in html
    report = client.get("/ui/reports/r1")
    assert report.status_code == 200 and b"evidently report" in report.data
    assert report.headers["X-Content-Type-Options"] == "nosniff"
    for bad in ["/ui/reports/..%2Freports%2Fr1", "/ui/reports/%2Fetc%2Fpasswd", "/ui/reports/.."]:
        assert client.get(bad).status_code == 404


def test_admin_actions_need_a_json_post_with_the_token_header(client):
    ok_headers = {"X-Admin-Token": TOKEN}
    assert client.post("/ui/api/promote", json={"version": "1"}).status_code == 401
    wrong = client.post("/ui/api/promote", json={"version": "1"}, headers={"X-Admin-Token": "x"})
    assert wrong.status_code == 403
    form = client.post("/ui/api/promote", data={"version": "1"}, headers=ok_headers)
    assert form.status_code == 415  # a cross-site HTML form cannot do this
    bad = client.post("/ui/api/promote", json={"version": "../1"}, headers=ok_headers)
    assert bad.status_code == 400 and "version" in bad.get_json()["message"]


def test_admin_actions_are_off_without_a_server_token(tmp_path):
    client = make_client(tmp_path, admin_token=None)
    resp = client.post("/ui/api/rollback", json={}, headers={"X-Admin-Token": "anything"})
    assert resp.status_code == 403 and "MLCYCLE_ADMIN_TOKEN" in resp.get_json()["message"]


def test_serving_and_live_json(client):
    assert client.get("/ui/api/serving").get_json()["model_version"] == "7"
    client.post("/predict", json={"age": 30, "home": "OWN"})
    live = client.get("/ui/api/live").get_json()
    assert live["requests"] >= 1 and "p99_ms" in live and live["scores"]


def test_monitoring_shows_live_auc_per_version_from_the_performance_job(client, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    now = time.time() // 3600 * 3600
    rows = performance_traffic(6, start=now - 6 * 3600)
    summary = write_performance_check(reports, rows, now - 6 * 3600, now, now=now)
    html = client.get("/ui/monitoring").get_data(as_text=True)
    assert 'id="live-auc"' in html and "v1" in html and "v2" in html
    live = summary["versions"][0]["overall"]["auc"]
    assert f"{live:.3f}" in html and "0.900" in html  # live and validation AUC of v1
    assert 'aria-label="live AUC per model version"' in html
    assert html.count("<circle") >= 12  # 6 hourly windows x 2 versions
    assert "No drift runs yet" in html, "performance summaries are not drift runs"
    link = f"/ui/reports/{summary['id']}"
    assert link in html and b"<html" in client.get(link).data.lower()


@pytest.mark.parametrize("content", [None, "{broken", '{"versions": [1, {"version": []}]}'])
def test_monitoring_renders_without_usable_live_performance(client, tmp_path, content):
    reports = tmp_path / "reports"
    reports.mkdir()
    if content is not None:
        (reports / "performance-latest.json").write_text(content)
    resp = client.get("/ui/monitoring")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="no-live-performance"' in html


def test_reports_are_sandboxed_away_from_the_pages_origin(tmp_path):
    client = make_client(tmp_path)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "run-1.html").write_text("<script>document.cookie</script>")
    resp = client.get("/ui/reports/run-1")
    assert resp.status_code == 200
    assert resp.headers["Content-Security-Policy"] == "sandbox allow-scripts"
    assert "sandbox" not in client.get("/ui/monitoring").headers["Content-Security-Policy"]


def test_ui_auth_sends_pages_to_the_login_and_a_session_cookie_lets_them_in(tmp_path):
    from serving.auth import UI_COOKIE

    client = make_client(tmp_path, ui_auth=True)
    first = client.get("/ui/models")
    assert first.status_code == 303 and first.headers["Location"].startswith("/ui/login?next=")
    assert client.get("/ui/api/serving").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/ui/static/app.css").status_code == 200
    wrong = client.post("/ui/login", data={"token": "wrong", "next": "/ui/models"})
    assert wrong.status_code == 403 and client.get_cookie(UI_COOKIE) is None
    ok = client.post("/ui/login", data={"token": TOKEN, "next": "//evil.example/"})
    assert ok.status_code == 303 and ok.headers["Location"] == "/ui/"
    cookie = ok.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert client.get("/ui/models").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_ui_auth_lets_a_scraper_in_with_the_token_and_is_off_by_default(tmp_path):
    guarded = make_client(tmp_path, ui_auth=True)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/metrics", headers=bearer).status_code == 200
    assert guarded.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert make_client(tmp_path / "open").get("/metrics").status_code == 200


def test_models_page_shows_the_shadow_agreement_and_both_live_aucs(tmp_path, monkeypatch):
    import sqlite3

    from mlcycle.core import prediction_log as contract
    from serving.shadow import ShadowLog

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = make_client(tmp_path)
    before = client.get("/ui/models").get_data(as_text=True)
    assert 'id="shadow"' in before and "Candidate" not in before  # no log yet: a note
    now = time.time()
    # 4 rows: two decision flips, |Δp| of 0.1, 0.45, 0.3, 0.0; labels 1, 0, 1, 0.
    shadow = [0.7, 0.2, 0.45, 0.1]
    production = [0.6, 0.65, 0.75, 0.1]
    writer = ShadowLog(f"sqlite:///{tmp_path / 'log.db'}")
    writer(
        [
            (now, "req-1", i, "credit-risk", "8", "7", s, p)
            for i, (s, p) in enumerate(zip(shadow, production, strict=True))
        ]
    )
    writer.close()
    with sqlite3.connect(tmp_path / "log.db") as conn:  # labels as the feedback route stores them
        conn.executemany(
            contract.insert_sql(contract.LABELS),
            [("req-1", i, y, now) for i, y in enumerate([1, 0, 1, 0])],
        )
    page = client.get("/ui/models").get_data(as_text=True)
    section = page[page.index('id="shadow"') :]
    assert "Candidate v8 scored beside production v7" in section
    cells = [c.split("</td>")[0] for c in section.split("<td>")[1:8]]
    assert cells[:4] == ["4", "50.00 %", "0.2125", "0.4275"]
    assert cells[4:] == ["4", "1.0000", "0.7500"]  # same rows, both versions


def test_predict_page_offers_explanations_drawn_as_bars(client):
    page = client.get("/ui/predict").get_data(as_text=True)
    assert 'id="explain"' in page and 'id="explain-bars"' in page
    script = client.get("/ui/static/predict.js").get_data(as_text=True)
    assert "/predict?explain=true" in script and "bar-row" in script
