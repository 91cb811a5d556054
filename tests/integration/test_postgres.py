"""mlcycle past one machine: MLflow tracking + registry and the prediction log on PostgreSQL.

In: a real PostgreSQL server, either `MLCYCLE_TEST_POSTGRES_URL` (any SQLAlchemy URL of a
database the user may create databases from, e.g. CI's service container) or a throwaway cluster
started here with `initdb` + `pg_ctl` from `/usr/lib/postgresql/*/bin` (run as the `postgres` OS
user when the tests run as root) on a free loopback port. Out: pass/fail of

- the training pipeline logging and registering `credit-risk` in an MLflow store on PostgreSQL,
  promotion and rollback with `mlcycle.core.registry` (stage and alias together), and loading
  `models:/credit-risk@production`;
- serving's prediction log (`serving.predlog`) writing rows from two writers into PostgreSQL,
  read back with the documented schema (Contract 2) and by monitoring's log reader.

Skipped, with the reason, when neither the URL nor the PostgreSQL binaries are available.
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests import postgres
from tests.helpers import TINY, tracking_uri

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

MODEL_NAME = "credit-risk"


@dataclass(frozen=True)
class Databases:
    """SQLAlchemy URLs of two fresh databases on the server under test."""

    mlflow: str
    predictions: str


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """An admin SQLAlchemy URL of a running PostgreSQL server."""
    with postgres.server() as url:
        yield url


@pytest.fixture(scope="module")
def databases(postgres_url: str) -> Iterator[Databases]:
    """Two fresh databases (MLflow store, prediction log), dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    # SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; the `postgres` extra ships psycopg2.
    base = make_url(postgres_url).set(drivername="postgresql+psycopg2")
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    prefix = f"mlcycle_test_{uuid.uuid4().hex[:8]}"
    names = {"mlflow": f"{prefix}_mlflow", "predictions": f"{prefix}_predictions"}
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    urls = {k: base.set(database=v).render_as_string(hide_password=False) for k, v in names.items()}
    try:
        yield Databases(**urls)
    finally:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- (a) MLflow on PostgreSQL


def test_mlflow_tracking_and_registry_on_postgres(
    databases: Databases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train, register, gate, promote, roll back and load by alias on a PostgreSQL store."""
    import mlflow
    import sqlalchemy as sa

    from mlcycle.core import registry
    from mlcycle.core.synthetic import TARGET, generate
    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    uri = databases.mlflow
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with tracking_uri(uri):
        client = mlflow.MlflowClient(uri)
        client.create_experiment("pg", artifact_location=(tmp_path / "artifacts").as_uri())
        first = run(TrainConfig(**TINY, experiment="pg", model_name=MODEL_NAME))
        assert first.version == "1" and first.promoted, first.reason

        # A second version of the same model: registered, then promoted by hand.
        second = str(mlflow.register_model(first.model_uri, MODEL_NAME).version)
        entry = registry.promote(MODEL_NAME, second, "production", "pg test", "pytest", client)
        assert entry["previous"] == "1"
        assert str(client.get_model_version_by_alias(MODEL_NAME, "production").version) == second
        found = client.search_model_versions(f"name = '{MODEL_NAME}'")
        stages = {str(v.version): v.current_stage for v in found}
        assert stages == {"1": "Archived", second: "Production"}
        assert registry.resolve_production(client, MODEL_NAME).version == second

        model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@production")
        rows = generate(n_rows=50, seed=3).drop(columns=[TARGET])
        probs = np.asarray(model.predict(rows), dtype=float)
        assert probs.shape == (50,) and np.all((probs >= 0) & (probs <= 1))
        assert model.metadata.run_id == first.run_id

        back = registry.rollback(MODEL_NAME, reason="pg test", by="pytest", client=client)
        assert back["version"] == "1"
        assert client.get_model_version(MODEL_NAME, "1").current_stage == "Production"
        assert [e["version"] for e in registry.history(MODEL_NAME, client)][-2:] == [second, "1"]

    # The registry really lives in PostgreSQL, not in a file next to the test.
    engine = sa.create_engine(uri)
    try:
        with engine.connect() as conn:
            versions = conn.execute(
                sa.text("SELECT version, current_stage FROM model_versions WHERE name = :n"),
                {"n": MODEL_NAME},
            ).all()
            aliases = conn.execute(
                sa.text("SELECT alias, version FROM registered_model_aliases WHERE name = :n"),
                {"n": MODEL_NAME},
            ).all()
            metrics = conn.execute(
                sa.text("SELECT key FROM latest_metrics WHERE run_uuid = :r"),
                {"r": first.run_id},
            ).scalars()
            metric_keys = set(metrics)
    finally:
        engine.dispose()
    assert sorted((str(v), s) for v, s in versions) == [("1", "Production"), ("2", "Archived")]
    assert [(a, str(v)) for a, v in aliases] == [("production", "1")]
    assert {"val_auc", "test_auc"} <= metric_keys


# ---------------------------------------------------------------- (b) prediction log


def _rows(request_id: str, n: int) -> list[tuple]:
    from mlcycle.core.prediction_log import build_rows

    names = ("age", "income", "home_ownership")
    columns = {
        "age": np.array([30.0 + i for i in range(n)]),
        "income": np.array([float("nan") if i == 0 else 1000.0 * i for i in range(n)]),
        "home_ownership": np.array(["RENT"] * n, dtype=object),
    }
    predictions = np.linspace(0.1, 0.9, n)
    return build_rows(request_id, MODEL_NAME, "3", "run-pg", names, columns, predictions)


def test_prediction_log_on_postgres(databases: Databases) -> None:
    """Two writers (two serving processes, one per commit mode) share one PostgreSQL table,
    each fed by two request threads; every acknowledged row is there, readable by monitoring."""
    import sqlalchemy as sa

    from monitoring.logreader import read_window
    from monitoring.windows import Window
    from serving.predlog import PredictionLog, open_store

    url = databases.predictions
    writers = [PredictionLog(lambda: open_store(url), max_rows=64) for _ in range(2)]
    acknowledged: list[bool] = []

    def client(writer: int, thread: int) -> None:
        for request in range(20):
            rows = _rows(f"w{writer}-t{thread}-r{request}", 5)
            writers[writer].write(rows)
            acknowledged.append(True)

    threads = [threading.Thread(target=client, args=(w, t)) for w in range(2) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for writer in writers:
        writer.close()
    assert len(acknowledged) == 80 and all(acknowledged)

    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        types = {c["name"]: c["type"] for c in inspector.get_columns("predictions")}
        assert list(types) == [
            "id", "ts", "request_id", "model_name", "model_version", "model_run_id", "inputs",
            "prediction",
        ]  # fmt: skip
        assert isinstance(types["id"], sa.Integer)
        assert isinstance(types["ts"], sa.Float) and isinstance(types["prediction"], sa.Float)
        assert str(types["ts"]) == "DOUBLE PRECISION"
        for text_column in ("request_id", "model_name", "model_version", "inputs"):
            assert isinstance(types[text_column], sa.Text)
        assert inspector.get_pk_constraint("predictions")["constrained_columns"] == ["id"]
        indexed = {tuple(i["column_names"]) for i in inspector.get_indexes("predictions")}
        assert {("model_name", "model_version", "ts"), ("ts",)} <= indexed
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, request_id, inputs, prediction FROM predictions ORDER BY id")
            ).all()
    finally:
        engine.dispose()

    assert len(rows) == 400
    assert len({r.id for r in rows}) == 400
    per_request: dict[str, list] = {}
    for row in rows:
        per_request.setdefault(row.request_id, []).append(row)
    assert len(per_request) == 80 and all(len(v) == 5 for v in per_request.values())
    first = sorted(per_request["w1-t0-r7"], key=lambda r: r.id)
    assert [json.loads(r.inputs) for r in first][:2] == [
        {"age": 30.0, "income": None, "home_ownership": "RENT"},
        {"age": 31.0, "income": 1000.0, "home_ownership": "RENT"},
    ]
    assert all(
        math.isclose(r.prediction, p) for r, p in zip(first, np.linspace(0.1, 0.9, 5), strict=True)
    )

    window = read_window(
        url, MODEL_NAME, "3", "run-pg", Window(last=300), ["age", "income", "home_ownership"],
        min_rows=10, cap=0, seed=0,
    )  # fmt: skip
    assert window.n_window == 300 and len(window.frame) == 300
    assert set(window.frame.columns) >= {"age", "income", "home_ownership", "prediction"}
    newest = sorted(rows, key=lambda r: r.id)[-300:]
    missing_income = sum(json.loads(r.inputs)["income"] is None for r in newest)
    assert window.frame["income"].isna().sum() == missing_income > 0


def test_prediction_batches_on_postgres_are_read_like_rows(databases: Databases) -> None:
    """A large request logged as one `prediction_batches` row (Arrow IPC in a bytea) by
    serving's PostgreSQL store is counted and read by monitoring like per-row rows, and counted
    by the web app's volume chart."""
    from mlcycle.core.prediction_log import build_batch, build_rows
    from monitoring.logreader import read_window
    from monitoring.windows import Window
    from serving.predlog import SqlAlchemyStore
    from serving.web.charts import hourly_volume

    names = ("age", "income", "home_ownership")
    n, ts = 400, 3600.0 * 100 + 60  # an hour of its own, long before the other tests' rows
    arrays = {
        "age": np.arange(n, dtype=float),
        "income": np.where(np.arange(n) % 4 == 0, np.nan, 1000.0),
        "home_ownership": np.array(["RENT", "OWN"] * (n // 2), dtype=object),
    }
    batch = build_batch("big", MODEL_NAME, "4", "run-pg", names, arrays, np.full(n, 0.3), ts=ts)
    small = {"age": [1000.0] * 5, "income": [None] * 5, "home_ownership": ["MORTGAGE"] * 5}
    rows = build_rows("small", MODEL_NAME, "4", "run-pg", names, small, np.full(5, 0.7), ts=ts + 1)
    store = SqlAlchemyStore(databases.predictions)
    try:
        store.write(rows, [batch])
    finally:
        store.close()

    def read(window: Window, cap: int = 0):
        return read_window(
            databases.predictions, MODEL_NAME, "4", "run-pg", window, list(names),
            min_rows=1, cap=cap, seed=0,
        )  # fmt: skip

    got = read(Window(last=10_000))
    assert got.n_window == 405 == len(got.frame) and (got.first_ts, got.last_ts) == (ts, ts + 1)
    frame = got.frame.sort_values("age", ignore_index=True)
    assert frame["age"].tolist()[:n] == list(range(n)) and frame["age"].tolist()[n] == 1000
    assert frame["income"].isna().sum() == n // 4 + 5
    assert frame["home_ownership"].value_counts().to_dict() == {
        "RENT": 200,
        "OWN": 200,
        "MORTGAGE": 5,
    }
    assert read(Window(last=3)).n_window == 5  # the newest request only
    sampled = read(Window(start=ts - 1, end=ts + 2), cap=100)
    assert sampled.n_window == 405 and 80 <= len(sampled.frame) <= 120
    assert (3600.0 * 100, 405) in hourly_volume(databases.predictions, since=0.0)
