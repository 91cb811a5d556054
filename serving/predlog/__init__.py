"""The prediction log's writer side (tables and encodings: `mlcycle.core.prediction_log`).

- `writer`: `PredictionLog`, group commit with bounded waits, withdrawal and self-healing.
- `stores`: `open_store(url)`: SQLite (WAL) or any SQLAlchemy database, each wait time-limited.
- `checkpoint`: the SQLite WAL checkpointer thread.
- `labels`: `LabelStore` / `store_labels` / `load_csv`: observed outcomes of served rows.
"""

from serving.predlog.stores import SqlAlchemyStore, SqliteStore, Store, open_store
from serving.predlog.writer import LogHooks, LogUnavailable, PredictionLog

__all__ = [
    "LogHooks",
    "LogUnavailable",
    "PredictionLog",
    "SqlAlchemyStore",
    "SqliteStore",
    "Store",
    "open_store",
]
