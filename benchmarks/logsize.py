"""Bytes per logged row of the prediction log, SQLite and PostgreSQL, for retention planning.

In: synthetic rows of the bundled data's columns, written by serving's own store
(`serving.predlog.open_store`) the way a server logs them: `--rows` rows as one-row requests
(`predictions`, one JSON row each), the same rows as requests of 1,000 rows (`prediction_batches`,
one Arrow blob each, which serving uses from `MLCYCLE_LOG_BATCH_ROWS` rows up) and one label per
row. Out: a table on stdout and in the `logsize` section of docs/operations.md: bytes on disk per
row for each table, indexes included (SQLite: pages in use after a checkpoint, from `dbstat`;
PostgreSQL: `pg_total_relation_size`, TOAST included), on a throwaway PostgreSQL cluster when the
server binaries are installed (`tests.postgres` is not shipped: this starts its own).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, cli, docs

HEADING = "## Prediction-log size (`python -m benchmarks.logsize`)"
BATCH = 1_000


def columns_and_names(n: int) -> tuple[tuple[str, ...], dict]:
    """`n` synthetic input rows as serving's validated columns (numbers as float64)."""
    import numpy as np

    from mlcycle.core import synthetic

    frame = synthetic.generate(n, seed=5).drop(columns=["default"])
    names = tuple(frame.columns)
    cols = {
        c: frame[c].to_numpy(np.float64) if frame[c].dtype.kind in "if" else frame[c].to_numpy()
        for c in names
    }
    return names, cols


def fill(url: str, n: int) -> None:
    """Write `n` rows as one-row requests, as 1,000-row batches, and `n` labels."""
    import numpy as np
    import sqlalchemy as sa

    from mlcycle.core import prediction_log as contract
    from serving.predlog import open_store

    names, cols = columns_and_names(n)
    probs = np.random.default_rng(0).random(n)
    store = open_store(url)
    ts = time.time()
    for start in range(0, n, 1_000):
        rows = []
        for i in range(start, min(n, start + 1_000)):
            rid = f"{int(ts * 1e6) + i:013x}{os.urandom(10).hex()}"
            one = {c: cols[c][i : i + 1] for c in names}
            rows += contract.build_rows(rid, "credit-risk", "3", "r" * 32, names, one,
                                        probs[i : i + 1], ts + i * 1e-3)  # fmt: skip
        part = {c: cols[c][start : start + BATCH] for c in names}
        batch = contract.build_batch(f"batch-{start}", "credit-risk", "3", "r" * 32, names,
                                     part, probs[start : start + BATCH], ts)  # fmt: skip
        store.write(rows, [batch])
    store.close()
    engine = sa.create_engine(url)
    labels = contract.tables(sa.MetaData())[3]
    with engine.begin() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT request_id FROM predictions"))]
        entries = [{"request_id": r, "row": 0, "label": i % 2, "ts": ts} for i, r in enumerate(ids)]
        conn.execute(contract.label_upsert(labels, engine.dialect.name), entries)
    engine.dispose()


def sqlite_sizes(path: Path) -> dict[str, int]:
    """Bytes in use per table, its indexes included (SQLite's `dbstat`)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = conn.execute(
            "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m "
            "ON s.name = m.name GROUP BY m.tbl_name"
        ).fetchall()
    return dict(rows)


def postgres_sizes(url: str) -> dict[str, int]:
    """Bytes per table, indexes and TOAST included (`pg_total_relation_size`)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.execute(sa.text("CHECKPOINT"))
        out = {
            t: conn.execute(sa.text(f"SELECT pg_total_relation_size('{t}')")).scalar()
            for t in ("predictions", "prediction_batches", "labels")
        }
    engine.dispose()
    return out


@contextlib.contextmanager
def throwaway_postgres():
    """A PostgreSQL cluster on a free port, deleted on exit (None where the server binaries
    are missing)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        yield None
        return
    bindir = Path(found[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="mlcycle-logsize-pg-"))
    data = root / "data"
    as_owner: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *a: subprocess.run([*as_owner, *a], check=True, capture_output=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def table(n: int, sizes: dict[str, dict[str, int]]) -> list[str]:
    """The docs section: bytes per row of each table, one line per database."""
    day = time.strftime("%Y-%m-%d", time.gmtime())
    lines = [
        f"{n:,} rows logged per table by serving's store ({day}"
        f", the bundled data's input columns, 33-character request ids): bytes on disk per "
        "row, indexes included.",
        "",
        "| database | `predictions` (one-row requests) | `prediction_batches` (1,000-row "
        "requests) | `labels` |",
        "|---|---|---|---|",
    ]
    for name, s in sizes.items():
        lines.append(
            f"| {name} | {s['predictions'] / n:,.0f} | {s['prediction_batches'] / n:,.0f} "
            f"| {s['labels'] / n:,.0f} |"
        )
    return lines


def main() -> None:
    parser = cli.parser(__doc__, tracking_uri=False)
    parser.add_argument("--rows", type=int, default=50_000, help="rows per table")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlcycle-logsize-"))
    try:
        sizes = {}
        db = root / "predictions.db"
        fill(f"sqlite:///{db}", args.rows)
        sizes["SQLite"] = sqlite_sizes(db)
        with throwaway_postgres() as url:
            if url:
                fill(url, args.rows)
                sizes["PostgreSQL"] = postgres_sizes(url)
        report = "\n".join(table(args.rows, sizes))
        print(report)
        if not args.no_write:
            docs.write_section("logsize", report, HEADING, ROOT / "docs" / "operations.md")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
