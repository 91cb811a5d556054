"""The deployment's database and MLflow set-up, run for real.

`deploy/k8s/postgres/init-databases.sh` on a throwaway PostgreSQL, then `mlflow server
--app-name basic-auth` configured exactly as the compose file and the manifests configure it
(`deploy/mlflow/basic_auth.ini`, the stores reached through libpq's PG* variables as the
`mlflow` role, the admin from MLFLOW_AUTH_ADMIN_*), then `deploy/mlflow/init_auth.py` twice.

In: the scripts under deploy/, psql and a PostgreSQL server (skips without them). Out: failures
when a role can reach another's database, when the init step is not idempotent, or when a
workload's user has more or less than its role (checked through MLflow's own answers: 403 on a
write it may not do).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.helpers import free_port, start, stop, wait_http
from tests.postgres import cluster_or_skip

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
INIT_DB = ROOT / "deploy" / "k8s" / "postgres" / "init-databases.sh"
INIT_AUTH = ROOT / "deploy" / "mlflow" / "init_auth.py"
PASSWORDS = {role: f"{role}-password-0123456789" for role in ("trainer", "serving", "monitor")}
PASSWORDS["promoter"] = "promoter-password-0123456789"
ADMIN = ("admin", "admin-password-0123456789abcdef")


@pytest.fixture(scope="module")
def cluster():
    cluster = cluster_or_skip()
    cluster.start()
    yield cluster
    cluster.stop()


def _init_databases(cluster) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{cluster.bindir}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        "POSTGRES_USER": "postgres",
        "TRACKING_DB_PASSWORD": "mlflow-db-password-0123456789",
        "PREDICTIONS_DB_PASSWORD": "predictions-db-password-0123456789",
    }
    return subprocess.run(["sh", str(INIT_DB)], env=env, capture_output=True, text=True, timeout=60)


def _can_connect(cluster, user: str, database: str) -> bool:
    engine = sa.create_engine(f"postgresql+psycopg2://{user}@127.0.0.1:{cluster.port}/{database}")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS probe (x int)"))
        return True
    except sa.exc.OperationalError as exc:
        assert "permission denied" in str(exc), exc
        return False
    finally:
        engine.dispose()


def test_init_databases_gives_each_role_its_own_database(cluster) -> None:
    for _ in range(2):  # idempotent: the second run only sets the passwords again
        proc = _init_databases(cluster)
        assert proc.returncode == 0, proc.stderr
    assert _can_connect(cluster, "mlflow", "mlflow") and _can_connect(
        cluster, "mlflow", "mlflow_auth"
    )
    assert _can_connect(cluster, "predictions", "predictions")
    assert not _can_connect(cluster, "predictions", "mlflow")
    assert not _can_connect(cluster, "predictions", "mlflow_auth")
    assert not _can_connect(cluster, "mlflow", "predictions")


def test_init_databases_refuses_without_passwords(cluster) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_DB_PASSWORD")}
    proc = subprocess.run(["sh", str(INIT_DB)], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "TRACKING_DB_PASSWORD is required" in proc.stderr


@pytest.fixture(scope="module")
def auth_server(cluster, tmp_path_factory):
    assert _init_databases(cluster).returncode == 0
    port, log = free_port(), tmp_path_factory.mktemp("mlflow") / "mlflow.log"
    env = {
        **os.environ,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(cluster.port),
        "PGUSER": "mlflow",
        "MLFLOW_AUTH_CONFIG_PATH": str(ROOT / "deploy" / "mlflow" / "basic_auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret-key-0123456789abcdef",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    artifacts = tmp_path_factory.mktemp("artifacts")
    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
           "--backend-store-uri", "postgresql+psycopg2:///mlflow",
           "--artifacts-destination", artifacts.as_uri(), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    proc = start(cmd, env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc, log, timeout=180)
        yield url
    finally:
        stop(proc)


def _init_auth(url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": ADMIN[0],
        "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        **{f"AUTH_{role.upper()}_PASSWORD": pw for role, pw in PASSWORDS.items()},
    }
    cmd = [sys.executable, str(INIT_AUTH), "--model-name", "credit-risk", "--wait-s", "30"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _as(url: str, user: str | None, monkeypatch) -> MlflowClient:
    if user is None:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORDS.get(user, ADMIN[1]))
    return MlflowClient(url)


def _refused(fn, *args) -> int:
    with pytest.raises(MlflowException) as info:
        fn(*args)
    return info.value.get_http_status_code()


def test_init_auth_creates_each_role_with_its_permissions(auth_server, monkeypatch) -> None:
    for _ in range(2):  # idempotent
        proc = _init_auth(auth_server)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    anonymous = _as(auth_server, None, monkeypatch)
    assert _refused(anonymous.search_registered_models) == 401

    trainer = _as(auth_server, "trainer", monkeypatch)
    with pytest.raises(MlflowException) as info:  # made by the init step: the trainer owns nothing
        trainer.create_registered_model("credit-risk")
    assert info.value.error_code == "RESOURCE_ALREADY_EXISTS"
    training = trainer.get_experiment_by_name("credit-risk").experiment_id
    run = trainer.create_run(training)
    source = f"runs:/{run.info.run_id}/model"
    version = trainer.create_model_version("credit-risk", source, run_id=run.info.run_id)
    # EDIT moves the alias (the gate promotes the first version) but deletes nothing
    trainer.set_registered_model_alias("credit-risk", "staging", version.version)
    assert _refused(trainer.delete_registered_model_alias, "credit-risk", "staging") == 403
    assert _refused(trainer.delete_registered_model, "credit-risk") == 403
    monitoring = trainer.get_experiment_by_name("monitoring").experiment_id
    assert _refused(trainer.create_run, monitoring) == 403

    serving = _as(auth_server, "serving", monkeypatch)
    assert serving.get_model_version("credit-risk", version.version).version == version.version
    assert _refused(serving.set_registered_model_alias, "credit-risk", "production", "1") == 403
    assert _refused(serving.create_run, monitoring) == 403

    monitor = _as(auth_server, "monitor", monkeypatch)
    monitor.create_run(monitoring)
    assert _refused(monitor.create_model_version, "credit-risk", source, run.info.run_id) == 403

    promoter = _as(auth_server, "promoter", monkeypatch)
    promoter.set_registered_model_alias("credit-risk", "production", version.version)
    promoter.delete_registered_model_alias("credit-risk", "staging")
    alias = serving.get_model_version_by_alias("credit-risk", "production")
    assert alias.version == version.version
