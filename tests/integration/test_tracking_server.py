"""The whole spine against a remote tracking server, over HTTP only.

In: a PostgreSQL server (`tests.postgres.server()`: CI's or a throwaway cluster), an S3 object
store (`moto_server`) and `mlflow server` on loopback with its backend store in PostgreSQL and
its artifacts in the bucket (`--serve-artifacts`; `tests.tracking`). Every mlcycle process gets
only `MLFLOW_TRACKING_URI=http://...`, no object-store credentials, and works in a folder of its
own, so a step that quietly used SQLite or local files shows up (a missing model, an `mlruns/`).
Out: pass/fail of the spine: `mlcycle train` twice (the gate keeps the challenger),
`mlcycle promote` from the CLI, two `mlcycle serve` processes (two workers each) that both
follow it within 10 s, their prediction log in PostgreSQL under a bare `postgresql://` URL,
`mlcycle label`, the drift job and the live-performance job reading that log, `mlcycle
rollback` followed by both, and the models and job reports stored in the bucket.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests import postgres
from tests.helpers import MLCYCLE_SERVE, Server, TrainedStore, sample_csv, wait_until
from tests.tracking import S3, mlflow_server, s3_bucket

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.serial]

MODEL = "credit-risk"
SWITCH_S = 10.0  # the most a promotion may take to reach every server
NO_S3 = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "MLFLOW_S3_ENDPOINT_URL": None}


@dataclass(frozen=True)
class Stack:
    """The remote stores: tracking server URL, bare `postgresql://` log URL, the bucket."""

    tracking: str
    log_url: str
    s3: S3
    root: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """PostgreSQL (MLflow store + prediction log), moto S3 and `mlflow server`, all running."""
    from sqlalchemy.engine import make_url

    root = tmp_path_factory.mktemp("tracking-stack")
    with (
        postgres.server() as admin,
        postgres.database(admin, "mlflow") as backend,
        postgres.database(admin, "log") as log_db,
        s3_bucket(root) as s3,
        mlflow_server(root, backend, f"s3://{s3.bucket}/artifacts", s3) as tracking,
    ):
        bare = make_url(log_db).set(drivername="postgresql").render_as_string(hide_password=False)
        yield Stack(tracking, bare, s3, root)


def _env(stack: Stack, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in NO_S3}
    env.update(
        MLFLOW_TRACKING_URI=stack.tracking,
        MLCYCLE_PREDICTION_LOG_URL=stack.log_url,
        MLCYCLE_REPORTS_DIR=str(home / "reports"),
        MLCYCLE_HOME=str(home),
        MLFLOW_DISABLE_TELEMETRY="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def _mlcycle(env: dict, cwd: Path, *args: str, ok=(0,)) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "mlcycle", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode in ok, f"mlcycle {' '.join(args)}: exit {proc.returncode}\n" + (
        proc.stdout[-1500:] + proc.stderr[-2500:]
    )
    return proc


def _train(env: dict, cwd: Path, seed: int, margin: float) -> str:
    out = _mlcycle(env, cwd, "train", "--rows", "2000", "--epochs", "2", "--hidden", "16",
                   "--seed", str(seed), "--promote-margin", str(margin))  # fmt: skip
    return out.stdout + out.stderr


def _score(url: str, body: str, sent: list[tuple[str, int]]) -> str:
    """POST a CSV body with our own request id; remember (id, rows); the answering version."""
    rid = uuid.uuid4().hex
    r = requests.post(f"{url}/invocations", data=body, timeout=30,
                      headers={"Content-Type": "text/csv", "X-Request-ID": rid})  # fmt: skip
    r.raise_for_status()
    sent.append((rid, body.count("\n") - 1))
    return r.headers["X-Model-Version"]


def _all_on(servers: list[Server], version: str, body: str, sent: list) -> bool:
    """Whether 6 requests in a row to each server were answered by `version` (both workers
    of each get some of them)."""
    return all(_score(s.url, body, sent) == version for s in servers for _ in range(6))


def _log_counts(log_url: str) -> dict[str, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(log_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT model_version, COUNT(*) FROM predictions GROUP BY 1 UNION ALL "
                "SELECT model_version, SUM(n_rows) FROM prediction_batches GROUP BY 1"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    counts: dict[str, int] = {}
    for version, n in rows:
        counts[version] = counts.get(version, 0) + int(n)
    return counts


def test_spine_over_a_tracking_server(stack: Stack, tmp_path: Path) -> None:
    """Train, gate, promote, serve twice, log to PostgreSQL, drift, performance, roll back."""
    import mlflow

    work = tmp_path / "work"
    work.mkdir()
    env = _env(stack, work)
    first = _train(env, work, seed=42, margin=0.0)
    assert "v1 promoted to production" in first, first[-800:]
    second = _train(env, work, seed=7, margin=1.0)  # the gate keeps it out of production
    assert "v2" in second and "v2 promoted" not in second, second[-800:]

    client = mlflow.MlflowClient(stack.tracking)
    assert client.get_model_version_by_alias(MODEL, "production").version == "1"
    run_id = client.get_model_version(MODEL, "1").run_id
    store = TrainedStore(stack.tracking, MODEL, "1", run_id, tmp_path)
    servers = []
    for i in (1, 2):
        folder = tmp_path / f"server{i}"
        folder.mkdir()
        env_i = _env(stack, folder) | {"MLCYCLE_REPORTS_DIR": str(work / "reports")}  # shared
        servers.append(Server(store, folder, 2, MLCYCLE_SERVE, **env_i, **NO_S3))
    try:
        _follow(stack, servers, work, env)
    finally:
        for server in servers:
            server.stop()
    keys = stack.s3.keys()
    assert sum(k.endswith("MLmodel") for k in keys) >= 2, keys[:20]
    for job in ("drift", "performance"):  # the jobs' MLflow runs, their reports in the bucket
        assert any(f"/{job}/" in k and k.endswith(".html") for k in keys), (job, keys[:40])
    assert not list(work.rglob("mlruns")) and not list(work.rglob("*.db")), "local stores used"


def _follow(stack: Stack, servers: list[Server], work: Path, env: dict) -> None:
    """Traffic, promotion, labels, the monitoring jobs and rollback against running servers."""
    small, large = sample_csv(20, seed=1), sample_csv(300, seed=2)  # large: an Arrow batch row
    sent: list[tuple[str, int]] = []
    for server in servers:
        for body in [small] * 10 + [large]:
            assert _score(server.url, body, sent) == "1"

    _mlcycle(env, work, "promote", MODEL, "2", "--reason", "tracking-server test")
    started = time.monotonic()
    wait_until(lambda: _all_on(servers, "2", small, sent), SWITCH_S + 5, "both servers on v2")
    assert time.monotonic() - started <= SWITCH_S + 1  # +1: the last check's own requests
    for server in servers:
        for body in [small] * 5 + [large]:
            assert _score(server.url, body, sent) == "2"

    from serving.web.charts import hourly_volume

    counts = _log_counts(stack.log_url)
    assert sum(counts.values()) >= sum(n for _, n in sent), counts
    assert counts.get("1", 0) >= 2 * (10 * 20 + 300), counts
    assert sum(n for _, n in hourly_volume(stack.log_url, 0.0)) == sum(counts.values())

    labels = work / "labels.csv"
    with labels.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["request_id", "row", "label"])
        for i, (rid, n) in enumerate(sent):
            out.writerows([rid, row, (i + row) % 2] for row in range(n))
    _mlcycle(env, work, "label", str(labels))

    _mlcycle(env, work, "drift", "--model-version", "1", "--last", "2000", ok=(0, 1))
    assert (work / "reports" / "index.json").is_file()
    perf = _mlcycle(env, work, "performance", "--since", "1h", "--min-labelled", "50",
                    "--json", ok=(0, 1))  # fmt: skip
    summary = json.loads(perf.stdout[perf.stdout.index("{") :])
    labelled = {v["version"]: v["overall"]["n_labelled"] for v in summary["versions"]}
    assert labelled.get("1", 0) > 0 and labelled.get("2", 0) > 0, summary["versions"]
    page = requests.get(f"{servers[0].url}/ui/monitoring", timeout=30)
    assert page.status_code == 200 and "performance" in page.text.lower()

    _mlcycle(env, work, "rollback", MODEL, "--reason", "tracking-server test")
    started = time.monotonic()
    wait_until(lambda: _all_on(servers, "1", small, []), SWITCH_S + 5, "both servers back on v1")
    assert time.monotonic() - started <= SWITCH_S + 1
    assert all(requests.get(f"{s.url}/v2/health/ready", timeout=5).ok for s in servers)
