"""Retention of the prediction log: delete what was served before a cutoff, while serving writes.

In: the log's URL (`sqlite:///path`, `postgresql://...`, `postgresql+psycopg2://...`), a cutoff
(Unix time) and a chunk size. Out: a `PruneCount` of the `predictions` rows, the
`prediction_batches` rows (and the served rows they hold) and the `labels` of those rows that
were deleted, or with `count_old` that would be; nothing served at or after the cutoff is
touched.

Safe beside running servers: ids are chosen in a read of their own, then deleted by id in one
short transaction per chunk, so the log's write lock (SQLite's one writer; PostgreSQL only locks
the deleted rows) is held for one chunk's delete at a time and serving's writes go in between.
A label goes with the last logged row of its request id: once neither table holds that request
id, no label can name a row of it (`serving.predlog.labels` keeps labels of logged rows only).
Space freed in a SQLite file is reused by new rows; the file itself only shrinks on `VACUUM`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mlcycle.core import prediction_log as contract
from mlcycle.core.logdb import open_log
from serving.predlog.stores import create_engine

log = logging.getLogger(__name__)

CHUNK = 2_000  # rows per delete transaction: milliseconds of lock on either database
BATCH_SHARE = 20  # a batch row holds a whole request's rows: 1/20 as many per transaction


@dataclass(frozen=True)
class PruneCount:
    """What a prune deleted (or would delete)."""

    rows: int
    """`predictions` rows."""
    batches: int
    """`prediction_batches` rows."""
    batch_rows: int
    """Served rows held in those batches."""
    labels: int
    """`labels` rows of the deleted served rows."""

    def __add__(self, other: PruneCount) -> PruneCount:
        return PruneCount(
            self.rows + other.rows,
            self.batches + other.batches,
            self.batch_rows + other.batch_rows,
            self.labels + other.labels,
        )


NOTHING = PruneCount(0, 0, 0, 0)

_SAME_REQUEST = f"request_id = {contract.LABELS}.request_id"
_GONE = (
    f"NOT EXISTS (SELECT 1 FROM {contract.ROWS} WHERE {_SAME_REQUEST})"
    f" AND NOT EXISTS (SELECT 1 FROM {contract.BATCHES} WHERE {_SAME_REQUEST})"
)


def count_old(url: str, cutoff: float) -> PruneCount:
    """What `prune(url, cutoff)` would delete now (a dry run: reads only).

    Raises:
        LogError: when the log does not exist or cannot be read.
    """
    import sqlalchemy as sa

    engine = open_log(url)
    old, new = f"ts < :cutoff AND {_SAME_REQUEST}", f"ts >= :cutoff AND {_SAME_REQUEST}"
    labels = (  # the labels whose request has old rows and will have no row left
        f"SELECT COUNT(*) FROM {contract.LABELS} WHERE "
        f"(EXISTS (SELECT 1 FROM {contract.ROWS} WHERE {old}) OR "
        f"EXISTS (SELECT 1 FROM {contract.BATCHES} WHERE {old})) AND "
        f"NOT EXISTS (SELECT 1 FROM {contract.ROWS} WHERE {new}) AND "
        f"NOT EXISTS (SELECT 1 FROM {contract.BATCHES} WHERE {new})"
    )
    try:
        with engine.connect() as conn:
            args = {"cutoff": cutoff}
            rows = conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {contract.ROWS} WHERE ts < :cutoff"), args
            ).scalar()
            batches, batch_rows = conn.execute(
                sa.text(
                    f"SELECT COUNT(*), COALESCE(SUM(n_rows), 0) FROM {contract.BATCHES} "
                    "WHERE ts < :cutoff"
                ),
                args,
            ).one()
            n_labels = conn.execute(sa.text(labels), args).scalar() if _has_labels(conn) else 0
    finally:
        engine.dispose()
    return PruneCount(int(rows), int(batches), int(batch_rows), int(n_labels))


def prune(url: str, cutoff: float, chunk: int = CHUNK, timeout_s: float = 30.0) -> PruneCount:
    """Delete every row served before `cutoff`, and its labels, `chunk` rows per transaction.

    Args:
        url: the log's SQLAlchemy URL.
        cutoff: Unix time; rows with `ts < cutoff` go.
        chunk: most `predictions` rows deleted in one transaction (`prediction_batches`
            rows, each a whole large request: `chunk // BATCH_SHARE`, at least 1).
        timeout_s: the longest one statement may wait for a lock or run.

    Returns:
        What was deleted.

    Raises:
        LogError: when the log does not exist or cannot be read.
    """
    open_log(url).dispose()
    engine = create_engine(url, timeout_s)
    total = NOTHING
    try:
        with engine.connect() as conn:
            labels = _has_labels(conn)
        for table, n in ((contract.ROWS, chunk), (contract.BATCHES, max(1, chunk // BATCH_SHARE))):
            while True:
                done = _prune_chunk(engine, table, cutoff, n, labels)
                total += done
                if done.rows + done.batches < n:
                    break
    finally:
        engine.dispose()
    log.info("pruned the prediction log before %.0f: %s", cutoff, total)
    return total


def _prune_chunk(engine, table: str, cutoff: float, chunk: int, labels: bool) -> PruneCount:
    """One chunk of `table`: pick the oldest ids (a read), then delete them and the labels
    left without a row (one short write transaction)."""
    import sqlalchemy as sa

    n_rows = "n_rows" if table == contract.BATCHES else "1"
    pick = sa.text(
        f"SELECT id, request_id, {n_rows} FROM {table} WHERE ts < :cutoff ORDER BY ts LIMIT :n"
    )
    with engine.connect() as conn:
        found = conn.execute(pick, {"cutoff": cutoff, "n": chunk}).all()
    if not found:
        return NOTHING
    ids = [r[0] for r in found]
    request_ids = sorted({r[1] for r in found if r[1] is not None})
    drop = sa.text(f"DELETE FROM {table} WHERE id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    orphans = sa.text(
        f"DELETE FROM {contract.LABELS} WHERE request_id IN :rids AND {_GONE}"
    ).bindparams(sa.bindparam("rids", expanding=True))
    with engine.begin() as conn:
        deleted = conn.execute(drop, {"ids": ids}).rowcount
        gone = 0
        if labels and request_ids:
            gone = conn.execute(orphans, {"rids": request_ids}).rowcount
    if table == contract.ROWS:
        return PruneCount(deleted, 0, 0, gone)
    return PruneCount(0, deleted, sum(int(r[2]) for r in found), gone)


def _has_labels(conn) -> bool:
    import sqlalchemy as sa

    return sa.inspect(conn).has_table(contract.LABELS)
