"""The users' own journey: promote a version in the MLflow UI and see mlcycle serving follow.

In: a private copy of the session's trained store, `mlflow server` and `mlcycle serve` on free
loopback ports, Debian's Chromium driving the MLflow 3.17 UI. Out: assertions that serving
answers with the promoted version within 10 s, through the alias (the UI's default "new model
registry" view) and through the stage (one toggle away: "Stage (deprecated)"), plus screenshots
under `test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from processes import free_port, start, stop, wait_http
from test_web_app import (  # same folder: pytest puts it on sys.path
    CHROMIUM,
    CHROMIUM_ARGS,
    SHOTS,
    add_version,
    copy_store,
    sample_csv,
    serving_version,
    start_server,
    wait_ready,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SWITCH_SECONDS = 10.0


def start_mlflow(uri: str, port: int, log_path: Path) -> subprocess.Popen:
    mlflow = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", uri, "--workers", "1"]
    return start(cmd, dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"), log_path)


@pytest.fixture(scope="module")
def stack(trained_store, tmp_path_factory):
    """`mlflow server` + `mlcycle serve` (default poll interval) on one private store."""
    root = tmp_path_factory.mktemp("mlflow-ui-e2e")
    uri = copy_store(trained_store.tracking_uri, root / "store")
    ui_port, port = free_port(), free_port()
    ui_log, serve_log = root / "mlflow.log", root / "serve.log"
    ui = start_mlflow(uri, ui_port, ui_log)
    env = dict(os.environ)
    env.update(
        MLFLOW_TRACKING_URI=uri,
        MLCYCLE_HOME=str(root),
        MLCYCLE_REPORTS_DIR=str(root / "reports"),
        MLCYCLE_PREDICTION_LOG_URL=f"sqlite:///{root / 'predictions.db'}",
    )
    env.pop("MLCYCLE_POLL_INTERVAL", None)
    server = start_server(env, port, serve_log)
    try:
        ui_url, url = f"http://127.0.0.1:{ui_port}", f"http://127.0.0.1:{port}"
        wait_http(ui_url + "/health", ui, ui_log)
        wait_ready(url, server, serve_log)
        yield {"ui": ui_url, "url": url, "uri": uri, "name": trained_store.model_name}
    finally:
        stop(server)
        stop(ui)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(30_000)
        yield pg
        browser.close()


def open_version(page, stack, version: str) -> None:
    page.goto(f"{stack['ui']}/#/models/{stack['name']}/versions/{version}")
    page.get_by_text(f"Version {version}", exact=True).wait_for(timeout=60_000)


def wait_serving(url: str, version: str, streak: int = 8) -> float:
    """Seconds until `streak` answers in a row (both workers) name `version`; fails after 10 s."""
    started, seen = time.time(), 0
    while seen < streak:
        answered = serving_version(url)
        seen = seen + 1 if answered == version else 0
        assert time.time() - started < SWITCH_SECONDS, (
            f"serving still answers v{answered} {SWITCH_SECONDS}s after the UI promoted v{version}"
        )
        time.sleep(0.05)
    return time.time() - started


def test_production_alias_set_in_the_default_ui_switches_serving(stack, page):
    before = serving_version(stack["url"])
    new = add_version(stack["uri"], stack["name"], before)
    open_version(page, stack, new)
    switch = page.get_by_role("switch").first
    assert switch.get_attribute("aria-checked") == "true", "expected the new registry UI default"
    page.get_by_role("button", name="Add").first.click()
    dialog = page.get_by_role("dialog")
    box = dialog.get_by_role("combobox")
    box.fill("production")
    box.press("Enter")
    dialog.get_by_text("production").first.wait_for()
    page.screenshot(path=str(SHOTS / "mlflow-ui-alias.png"))
    dialog.get_by_role("button", name="Save aliases").click()
    dialog.wait_for(state="hidden")
    seconds = wait_serving(stack["url"], new)
    page.get_by_text("@ production").first.wait_for()
    page.screenshot(path=str(SHOTS / "mlflow-ui-alias-saved.png"))
    resp = requests.post(
        f"{stack['url']}/invocations",
        data=sample_csv(1, seed=3),
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    assert resp.headers.get("X-Model-Version") == new
    print(f"alias promotion of v{new} served after {seconds:.1f}s")


def test_stage_transition_one_toggle_away_switches_serving(stack, page):
    before = serving_version(stack["url"])
    new = add_version(stack["uri"], stack["name"], before)
    open_version(page, stack, new)
    page.get_by_role("switch").first.click()  # "New model registry UI" off
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    page.get_by_text("Stage:").first.wait_for()
    page.get_by_text("None", exact=True).first.click()
    page.get_by_role("menuitem").filter(has_text="Production").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Transition existing").wait_for()
    page.screenshot(path=str(SHOTS / "mlflow-ui-stage.png"))
    dialog.get_by_role("button", name="OK").click()
    dialog.wait_for(state="hidden")
    seconds = wait_serving(stack["url"], new)
    page.screenshot(path=str(SHOTS / "mlflow-ui-stage-saved.png"))
    print(f"stage promotion of v{new} served after {seconds:.1f}s")
