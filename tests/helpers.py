"""Plain helpers the tests share: processes, free ports, waits, stores, a real server.

In: commands, their environment and log files; MLflow SQLite stores; conditions to wait for.
Out: processes started in a session of their own, waited for (a failure quotes the log's tail)
and stopped for sure (SIGTERM to the group, then SIGKILL of the whole tree: `mlcycle serve` runs
its server in a group of its own); `wait_until` and `returns_within`, which fail naming what
never happened instead of hanging or sleeping a guessed time; private copies of a store for
tests that change it; `Server`, a real `python -m serving` (or `mlcycle serve`) on loopback.
Fixtures live in the `conftest.py` files; this module is imported as `tests.helpers`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

TINY = {"rows": 2_000, "epochs": 2, "hidden": (16,)}  # a model trained in ~10 s on 2 cores
ADMIN = "test-admin-token-0123456789abcdef"
SERVING = ("serving",)  # `python -m serving`: the launcher
MLCYCLE_SERVE = ("mlcycle", "serve")  # the command users run

# ---------------------------------------------------------------- waits


def wait_until(
    predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str], every=0.02
) -> Any:
    """Poll `predicate` until it returns something true, and return that.

    Args:
        predicate: the condition, checked at once and then every `every` seconds.
        timeout: seconds to wait at most.
        what: what is waited for, for the failure message (a callable for details that are
            only known then, such as a log's tail).

    Raises:
        AssertionError: naming `what` when `timeout` passes first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"not within {timeout:g} s: {detail}")
        time.sleep(every)


def returns_within(timeout: float, what: str, fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in a daemon thread: its result (or its exception, raised here), or an
    AssertionError naming `what` if it is still running after `timeout` seconds, so that a
    call that would block shows as a failure instead of a stuck test."""
    out: dict[str, Any] = {}

    def body() -> None:
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what}: still running after {timeout:g} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


# ---------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start(cmd: list[str], env: dict, log_path: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start `cmd` in a new session with stdout and stderr going to `log_path`."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_http(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    """Wait for GET `url` to answer 200; fail with the log's tail if `proc` exits or time is up
    (the process is stopped then)."""

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited: {log_path.read_text()[-2000:]}")
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(up, timeout, lambda: f"{url} up: {log_path.read_text()[-2000:]}", every=0.3)
    except AssertionError:
        stop(proc)
        raise


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the process group; SIGKILL the whole tree if it has not exited in `timeout` s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `proc` and every process below it at once (a crash of the whole server)."""
    pids = [proc.pid, *descendants(proc.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)


def descendants(pid: int) -> list[int]:
    """The pids of every living process below `pid` (Linux /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop(0)
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` runs (an unreaped zombie does not: it is gone for us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def tree_memory_mb(proc: subprocess.Popen, key: str = "VmRSS") -> float:
    """Sum of `key` (VmRSS, or VmHWM: each process's peak) over `proc` and its descendants."""
    total = 0
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total / 1024


# ---------------------------------------------------------------- stores


@dataclass(frozen=True)
class TrainedStore:
    """An MLflow SQLite store (`root`/mlflow.db, artifacts in `root`/artifacts) holding one
    trained model, registered and promoted."""

    tracking_uri: str
    model_name: str
    version: str
    run_id: str
    root: Path


def copy_store(store: TrainedStore, dest: Path) -> TrainedStore:
    """A private copy of `store` in `dest`: the database and the artifacts, every path the
    database holds pointing into the copy, so a test may promote, register, train and log runs
    there without the session's other tests seeing any of it."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(store.root / "artifacts", dest / "artifacts")
    db = dest / "mlflow.db"
    with (
        contextlib.closing(sqlite3.connect(store.root / "mlflow.db")) as src,
        contextlib.closing(sqlite3.connect(db)) as dst,
    ):
        src.backup(dst)
        _replace_text(dst, str(store.root), str(dest))
        dst.commit()
    return replace(store, tracking_uri=f"sqlite:///{db}", root=dest)


def _replace_text(conn: sqlite3.Connection, old: str, new: str) -> None:
    """Replace `old` by `new` in every text column of every table (artifact locations)."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        for _, column, kind, *_ in conn.execute(f'PRAGMA table_info("{table}")').fetchall():
            if "CHAR" in kind.upper() or "TEXT" in kind.upper():
                conn.execute(
                    f'UPDATE "{table}" SET "{column}" = REPLACE("{column}", ?, ?) '
                    f'WHERE "{column}" LIKE ?',
                    (old, new, f"%{old}%"),
                )


def store_digest(store: TrainedStore) -> str:
    """A digest of every row of every table of the store's database: equal digests, same
    registry, runs and tags."""
    digest = hashlib.sha256()
    with contextlib.closing(sqlite3.connect(store.root / "mlflow.db")) as conn:
        names = "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"
        for (table,) in conn.execute(names).fetchall():
            rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
            digest.update(f"{table}:{rows}".encode())
    return digest.hexdigest()


@contextlib.contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's default store (the global URI and `MLFLOW_TRACKING_URI`) is `uri` inside."""
    import mlflow

    before, before_env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)
        if before_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before_env


def input_example(store: TrainedStore):
    """The input example MLflow logged with the store's model version (a DataFrame)."""
    import mlflow
    import pandas as pd

    uri = f"models:/{store.model_name}/{store.version}"
    local = mlflow.artifacts.download_artifacts(uri, tracking_uri=store.tracking_uri)
    return pd.DataFrame(mlflow.models.Model.load(local).load_input_example(local))


def records(frame) -> list[dict]:
    """Rows of a DataFrame as JSON objects, the way a client sends them."""
    return json.loads(frame.to_json(orient="records"))


def register_copy(store: TrainedStore, folder: Path, like: str | None = None) -> str:
    """Register a new version from a copy, in `folder`, of version `like`'s artifacts (the
    store's own version by default), once MLflow says it is READY; returns its number."""
    import mlflow

    uri = f"models:/{store.model_name}/{like or store.version}"
    local = mlflow.artifacts.download_artifacts(uri, tracking_uri=store.tracking_uri)
    shutil.copytree(local, folder)
    client = mlflow.MlflowClient(store.tracking_uri)
    mv = client.create_model_version(store.model_name, str(folder), run_id=store.run_id)
    wait_until(
        lambda: client.get_model_version(store.model_name, mv.version).status == "READY",
        30,
        f"v{mv.version} READY",
        every=0.2,
    )
    return str(mv.version)


def add_version(store: TrainedStore, like: str) -> str:
    """Register one more version of the store's model with version `like`'s artifacts (no
    training, no copy) and its tags but the promotion ones; returns its number."""
    import mlflow

    client = mlflow.MlflowClient(store.tracking_uri)
    base = client.get_model_version(store.model_name, like)
    tags = {k: v for k, v in (base.tags or {}).items() if not k.startswith("mlcycle.promot")}
    new = client.create_model_version(store.model_name, base.source, run_id=base.run_id, tags=tags)
    return str(new.version)


def serving_version(url: str) -> str:
    """The model version the server at `url` serves (`GET /version`, one worker's answer)."""
    return requests.get(f"{url}/version", timeout=5).json()["model_version"]


def sample_csv(rows: int, seed: int) -> str:
    """`rows` synthetic input rows (no target) as a CSV body."""
    from mlcycle.core.synthetic import generate

    return generate(n_rows=rows, seed=seed).drop(columns=["default"]).to_csv(index=False)


# ---------------------------------------------------------------- a real server


class Server:
    """A real server process on a free loopback port against `store`, its files in `folder`.

    Attributes: `url`, `port`, `env` (what the process got), `log_db` (the prediction log
    file), `output` (its stdout and stderr), `proc`.

    Args:
        store: the MLflow store to serve from.
        folder: where the prediction log, reports, run folder and output go.
        workers: worker processes.
        command: `SERVING` (`python -m serving`) or `MLCYCLE_SERVE` (`python -m mlcycle serve`).
        args: more command-line options.
        env: variables over the defaults (admin token `ADMIN`, a 1 s registry poll); None
            removes one.
    """

    def __init__(
        self,
        store: TrainedStore,
        folder: Path,
        workers: int = 2,
        command: tuple[str, ...] = SERVING,
        args: tuple[str, ...] = (),
        **env: object,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_db = folder / "predictions.db"
        self.output = folder / "server.log"
        self.env = dict(os.environ)
        self.env.update(
            {
                "MLFLOW_TRACKING_URI": store.tracking_uri,
                "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{self.log_db}",
                "MLCYCLE_REPORTS_DIR": str(folder / "reports"),
                "MLCYCLE_ADMIN_TOKEN": ADMIN,
                "MLCYCLE_POLL_INTERVAL": "1",
                "MLCYCLE_HOME": str(folder),
            }
        )
        for name, value in env.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = str(value)
        cmd = [sys.executable, "-m", *command, "--port", str(self.port)]
        cmd += ["--workers", str(workers), *args]
        self.proc = start(cmd, self.env, self.output)
        self.wait_ready()

    def wait_ready(self, timeout: float = 150) -> None:
        """Wait until every worker is ready (`/v2/health/ready` answers 200)."""
        wait_http(self.url + "/v2/health/ready", self.proc, self.output, timeout)

    def kill9(self) -> None:
        kill_tree(self.proc)

    def stop(self, timeout: float = 15) -> None:
        stop(self.proc, timeout)


# ---------------------------------------------------------------- live-performance reports


def performance_traffic(hours: float, start: float = 0.0, seed: int = 0, per_hour: int = 200):
    """Served rows of versions "1" and "2" over `hours` from `start`, with their outcomes:
    `(ts, versions, probabilities, labels)` arrays."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = int(hours * per_hour)
    ts = start + np.sort(rng.random(n) * hours * 3600.0)
    versions = np.where(rng.random(n) < 0.5, "1", "2")
    p = rng.random(n)
    return ts, versions, p, (rng.random(n) < p).astype(float)


def write_performance_check(
    reports_dir: Path,
    rows,
    start: float,
    end: float,
    now: float,
    window_s: float = 3600.0,
    label_delay: float = 0.0,
    validation_auc: dict | None = None,
    model_name: str = "credit-risk",
) -> dict:
    """What `mlcycle performance` writes for `[start, end)` at `now` (the job's own writer,
    `monitoring.perfreport.write_performance`); labels of rows served in the last
    `label_delay` seconds before `now` have not arrived yet. Returns the summary."""
    import numpy as np

    from monitoring.performance import evaluate
    from monitoring.perfreport import build_summary, write_performance

    ts, versions, p, y = rows
    mine = (ts >= start) & (ts < end)
    labels = np.where(ts[mine] < now - label_delay, y[mine], np.nan)
    validation = {"1": 0.9, "2": 0.8} if validation_auc is None else validation_auc
    results = evaluate(
        ts[mine], versions[mine], p[mine], labels, window_s, validation_auc=validation
    )
    summary = build_summary(model_name, results, start, end, window_s, 0.05, 100, now)
    write_performance(Path(reports_dir), summary)
    return summary
