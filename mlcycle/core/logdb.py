"""Opening the prediction log for reading: one engine factory for every reader.

In: the log's SQLAlchemy URL (`sqlite:///path`, `postgresql://...`, `postgresql+psycopg2://...`).
Out: an engine on a log that exists and holds the `predictions` table, or a `LogError` whose
message says what is missing; `engine_url`, the URL every engine on the log is made from (a
bare `postgresql://` gets a driver that is installed). Used by monitoring (drift, live
performance), the web charts, training (fine-tuning on labelled logged rows) and serving's
writer, so they agree on what "no log yet" means and on the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlcycle.core.prediction_log import ROWS


class LogError(Exception):
    """The prediction log cannot be read or does not hold enough rows (the message says why)."""


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def engine_url(url: str) -> Any:
    """The SQLAlchemy URL of the log with a driver that is installed.

    SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3; where only psycopg2 is
    installed (the `server` extra), the bare URL means psycopg2 instead of failing.
    """
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
        return parsed.set(drivername="postgresql+psycopg2")
    return parsed


def open_log(url: str) -> Any:
    """A SQLAlchemy engine on the prediction log, after checking that the log exists.

    Args:
        url: SQLAlchemy URL of the log.

    Returns:
        The engine.

    Raises:
        LogError: if the SQLite file or the `predictions` table is missing, or the database
            cannot be reached.
    """
    import sqlalchemy as sa

    path = _sqlite_path(url)
    if path is not None and not path.is_file():
        raise LogError(
            f"no prediction log at {path}: serve some traffic first "
            "(or set MLCYCLE_PREDICTION_LOG_URL)"
        )
    try:
        engine = sa.create_engine(engine_url(url))
        if not sa.inspect(engine).has_table(ROWS):
            raise LogError(f"the prediction log {_safe(url)} has no `predictions` table yet")
    except sa.exc.SQLAlchemyError as exc:
        raise LogError(
            f"cannot read the prediction log {_safe(url)}: {exc.__class__.__name__}"
        ) from exc
    return engine


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
