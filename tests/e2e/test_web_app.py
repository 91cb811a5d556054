"""The web pages in a real browser against a real `mlcycle serve` (Debian's Chromium, headless).

In: the session's trained store (copied, so promotions here do not leak into other tests), a
server on a free loopback port with two workers. Out: assertions on what a user sees, and
screenshots of every page under `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import (
    MLCYCLE_SERVE,
    Server,
    add_version,
    copy_store,
    performance_traffic,
    sample_csv,
    serving_version,
    tracking_uri,
    wait_until,
    write_performance_check,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "web-e2e-admin-token-0123456789"


@pytest.fixture(scope="module")
def site(trained_store, tmp_path_factory):
    """A running server on a private copy of the trained store; yields a dict of handles."""
    root = tmp_path_factory.mktemp("web-e2e")
    store = copy_store(trained_store, root / "store")
    server = Server(
        store,
        root,
        workers=2,
        command=MLCYCLE_SERVE,
        args=("--threads", "2"),
        MLCYCLE_ADMIN_TOKEN=TOKEN,
        MLCYCLE_WEB_LIVE_INTERVAL=2,
        MLCYCLE_MLFLOW_UI_URL="http://127.0.0.1:9/mlflow",
        MLCYCLE_API_KEYS=None,
    )
    try:
        yield {"url": server.url, "store": store, "env": server.env, "root": root}
    finally:
        server.stop()


def model_columns(store, version: str) -> list[str]:
    """Input columns from the registered model's own signature (not from the server)."""
    import mlflow

    with tracking_uri(store.tracking_uri):
        info = mlflow.models.get_model_info(f"models:/{store.model_name}/{version}")
    return info.signature.inputs.input_names()


def test_predict_form_shows_the_api_probability(site, page, shots):
    url = site["url"]
    version = serving_version(url)
    cols = model_columns(site["store"], version)
    page.goto(url + "/")
    for col in cols:
        assert page.locator(f'[name="{col}"]').count() == 1, f"no form control for {col}"
    numeric = page.locator("#predict-form input[type=number]").first
    numeric.fill(numeric.get_attribute("data-max") or "1")
    page.locator("#predict-form button[type=submit]").click()
    page.locator("#predict-result").wait_for(state="visible")
    shown = page.inner_text("#r-probability")
    payload = {}
    for col in cols:
        control = page.locator(f'[name="{col}"]')
        value = control.input_value()
        kind = control.get_attribute("data-kind")
        payload[col] = (float(value) if value else None) if kind == "number" else (value or None)
    api = requests.post(f"{url}/predict", json=payload, timeout=10)
    assert api.status_code == 200, api.text
    prob = api.json()["probability"]
    assert shown == f"{prob:.4f}"
    assert float(page.get_attribute("#r-probability", "data-value")) == pytest.approx(
        prob, abs=1e-12
    )
    assert page.inner_text("#r-version").endswith(f"v{api.json()['model_version']}")
    assert "ms" in page.inner_text("#r-latency")
    page.screenshot(path=str(shots / "predict.png"), full_page=True)

    # A value the model never saw comes back as an inline error naming the column.
    select = page.locator("#predict-form select").first
    column = select.get_attribute("name")
    page.evaluate(
        """(name) => { const s = document.querySelector(`select[name="${name}"]`);
        s.add(new Option("<b>nope</b>", "<b>nope</b>", true, true)); }""",
        column,
    )
    page.locator("#predict-form button[type=submit]").click()
    page.locator("#predict-error").wait_for(state="visible")
    assert column in page.inner_text("#predict-error")
    assert page.locator("#predict-error b").count() == 0  # shown as text, not markup
    page.screenshot(path=str(shots / "predict-error.png"), full_page=True)


def test_predict_form_explains_with_a_bar_per_column(site, page, shots):
    url = site["url"]
    cols = model_columns(site["store"], serving_version(url))
    page.goto(url + "/")
    page.check("#explain")
    page.locator("#predict-form button[type=submit]").click()
    page.locator("#explanation").wait_for(state="visible", timeout=30_000)
    bars = page.locator("#explain-bars .bar-row")
    assert sorted(bars.nth(i).get_attribute("data-column") for i in range(bars.count())) == sorted(
        cols
    )
    values = [float(bars.nth(i).get_attribute("data-value")) for i in range(bars.count())]
    assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
    base = float(page.inner_text("#explain-base"))
    probability = float(page.get_attribute("#r-probability", "data-value"))
    assert sum(values) + base == pytest.approx(probability, abs=1e-3)  # base shown to 4 places
    page.screenshot(path=str(shots / "predict-explained.png"), full_page=True)


def test_predict_form_flags_a_value_outside_the_training_range(site, page, shots):
    from playwright.sync_api import expect

    page.goto(site["url"] + "/ui/predict")
    field = page.locator("#predict-form input[data-min][data-max]").first
    name = field.get_attribute("name")
    low, high = field.get_attribute("data-min"), field.get_attribute("data-max")
    far = float(high) + 2 * (float(high) - float(low)) + 1  # beyond the 25% margin
    field.fill(str(round(far)))
    page.locator("#predict-form button[type=submit]").click()
    page.locator("#predict-result").wait_for(state="visible")
    expect(page.locator("#r-range")).to_have_text(
        f"outside: {name} (training range {low} – {high})"
    )
    assert "out-of-range" in field.get_attribute("class")
    assert float(page.get_attribute("#r-probability", "data-value")) >= 0
    page.screenshot(path=str(shots / "predict-out-of-range.png"), full_page=True)

    field.fill(high)  # the training maximum itself is inside
    page.locator("#predict-form button[type=submit]").click()
    expect(page.locator("#r-range")).to_have_text("every input inside the training range")
    assert "out-of-range" not in (field.get_attribute("class") or "")


def test_csv_upload_scores_every_row_and_downloads(site, page, shots, tmp_path):
    url = site["url"]
    text = sample_csv(12, seed=5)
    path = tmp_path / "batch.csv"
    path.write_text(text)
    page.goto(url + "/ui/predict")
    page.set_input_files("#csv-file", str(path))
    page.locator("#csv-form button[type=submit]").click()
    page.locator("#csv-result").wait_for(state="visible")
    assert page.inner_text("#csv-summary").startswith("12 rows scored")
    with page.expect_download() as info:
        page.click("#csv-download")
    import pandas as pd

    result = pd.read_csv(info.value.path())
    api = requests.post(
        f"{url}/invocations", data=text, headers={"Content-Type": "text/csv"}, timeout=10
    ).json()["predictions"]
    assert len(result) == 12
    assert result["probability"].tolist() == pytest.approx(api, abs=1e-9)
    assert set(result["decision"]) <= {0, 1}
    page.screenshot(path=str(shots / "predict-csv.png"), full_page=True)


@pytest.mark.serial  # every worker must switch within a poll interval
def test_promote_from_models_page_switches_serving(site, page, shots):
    url = site["url"]
    before = serving_version(url)
    new = add_version(site["store"], before)
    page.goto(url + "/ui/models")
    assert page.inner_text("#serving-version") == f"v{before}"
    assert "serving now" in page.inner_text(f'tr[data-version="{before}"]')
    page.screenshot(path=str(shots / "models-before.png"), full_page=True)

    button = page.locator(f'button.promote[data-version="{new}"]')
    page.fill("#admin-token", "wrong-token")
    button.click()
    page.locator("#admin-error").wait_for(state="visible")
    assert "invalid admin token" in page.inner_text("#admin-error")
    assert serving_version(url) == before

    page.fill("#admin-token", TOKEN)
    page.fill("#admin-by", "e2e")
    page.fill("#admin-reason", "<img src=x onerror=alert(1)> better model")
    # The page waits until the server answers with the new version, then reloads itself.
    with page.expect_navigation(timeout=30_000):
        button.click()
    page.wait_for_load_state("load")
    # Every worker switches within the poll interval; the API answers with the new version.
    wait_until(lambda: _serves(url, new), 10, f"the API answering with v{new}", every=0.3)
    wait_until(  # the other worker may be a poll behind
        lambda: _models_page_shows(page, url, new), 10, f"the models page showing v{new}", 0.3
    )
    row = page.inner_text(f'tr[data-version="{new}"]')
    assert "serving now" in row and "Production" in row and "@production" in row
    assert "e2e" in row and "<img src=x onerror=alert(1)> better model" in row
    page.screenshot(path=str(shots / "models-after.png"), full_page=True)

    # Roll back: the version that served before comes back.
    page.fill("#admin-token", TOKEN)
    with page.expect_navigation(timeout=30_000):
        page.click("#rollback")
    wait_until(
        lambda: serving_version(url) == before, 10, f"v{before} back after the rollback", 0.3
    )
    assert "rollback from v" in page.inner_text("body")


def _serves(url: str, version: str) -> bool:
    """Whether `/version` and a prediction's `X-Model-Version` both name `version`."""
    answer = requests.post(
        f"{url}/invocations",
        data=sample_csv(1, seed=1),
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    return serving_version(url) == version and answer.headers.get("X-Model-Version") == version


def _models_page_shows(page, url: str, version: str) -> bool:
    """Whether a fresh load of the models page says `version` is serving."""
    page.goto(url + "/ui/models")
    return page.inner_text("#serving-version") == f"v{version}"


def run_drift(site, version: str) -> None:
    """Run the monitoring job over the logged rows (subprocess, like cron would)."""
    env = dict(site["env"], MLCYCLE_DRIFT_MIN_ROWS="50", MLCYCLE_DRIFT_MLFLOW="false")
    mlcycle = Path(sys.executable).with_name("mlcycle")
    done = subprocess.run(
        [str(mlcycle), "drift", "--last", "300", "--model-version", version],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]


def test_drift_report_opens_from_monitoring_page(site, page, shots):
    url = site["url"]
    resp = requests.post(
        f"{url}/invocations",
        data=sample_csv(300, seed=11),
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    run_drift(site, resp.headers["X-Model-Version"])
    page.goto(url + "/ui/monitoring")
    table = page.inner_text("#drift-runs")
    assert f"v{resp.headers['X-Model-Version']}" in table
    assert "last 300" in table.lower() or "300" in table
    assert page.locator("section.chart svg circle").count() >= 1
    assert page.locator("section.chart svg rect").count() >= 1  # request volume bars
    page.screenshot(path=str(shots / "monitoring.png"), full_page=True)
    page.locator("a.report").first.click()
    page.wait_for_load_state("load")
    assert "/ui/reports/" in page.url
    page.get_by_text("Dataset Drift").first.wait_for()
    assert "Share of Drifted Columns" in page.inner_text("body")
    report_id = page.url.rsplit("/", 1)[1]
    served = requests.get(f"{url}/ui/reports/{report_id}", timeout=10).content
    assert served == (site["root"] / "reports" / f"{report_id}.html").read_bytes()
    page.locator(".js-plotly-plot").first.wait_for()  # a chart drawn, for the screenshot
    page.screenshot(path=str(shots / "drift-report.png"))


def test_monitoring_page_charts_live_auc_per_version(site, page, shots):
    """What the performance job writes (its own writer, into the server's reports folder)
    shows as a chart with a point per version and window, and a table of the latest figures."""
    url, store = site["url"], site["store"]
    now = time.time() // 3600 * 3600
    rows = performance_traffic(12, start=now - 12 * 3600)
    summary = write_performance_check(
        site["root"] / "reports", rows, now - 12 * 3600, now, now, model_name=store.model_name
    )
    page.goto(url + "/ui/monitoring")
    table = page.inner_text("#live-auc")
    for version in summary["versions"]:
        assert f"v{version['version']}" in table
        assert f"{version['overall']['auc']:.3f}" in table
    windows = sum(len(v["windows"]) for v in summary["versions"])
    assert page.locator("#live-performance svg circle").count() == windows == 24
    page.locator("#live-performance").screenshot(path=str(shots / "monitoring-live-auc.png"))
    page.locator("a.perf-report").click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/ui/reports/{summary['id']}")
    assert store.model_name in page.inner_text("h1")


def raw_get(url: str, path: str) -> int:
    """GET a path byte-for-byte (no client-side normalisation of `..`)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize(
    "path",
    [
        "/ui/reports/../../etc/passwd",
        "/ui/reports/..%2F..%2F..%2Fetc%2Fpasswd",
        "/ui/reports/..%252F..%252Fetc%252Fpasswd",
        "/ui/reports/%2Fetc%2Fpasswd",
        "/ui/reports//etc/passwd",
        "/ui/reports/%2e%2e",
        "/ui/reports/..",
        "/ui/reports/drift.prom",
        "/ui/reports/..%5c..%5cserver.log",
        "/ui/reports/no-such-report",
    ],
)
def test_report_path_traversal_is_404(site, path):
    secret = site["root"] / "server.log"
    assert secret.exists()
    assert raw_get(site["url"], path) == 404


def test_live_page_shows_request_figures(site, page, shots):
    from playwright.sync_api import expect

    url = site["url"]
    for seed in range(5):
        requests.post(
            f"{url}/invocations",
            data=sample_csv(3, seed=seed),
            headers={"Content-Type": "text/csv"},
            timeout=10,
        )
    page.goto(url + "/ui/live")
    # A locator assertion, not wait_for_function: the page's CSP (script-src 'self') forbids the
    # eval that wait_for_function's polling uses once its first check comes back false.
    expect(page.locator("#l-rate")).not_to_have_text("–", timeout=15_000)
    assert float(page.inner_text("#l-rate")) > 0
    assert page.inner_text("#l-p99").endswith("ms")
    assert page.locator("#l-scores .bar-row").count() >= 10
    page.screenshot(path=str(shots / "live.png"), full_page=True)
