"""`mlcycle.core.logdb.engine_url`: a bare `postgresql://` log URL gets an installed driver;
every other URL is left as written."""

from __future__ import annotations

import importlib.util

import pytest

from mlcycle.core.logdb import engine_url


def test_a_given_driver_and_sqlite_are_kept() -> None:
    for url in ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db", "sqlite:///x.db"):
        assert engine_url(url).render_as_string(hide_password=False) == url


def test_a_bare_postgresql_url_means_psycopg2_where_psycopg_3_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    installed = real("psycopg") is not None
    bare = engine_url("postgresql://u:secret@h:5433/db")
    assert bare.drivername == ("postgresql" if installed else "postgresql+psycopg2")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    url = engine_url("postgresql://u:secret@h:5433/db")
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "u", "secret", "h", 5433, "db"
    )  # fmt: skip
