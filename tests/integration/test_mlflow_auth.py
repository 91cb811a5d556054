"""mlcycle against a real `mlflow server --app-name basic-auth`, one user per role.

In: an MLflow server on a loopback port with authentication (no permission by default, the
artifacts served through it), users and grants made through MLflow's auth API: the trainer
EDIT on the experiment and MANAGE on the registered model (its gate promotes), serving READ
on both, the promoter MANAGE on the registered model. Out: training as the trainer registers,
signs and promotes v1 (and registers and signs v2); serving as
the read-only user (credentials only in `MLFLOW_TRACKING_USERNAME` / `_PASSWORD`) resolves,
downloads, verifies and serves it; an anonymous client is refused (401) and the read-only user
is refused (403) when they register a version or move the alias; the promoter's promotion of a
second version is followed by the server.
"""

from __future__ import annotations

import os
import sys

import pytest
import requests

from tests.helpers import ADMIN as ADMIN_TOKEN
from tests.helpers import (
    TINY,
    Server,
    TrainedStore,
    free_port,
    serving_version,
    start,
    stop,
    tracking_uri,
    wait_http,
    wait_until,
)

pytestmark = pytest.mark.slow

MODEL, EXPERIMENT = "credit-risk", "tests"
KEY = "auth-test-signing-key-0123456789"
# name: (password, [(resource type, resource id (None: the experiment), permission)])
USERS = {
    "trainer": (  # MANAGE: its gate promotes, which deletes the `staging` alias
        "trainer-password-0123456789",
        [("experiment", None, "EDIT"), ("registered_model", MODEL, "MANAGE")],
    ),
    "serving": (
        "serving-password-0123456789",
        [("experiment", None, "READ"), ("registered_model", MODEL, "READ")],
    ),
    "promoter": ("promoter-password-0123456789", [("registered_model", MODEL, "MANAGE")]),
}
ADMIN = ("admin", "admin-password-0123456789abcdef")


@pytest.fixture
def mlflow_auth(tmp_path):
    """A basic-auth MLflow server on a free port: (url, folder)."""
    config = tmp_path / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 60\n"  # else every request pays a PBKDF2 check
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env |= {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-0123456789abcdef",
    }
    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    cmd += ["--serve-artifacts", "--artifacts-destination", str(tmp_path / "artifacts")]
    proc = start(cmd, env, tmp_path / "mlflow.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc, tmp_path / "mlflow.log", timeout=120)
    yield url, tmp_path
    stop(proc)


def _as(monkeypatch, user: str | None) -> None:
    """MLflow's client credentials in this process: `user`'s, or none."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    if user is not None:
        password = ADMIN[1] if user == ADMIN[0] else USERS[user][0]
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def _set_up_roles(url: str, monkeypatch) -> str:
    """As the admin: the experiment, the registered model, the users and their grants."""
    import mlflow
    from mlflow.server import get_app_client

    _as(monkeypatch, ADMIN[0])
    client = mlflow.MlflowClient(url)
    experiment = client.create_experiment(EXPERIMENT)
    client.create_registered_model(MODEL)
    auth = get_app_client("basic-auth", tracking_uri=url)
    for user, (password, grants) in USERS.items():
        auth.create_user(user, password)
        for kind, resource, permission in grants:
            auth.grant_user_permission(user, kind, resource or experiment, permission)
    return experiment


def _train(url: str, monkeypatch, **overrides) -> object:
    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    _as(monkeypatch, "trainer")
    monkeypatch.setenv("MLCYCLE_SIGNING_KEY", KEY)
    with tracking_uri(url):
        return run(TrainConfig(**(TINY | {"experiment": EXPERIMENT} | overrides)))


def _register_again(url: str, monkeypatch, like: str) -> str:
    """As the trainer: one more signed version with `like`'s files (no second training)."""
    import mlflow

    from mlcycle.core.signing import sign_version

    _as(monkeypatch, "trainer")
    with tracking_uri(url):
        client = mlflow.MlflowClient()
        base = client.get_model_version(MODEL, like)
        version = str(mlflow.register_model(base.source, MODEL).version)
        sign_version(client, MODEL, version, KEY)
    return version


def _refusals(url: str, version: str, run_id: str) -> dict[str, tuple[int, int]]:
    """HTTP status of registering a version and of moving the alias, per caller."""
    api = url + "/api/2.0/mlflow"
    create = {"name": MODEL, "source": f"runs:/{run_id}/model", "run_id": run_id}
    alias = {"name": MODEL, "alias": "production", "version": version}
    out = {}
    for who, auth in (("anonymous", None), ("serving", ("serving", USERS["serving"][0]))):
        registered = requests.post(
            f"{api}/model-versions/create", json=create, auth=auth, timeout=10
        )
        moved = requests.post(f"{api}/registered-models/alias", json=alias, auth=auth, timeout=10)
        out[who] = (registered.status_code, moved.status_code)
    return out


def test_each_role_does_what_it_may_and_no_more(mlflow_auth, monkeypatch):
    from mlflow.exceptions import MlflowException

    from mlcycle.core.registry import promote
    from mlcycle.core.signing import SIGNATURE_TAG

    url, root = mlflow_auth
    _set_up_roles(url, monkeypatch)
    first = _train(url, monkeypatch)  # no production yet: the gate promotes it
    assert str(first.version) == "1"

    _as(monkeypatch, None)  # the server gets its credentials only through its environment
    (root / "server").mkdir()
    server = Server(
        TrainedStore(url, MODEL, "1", first.run_id, root),
        root / "server",
        workers=1,
        MLFLOW_TRACKING_USERNAME="serving",
        MLFLOW_TRACKING_PASSWORD=USERS["serving"][0],
        MLCYCLE_SIGNING_KEY=KEY,
    )
    try:
        assert serving_version(server.url) == "1"
        assert _refusals(url, "1", first.run_id) == {"anonymous": (401, 401), "serving": (403, 403)}

        second = _register_again(url, monkeypatch, "1")
        web = requests.post(  # the web page's promotion runs as serving's read-only user
            server.url + "/ui/api/promote",
            json={"version": second},
            headers={"X-Admin-Token": ADMIN_TOKEN},
            timeout=30,
        )
        assert web.status_code == 403 and "may only read" in web.json()["message"]
        _as(monkeypatch, "serving")
        with tracking_uri(url), pytest.raises(MlflowException, match="403"):
            promote(MODEL, second, "production", "read-only user")
        _as(monkeypatch, "promoter")
        with tracking_uri(url):
            import mlflow

            tags = mlflow.MlflowClient().get_model_version(MODEL, second).tags
            assert tags[SIGNATURE_TAG].startswith("hmac-sha256")
            promote(MODEL, second, "production", "promoter", by="promoter")
        wait_until(
            lambda: serving_version(server.url) == second,
            60,
            lambda: f"v{second} served: {server.output.read_text()[-2000:]}",
            every=0.5,
        )
    finally:
        server.stop()
