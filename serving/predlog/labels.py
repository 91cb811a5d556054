"""Store the observed outcomes (labels) of served rows beside the prediction log.

In: a log URL (`sqlite:///path`, `postgresql://...`, `postgresql+psycopg2://...`) and label
entries, `{request_id, row, label}` mappings (`row` defaults to 0) or `(request_id, row, label)`
sequences, as `POST /labels` receives them or a CSV file (`load_csv`) holds them. Out: rows of
the `labels` table (`mlcycle.core.prediction_log`) and a `LabelReceipt` saying what became of
each entry. Nothing in a batch fails the batch: an invalid entry or an unknown row is counted
and named in the receipt, the rest are stored.

Semantics:
- A label names a served row by `(request_id, row)`: `row` is the row's 0-based position in
  its request. It is **known** when the log holds that row: the request id has more than `row`
  `predictions` rows, or a `prediction_batches` row of more than `row` rows.
- Unknown rows are **not stored**. Serving answers a request only after its rows are committed
  to the log, so by the time a client holds a request id and can label it, the row is there; a
  label for a row the log does not hold is a client error (a mistyped id, another
  deployment's log), counted and reported (`unknown`), never kept waiting for a prediction.
- Idempotent on `(request_id, row)`: a new key is stored; a key whose label differs is
  **replaced** (a correction; `ts` becomes the time of the correction); the same label again
  changes nothing. Within one batch the last entry for a key wins (`duplicates` counts the
  others).
- Writes go in transactions of `chunk` entries so that a large file never holds the log's
  write lock (which serving's writer waits on) for long.
"""

from __future__ import annotations

import csv
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle.core import prediction_log as contract
from serving.predlog.stores import create_engine, create_tables

MAX_REQUEST_ID = 200  # characters; longer ids are refused as invalid
_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no"}
_LOOKUP_CHUNK = 500  # request ids per IN (...) list
_CSV_COLUMNS = ("request_id", "row", "label")


class LabelError(Exception):
    """The labels cannot be stored at all (no log, unreadable CSV header); the message says
    why. Problems of single entries go to the `LabelReceipt` instead."""


@dataclass(frozen=True)
class Label:
    """One valid label entry."""

    request_id: str
    row: int
    label: int


@dataclass(frozen=True)
class InvalidLabel:
    """An entry that is not a label: its 0-based position in the batch and the reason."""

    index: int
    reason: str


@dataclass
class LabelReceipt:
    """What became of a batch of label entries.

    Attributes:
        received: entries in the batch.
        stored: keys not labelled before, now stored.
        updated: keys whose stored label differed, now replaced.
        unchanged: keys re-sent with the label they already had (nothing written).
        duplicates: entries superseded by a later entry for the same key in the batch.
        unknown: `(request_id, row)` keys the log holds no served row for (not stored).
        invalid: entries that are not labels (not stored), with the reason.
    """

    received: int = 0
    stored: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    unknown: list[tuple[str, int]] = field(default_factory=list)
    invalid: list[InvalidLabel] = field(default_factory=list)

    def add(self, other: LabelReceipt) -> None:
        """Add the counts and lists of another receipt (a later chunk) to this one."""
        self.received += other.received
        self.stored += other.stored
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.duplicates += other.duplicates
        self.unknown.extend(other.unknown)
        self.invalid.extend(other.invalid)

    def as_dict(self, limit: int = 100) -> dict:
        """JSON-ready receipt (the body of `POST /labels`): counts, and the first `limit`
        unknown keys and invalid entries."""
        return {
            "received": self.received,
            "stored": self.stored,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "unknown": len(self.unknown),
            "invalid": len(self.invalid),
            "unknown_ids": [{"request_id": r, "row": i} for r, i in self.unknown[:limit]],
            "invalid_entries": [
                {"index": e.index, "reason": e.reason} for e in self.invalid[:limit]
            ],
        }

    def line(self) -> str:
        """One line for people."""
        return (
            f"{self.received} labels: {self.stored} stored, {self.updated} updated, "
            f"{self.unchanged} unchanged, {len(self.unknown)} unknown, "
            f"{len(self.invalid)} invalid"
        )


def parse_label(entry: Any) -> Label:
    """One label entry as a `Label`.

    Args:
        entry: a mapping with `request_id`, `label` and optionally `row` (default 0), or a
            `(request_id, row, label)` sequence. `row`: an integer >= 0 (or its decimal
            text, as in a CSV; empty means 0). `label`: 0/1, true/false (or their text:
            `0`, `1`, `true`, `false`, `yes`, `no`, any case).

    Returns:
        The label.

    Raises:
        ValueError: what is wrong with the entry (one sentence).
    """
    if isinstance(entry, Mapping):
        unknown = set(entry) - {"request_id", "row", "label"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        if "request_id" not in entry or "label" not in entry:
            raise ValueError("an entry needs `request_id` and `label`")
        request_id, row, label = entry["request_id"], entry.get("row"), entry["label"]
    elif isinstance(entry, Sequence) and not isinstance(entry, (str, bytes)) and len(entry) == 3:
        request_id, row, label = entry
    else:
        raise ValueError("an entry is an object {request_id, row, label}")
    return Label(_request_id(request_id), _row(row), _label(label))


def _request_id(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("`request_id` must be a non-empty string")
    if len(value) > MAX_REQUEST_ID:
        raise ValueError(f"`request_id` is longer than {MAX_REQUEST_ID} characters")
    return value


def _row(value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0:
        return int(value)
    raise ValueError(f"`row` must be an integer >= 0, not {value!r}")


def _label(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1
        if text in _FALSE:
            return 0
    raise ValueError(f"`label` must be 0 or 1 (or true/false), not {value!r}")


class LabelStore:
    """The `labels` table of one log; `store(entries)` validates, checks and upserts.

    Args:
        url: the prediction log's URL (as serving's `open_store` takes it). A SQLite log must
            exist; the `labels` table and the log's indexes are created when missing.
        timeout_s: the longest a write waits for the log's write lock or a connection.
        chunk: entries per transaction.
    """

    def __init__(self, url: str, timeout_s: float = 5.0, chunk: int = 5_000) -> None:
        import sqlalchemy as sa

        _require_sqlite_file(url)
        self._engine = create_engine(url, timeout_s)
        self._dialect = self._engine.dialect.name
        if self._dialect == "sqlite":
            _begin_immediate(self._engine)
        self._chunk = max(1, int(chunk))
        self._rows, self._batches, _, self._labels, _ = contract.tables(sa.MetaData())
        self._upsert = contract.label_upsert(self._labels, self._dialect)
        try:
            create_tables(self._engine)
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise LabelError(f"cannot open the prediction log: {exc.__class__.__name__}") from exc

    def store(self, entries: Iterable[Any], now: float | None = None) -> LabelReceipt:
        """Validate `entries`, keep the known ones and upsert them (see the module docstring).

        Args:
            entries: label entries (`parse_label` says which forms).
            now: the receipt time stored as `ts` (default: `time.time()`).

        Returns:
            The receipt.
        """
        receipt = LabelReceipt()
        labels: dict[tuple[str, int], int] = {}
        for index, entry in enumerate(entries):
            receipt.received += 1
            try:
                parsed = parse_label(entry)
            except ValueError as exc:
                receipt.invalid.append(InvalidLabel(index, str(exc)))
                continue
            key = (parsed.request_id, parsed.row)
            if key in labels:
                receipt.duplicates += 1
                del labels[key]  # re-inserted below: the key keeps the order of its last entry
            labels[key] = parsed.label
        ts = time.time() if now is None else float(now)
        items = list(labels.items())
        for start in range(0, len(items), self._chunk):
            receipt.add(self._store_chunk(dict(items[start : start + self._chunk]), ts))
        return receipt

    def _store_chunk(self, labels: dict[tuple[str, int], int], ts: float) -> LabelReceipt:
        receipt = LabelReceipt()
        ids = sorted({request_id for request_id, _ in labels})
        with self._engine.begin() as conn:
            served = self._served_rows(conn, ids)
            stored = self._stored_labels(conn, ids)
            writes = []
            for key, label in labels.items():
                if key[1] >= served.get(key[0], 0):
                    receipt.unknown.append(key)
                elif key not in stored:
                    receipt.stored += 1
                    writes.append(key)
                elif stored[key] != label:
                    receipt.updated += 1
                    writes.append(key)
                else:
                    receipt.unchanged += 1
            if writes:
                conn.execute(
                    self._upsert,
                    [
                        {"request_id": r, "row": i, "label": labels[(r, i)], "ts": ts}
                        for r, i in writes
                    ],
                )
        return receipt

    def _served_rows(self, conn: Any, ids: list[str]) -> dict[str, int]:
        """Rows the log holds per request id: its `predictions` rows, or its largest batch."""
        import sqlalchemy as sa

        rows, batches = self._rows, self._batches
        served: dict[str, int] = {}
        for part in _chunks(ids, _LOOKUP_CHUNK):
            counted = sa.select(rows.c.request_id, sa.func.count()).where(
                rows.c.request_id.in_(part)
            )
            for request_id, n in conn.execute(counted.group_by(rows.c.request_id)):
                served[request_id] = int(n)
            largest = sa.select(batches.c.request_id, sa.func.max(batches.c.n_rows)).where(
                batches.c.request_id.in_(part)
            )
            for request_id, n in conn.execute(largest.group_by(batches.c.request_id)):
                served[request_id] = max(served.get(request_id, 0), int(n))
        return served

    def _stored_labels(self, conn: Any, ids: list[str]) -> dict[tuple[str, int], int]:
        import sqlalchemy as sa

        table = self._labels
        stored: dict[tuple[str, int], int] = {}
        for part in _chunks(ids, _LOOKUP_CHUNK):
            query = sa.select(table.c.request_id, table.c.row, table.c.label).where(
                table.c.request_id.in_(part)
            )
            for request_id, row, label in conn.execute(query):
                stored[(request_id, int(row))] = int(label)
        return stored

    def close(self) -> None:
        """Release connections."""
        self._engine.dispose()


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _require_sqlite_file(url: str) -> None:
    """A SQLite log must exist: labels are for rows served into it (never a new empty file)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if database and database != ":memory:" and not Path(database).is_file():
        raise LabelError(f"no prediction log at {database}: serve some traffic first")


def _begin_immediate(engine: Any) -> None:
    """SQLite transactions take the write lock at BEGIN (waiting up to the busy timeout), so
    the lookups and the upsert see one state and never fail to upgrade a read lock."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def store_labels(url: str, entries: Iterable[Any], now: float | None = None) -> LabelReceipt:
    """Store label entries in the log at `url` (one `LabelStore`, opened and closed).

    Args:
        url: the prediction log's URL.
        entries: label entries (`parse_label` says which forms).
        now: the receipt time stored as `ts` (default: now).

    Returns:
        The receipt.

    Raises:
        LabelError: the log cannot be opened.
    """
    store = LabelStore(url)
    try:
        return store.store(entries, now)
    finally:
        store.close()


def read_csv(path: Path) -> list[dict]:
    """The label entries of a CSV file with a header `request_id,row,label` (`row` optional;
    more columns are ignored), as text for `parse_label`.

    Raises:
        LabelError: the file cannot be read or lacks `request_id` or `label`.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            names = {raw: raw.strip() for raw in reader.fieldnames or []}
            missing = [name for name in ("request_id", "label") if name not in names.values()]
            if missing:
                raise LabelError(
                    f"{path}: the header needs column(s) {', '.join(missing)} "
                    f"(request_id,row,label; row optional), "
                    f"found {', '.join(names.values()) or 'none'}"
                )
            keep = {raw: name for raw, name in names.items() if name in _CSV_COLUMNS}
            return [{name: record[raw] for raw, name in keep.items()} for record in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LabelError(f"cannot read labels from {path}: {exc}") from exc


def load_csv(url: str, path: Path, now: float | None = None) -> LabelReceipt:
    """Store the labels of a CSV file (`read_csv`) in the log at `url` (`mlcycle label`).

    Raises:
        LabelError: unreadable file, missing column, or the log cannot be opened.
    """
    return store_labels(url, read_csv(Path(path)), now)
