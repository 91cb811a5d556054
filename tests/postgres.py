"""A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` on a free loopback port.

In: the server binaries from `/usr/lib/postgresql/*/bin` (Debian package `postgresql`), run as
the `postgres` OS user when the tests run as root. Out: a `Cluster` to `start` (an admin
SQLAlchemy URL), `kill` (`pg_ctl stop -m immediate`: a crash of the server's processes) and
`restart` on the same data and port, and `stop` (which also deletes it); `cluster_or_skip()`
skips the test, with the reason, where no server can be run; `server()` gives the URL of
`MLCYCLE_TEST_POSTGRES_URL` or of a throwaway cluster for the length of a `with`;
`database()` a fresh database on such a server, dropped afterwards. Imported as
`tests.postgres`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import free_port

FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
DURABLE = "-c fsync=off -c synchronous_commit=on"  # a commit survives the server's crash


def _pg_bin() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_cluster_owner(argv: list[str]) -> list[str]:
    """Run as the `postgres` OS user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder, trust auth on 127.0.0.1.

    Args:
        bindir: folder of `initdb` and `pg_ctl`.
        settings: server `-c` options (`FAST` for speed; `DURABLE` where a test crashes the
            server and counts acknowledged commits).
    """

    def __init__(self, bindir: Path, settings: str = FAST) -> None:
        self.bindir = bindir
        self.settings = settings
        self.root = Path(tempfile.mkdtemp(prefix="mlcycle-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(
            _as_cluster_owner([str(self.bindir / argv[0]), *argv[1:]]),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {proc.stdout[-1500:]}{proc.stderr[-1500:]}")

    def start(self) -> str:
        """Create and start the cluster; returns its admin URL (psycopg2)."""
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip
        self.restart()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def restart(self) -> None:
        """Start the server on the existing data (after `kill`)."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} {self.settings}"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.root / "server.log"), "-w", "-t", "60", "start")  # fmt: skip

    def kill(self) -> None:
        """`pg_ctl stop -m immediate`: every server process quits at once, no shutdown."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        """Stop the server (if running) and delete the cluster."""
        try:
            self.kill()
        except RuntimeError:
            pass  # already stopped
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def cluster_or_skip(settings: str = FAST) -> Cluster:
    """A new (not yet started) `Cluster`, or skip the test saying what is missing."""
    pytest.importorskip("psycopg2", reason="psycopg2 is needed (pip install -e '.[postgres]')")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(
            "no PostgreSQL: set MLCYCLE_TEST_POSTGRES_URL or install the server "
            "(Debian package `postgresql`, for initdb/pg_ctl)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a `postgres` OS user to own the test cluster")
    return Cluster(bindir, settings)


@contextmanager
def server() -> Iterator[str]:
    """An admin SQLAlchemy URL of a running PostgreSQL server: `MLCYCLE_TEST_POSTGRES_URL`
    (any server the user may create databases on, e.g. CI's service container) as given, else
    a throwaway cluster started here and deleted on exit; skips the test where neither."""
    url = os.environ.get("MLCYCLE_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    cluster = cluster_or_skip()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@contextmanager
def database(admin_url: str, purpose: str) -> Iterator[str]:
    """A fresh database on the server of `admin_url` (any PostgreSQL URL), named after
    `purpose`; yields its psycopg2 URL and drops it on exit."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = make_url(admin_url).set(drivername="postgresql+psycopg2")
    name = f"mlcycle_{purpose}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
