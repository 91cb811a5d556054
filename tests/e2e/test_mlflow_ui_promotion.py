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

from tests.helpers import (
    MLCYCLE_SERVE,
    Server,
    add_version,
    copy_store,
    free_port,
    sample_csv,
    serving_version,
    start,
    stop,
    wait_http,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]
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
    store = copy_store(trained_store, root / "store")
    ui_port, ui_log = free_port(), root / "mlflow.log"
    ui = start_mlflow(store.tracking_uri, ui_port, ui_log)  # starts while serving does
    server = None
    try:
        server = Server(store, root, command=MLCYCLE_SERVE, MLCYCLE_POLL_INTERVAL=None)
        ui_url = f"http://127.0.0.1:{ui_port}"
        wait_http(ui_url + "/health", ui, ui_log)
        yield {"ui": ui_url, "url": server.url, "store": store}
    finally:
        if server is not None:
            server.stop()
        stop(ui)


def open_version(page, stack, version: str) -> None:
    page.goto(f"{stack['ui']}/#/models/{stack['store'].model_name}/versions/{version}")
    page.get_by_text(f"Version {version}", exact=True).wait_for(timeout=60_000)


def wait_serving(url: str, version: str, streak: int = 8) -> float:
    """Seconds until `streak` answers in a row (both workers) name `version`; fails after 10 s."""
    started, answers = time.monotonic(), []

    def streak_seen() -> bool:
        answers.append(serving_version(url))
        return answers[-streak:] == [version] * streak

    wait_until(
        streak_seen,
        SWITCH_SECONDS,
        lambda: f"serving still answers v{answers[-1]} after the UI promoted v{version}",
        every=0.05,
    )
    return time.monotonic() - started


def test_production_alias_set_in_the_default_ui_switches_serving(stack, page, shots):
    before = serving_version(stack["url"])
    new = add_version(stack["store"], before)
    open_version(page, stack, new)
    switch = page.get_by_role("switch").first
    assert switch.get_attribute("aria-checked") == "true", "expected the new registry UI default"
    page.get_by_role("button", name="Add").first.click()
    dialog = page.get_by_role("dialog")
    box = dialog.get_by_role("combobox")
    box.fill("production")
    box.press("Enter")
    dialog.get_by_text("production").first.wait_for()
    page.screenshot(path=str(shots / "mlflow-ui-alias.png"))
    dialog.get_by_role("button", name="Save aliases").click()
    dialog.wait_for(state="hidden")
    seconds = wait_serving(stack["url"], new)
    page.get_by_text("@ production").first.wait_for()
    page.screenshot(path=str(shots / "mlflow-ui-alias-saved.png"))
    resp = requests.post(
        f"{stack['url']}/invocations",
        data=sample_csv(1, seed=3),
        headers={"Content-Type": "text/csv"},
        timeout=5,
    )
    assert resp.headers.get("X-Model-Version") == new
    print(f"alias promotion of v{new} served after {seconds:.1f}s")


def test_stage_transition_one_toggle_away_switches_serving(stack, page, shots):
    before = serving_version(stack["url"])
    new = add_version(stack["store"], before)
    open_version(page, stack, new)
    page.get_by_role("switch").first.click()  # "New model registry UI" off
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    page.get_by_text("Stage:").first.wait_for()
    page.get_by_text("None", exact=True).first.click()
    page.get_by_role("menuitem").filter(has_text="Production").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Transition existing").wait_for()
    page.screenshot(path=str(shots / "mlflow-ui-stage.png"))
    dialog.get_by_role("button", name="OK").click()
    dialog.wait_for(state="hidden")
    seconds = wait_serving(stack["url"], new)
    page.screenshot(path=str(shots / "mlflow-ui-stage-saved.png"))
    print(f"stage promotion of v{new} served after {seconds:.1f}s")
