"""Write prediction-log rows in the Contract 2 schema straight into a SQLite file.

In: a DataFrame of raw input rows, their predictions, the model name/version/run id and
timestamps. Out: rows appended to the `predictions` table (created, with its indexes, when
missing). For tests and `benchmarks/drift.py`, which need a log of known content without a
running server; serving's own writer (`serving.predlog`) is what production uses.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

DDL = (
    "CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL "
    "NOT NULL, request_id TEXT, model_name TEXT, model_version TEXT, model_run_id TEXT, "
    "inputs TEXT, prediction REAL)",
    "CREATE INDEX IF NOT EXISTS ix_predictions_model_ts ON predictions "
    "(model_name, model_version, ts)",
    "CREATE INDEX IF NOT EXISTS ix_predictions_ts ON predictions (ts)",
)
_INSERT = (
    "INSERT INTO predictions (ts, request_id, model_name, model_version, model_run_id, "
    "inputs, prediction) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def create_log(path: Path) -> None:
    """Create an empty prediction log (table and indexes) at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in DDL:
            conn.execute(statement)


def append_rows(
    path: Path,
    inputs: Any,
    predictions: Any,
    model_name: str,
    model_version: str,
    run_id: str,
    ts: Any = None,
    chunk: int = 50_000,
) -> int:
    """Append one log row per input row.

    Args:
        path: SQLite file (created when missing).
        inputs: DataFrame of raw input columns.
        predictions: one probability per row.
        model_name: registered model name.
        model_version: registry version.
        run_id: the version's run id.
        ts: one Unix time per row, or a single time, or None (now).
        chunk: rows per transaction.

    Returns:
        The number of rows written.
    """
    import numpy as np
    import orjson

    create_log(path)
    n = len(inputs)
    if ts is None:
        ts = time.time()
    times = np.broadcast_to(np.asarray(ts, dtype=float), (n,))
    preds = np.asarray(predictions, dtype=float)
    names = list(inputs.columns)
    # Column lists of plain Python values: ~10x faster than DataFrame.to_json per row.
    values = [inputs[c].tolist() for c in names]
    request = uuid.uuid4().hex
    version = str(model_version)
    with sqlite3.connect(path) as conn:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            conn.executemany(
                _INSERT,
                (
                    (
                        float(times[i]),
                        request,
                        model_name,
                        version,
                        run_id,
                        orjson.dumps(
                            dict(zip(names, (col[i] for col in values), strict=True))
                        ).decode(),
                        float(preds[i]),
                    )
                    for i in range(start, stop)
                ),
            )
            conn.commit()
    return n
