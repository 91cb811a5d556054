"""Labels on PostgreSQL: the labels store and the labelled reader on a real server, through
both URL forms mlcycle accepts (`postgresql://`, `postgresql+psycopg2://`): idempotent
upserts, corrections, unknown rows, batch rows, and an older log that gains the labels table.

In: `MLCYCLE_TEST_POSTGRES_URL` or a throwaway cluster (`tests/postgres.py`); skipped, with
the reason, when neither is available.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from mlcycle.core.labelled import read_labelled
from mlcycle.core.prediction_log import build_batch, build_rows
from serving.predlog import open_store
from serving.predlog.labels import store_labels
from tests import postgres

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
NAMES = ("x",)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """An admin SQLAlchemy URL of a running PostgreSQL server."""
    with postgres.server() as url:
        yield url


@pytest.fixture
def database(server_url: str) -> Iterator[str]:
    """A fresh database (psycopg2 URL), dropped afterwards."""
    with postgres.database(server_url, "labels") as url:
        yield url


@pytest.mark.parametrize("driver", ["postgresql+psycopg2", "postgresql"])
def test_labels_store_and_reader_on_postgres(database: str, driver: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(database).set(drivername=driver).render_as_string(hide_password=False)
    store = open_store(url)
    p = np.array([0.1, 0.6, 0.9])
    store.write(
        build_rows("r1", "m", "1", "run", NAMES, {"x": p}, p, ts=10.0),
        [build_batch("b1", "m", "2", "run", NAMES, {"x": np.zeros(300)}, np.full(300, 0.3), 20.0)],
    )
    store.close()

    first = store_labels(url, [("r1", 0, 0), ("r1", 2, 1), ("b1", 299, 1), ("r1", 3, 1)], now=1.0)
    assert (first.stored, first.unknown) == (3, [("r1", 3)])
    again = store_labels(url, [("r1", 0, 0), ("r1", 2, 0), ("nope", 0, 1), ("r1", 1, "x")], 2.0)
    assert (again.stored, again.updated, again.unchanged) == (0, 1, 1)
    assert again.unknown == [("nope", 0)] and again.invalid[0].index == 3

    frame = read_labelled(url, "m", 0, 100)
    assert len(frame) == 303
    rows = frame[frame.model_version == "1"]
    np.testing.assert_array_equal(rows.label, [0.0, np.nan, 0.0])  # r1 row 2 corrected to 0
    batch = frame[frame.model_version == "2"].label.to_numpy()
    assert batch[299] == 1.0 and np.isnan(batch[:299]).all()


def test_an_older_postgres_log_gains_the_labels_table_and_indexes(database: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(database)
    with engine.begin() as conn:  # `predictions` as logs had it before labels
        conn.execute(sa.text(
            "CREATE TABLE predictions (id SERIAL PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, "
            "request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
            "inputs TEXT, prediction DOUBLE PRECISION)"
        ))  # fmt: skip
        conn.execute(sa.text("INSERT INTO predictions (ts, request_id, prediction) "
                             "VALUES (1, 'r', 0.5)"))  # fmt: skip
    assert store_labels(database, [("r", 0, 1)]).stored == 1
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("predictions")}
    assert "ix_predictions_request" in indexes
    engine.dispose()
