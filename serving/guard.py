"""The out-of-range guard: every scored row compared with the served version's training reference.

In: the model's preprocessing spec (Contract 1: `min`/`max` of each numeric column, the
training `categories` of each categorical one) and a margin; at request time the validated
arrays of `Schema.validate` (float64, object arrays of str/None, or `pandas.Categorical`).
Out: `RangeGuard.check(arrays, n)` -> None when every row is inside the reference, else an
`OutOfRange` (flagged rows, their columns, rows per column for the metric), and
`RangeGuard.refusal` -> the 422 naming the column with its training range or categories.

A numeric value is out of range outside `[min - m*(max-min), max + m*(max-min)]`; a category is
out of range when training never saw it. Missing values (NaN, None) never are. A numeric column
without a finite `min`/`max` in the spec (a generic pyfunc model with only a signature has no
spec at all) is not checked. Up to `SMALL_ROWS` rows are checked with plain Python (a few
microseconds for one row); larger batches with numpy, only the distinct values of a
`pandas.Categorical`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from serving.errors import RequestError

MARGIN = 0.25  # share of the training span allowed beyond each end
SMALL_ROWS = 64  # up to this many rows Python loops beat numpy's per-call cost
_SHOWN_CATEGORIES = 20  # categories quoted in a refusal message (the detail lists them all)


@dataclass(frozen=True)
class NumericRange:
    """A numeric column's training range and the wider range it is allowed."""

    name: str
    low: float
    high: float
    allowed_low: float
    allowed_high: float


@dataclass(frozen=True)
class OutOfRange:
    """The rows of one request outside the training reference.

    Attributes:
        rows: flagged row indices, ascending.
        columns: per flagged row, its out-of-range columns (schema order).
        counts: flagged rows per column (schema order), for the metric and the header.
        unseen: the first column holding a category training never saw, and its first row;
            such rows cannot be scored (the model has no one-hot slot for them).
    """

    rows: list[int]
    columns: list[tuple[str, ...]]
    counts: dict[str, int]
    unseen: tuple[str, int] | None

    def listing(self) -> list[dict]:
        """`[{"row": i, "columns": [...]}]` for each flagged row."""
        return [{"row": r, "columns": c} for r, c in zip(self.rows, self.columns, strict=True)]

    def by_row(self, n: int) -> list[tuple[str, ...]]:
        """The out-of-range columns of each of `n` rows (empty for rows inside the reference)."""
        out: list[tuple[str, ...]] = [()] * n
        for r, c in zip(self.rows, self.columns, strict=True):
            out[r] = c
        return out


class RangeGuard:
    """Per-column training reference of one model version, checked against request rows."""

    def __init__(self, numeric: list[NumericRange], categories: dict[str, frozenset]) -> None:
        self.numeric = {r.name: r for r in numeric}
        self.categories = categories
        self._bounds = [(r.name, r.allowed_low, r.allowed_high) for r in numeric]

    @classmethod
    def from_spec(cls, spec: dict | None, margin: float = MARGIN) -> RangeGuard:
        """Build from a preprocessing spec; None (a model with only a signature) checks nothing.

        Args:
            spec: the model's spec (`numeric` entries with `min`/`max`, `categorical` entries
                with `categories`).
            margin: share of each column's training span (`max - min`) allowed beyond it.
        """
        numeric, categories = [], {}
        for entry in (spec or {}).get("numeric", []):
            low, high = _finite(entry.get("min")), _finite(entry.get("max"))
            if low is None or high is None or high < low:
                continue
            pad = margin * (high - low)
            numeric.append(NumericRange(str(entry["name"]), low, high, low - pad, high + pad))
        for entry in (spec or {}).get("categorical", []):
            if "categories" in entry:
                categories[str(entry["name"])] = frozenset(str(c) for c in entry["categories"])
        return cls(numeric, categories)

    def check(self, arrays: dict, n: int) -> OutOfRange | None:
        """The rows of validated arrays outside the reference; None when there are none.

        Args:
            arrays: `{column: array}` from `Schema.validate` (every guarded column present).
            n: number of rows.
        """
        if n > SMALL_ROWS:
            return self._check_large(arrays, n)
        hits: dict[str, list[int]] = {}
        for name, low, high in self._bounds:  # inlined: this loop is the one-row hot path
            for v in arrays[name].tolist():
                if v < low or v > high:  # False for NaN: a missing value is not out of range
                    hits[name] = _outside(arrays[name].tolist(), low, high)
                    break
        for name, allowed in self.categories.items():
            for v in arrays[name].tolist():
                if v not in allowed and type(v) is str:  # None, NaN (missing) are not str
                    hits[name] = _unseen(arrays[name].tolist(), allowed)
                    break
        return self._flags(hits, n) if hits else None

    def _check_large(self, arrays: dict, n: int) -> OutOfRange | None:
        """`check` with numpy, and only the distinct values of a `pandas.Categorical`."""
        hits: dict[str, np.ndarray | list[int]] = {}
        for name, low, high in self._bounds:
            values = arrays[name]
            bad = (values < low) | (values > high)
            if bad.any():
                hits[name] = np.flatnonzero(bad)
        for name, allowed in self.categories.items():
            values = arrays[name]
            if hasattr(values, "codes") and hasattr(values, "categories"):
                unseen = [i for i, c in enumerate(values.categories) if c not in allowed]
                rows = np.flatnonzero(np.isin(values.codes, unseen)) if unseen else ()
            else:
                rows = _unseen(values.tolist(), allowed)
            if len(rows):  # a Categorical may list a category no row uses
                hits[name] = rows
        return self._flags(hits, n) if hits else None

    def _flags(self, hits: dict, n: int) -> OutOfRange:
        counts = {name: len(rows) for name, rows in hits.items()}
        unseen = next(((c, int(r[0])) for c, r in hits.items() if c in self.categories), None)
        if len(hits) == 1:
            ((name, found),) = hits.items()
            rows = found.tolist() if isinstance(found, np.ndarray) else found
            return OutOfRange(rows, [(name,)] * len(rows), counts, unseen)
        rows, columns = _per_row(hits, n)
        return OutOfRange(rows, columns, counts, unseen)

    def refusal(self, flags: OutOfRange, arrays: dict) -> RequestError:
        """The 422 for a request with out-of-range rows: the first unseen category if any,
        else the first flagged row's first column, with its training range or categories."""
        column, row = flags.unseen or (flags.columns[0][0], flags.rows[0])
        value = arrays[column][row]
        if column in self.categories:
            known = sorted(self.categories[column])
            shown = ", ".join(known[:_SHOWN_CATEGORIES])
            shown += ", ..." if len(known) > _SHOWN_CATEGORIES else ""
            return RequestError(
                f"column '{column}': category {str(value)[:40]!r} in row {row} was never seen "
                f"in training, so the model cannot score it; expected one of: {shown}",
                422,
                column,
                detail={"column": column, "row": row, "value": value, "categories": known},
            )
        r = self.numeric[column]
        value = float(value)
        return RequestError(
            f"column '{column}': {value:g} in row {row} is outside the training range "
            f"[{r.low:g}, {r.high:g}] (allowed: [{r.allowed_low:g}, {r.allowed_high:g}])",
            422,
            column,
            detail={
                "column": column,
                "row": row,
                "value": value,
                "range": [r.low, r.high],
                "allowed": [r.allowed_low, r.allowed_high],
            },
        )


def _finite(value) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _outside(values: list[float], low: float, high: float) -> list[int]:
    """Indices of values outside `[low, high]` (NaN, missing, compares False)."""
    return [i for i, v in enumerate(values) if v < low or v > high]


def _unseen(values: list, allowed: frozenset) -> list[int]:
    """Indices of strings outside `allowed` (None and NaN are missing, not unseen)."""
    return [i for i, v in enumerate(values) if v not in allowed and type(v) is str]


def _per_row(hits: dict, n: int) -> tuple[list[int], list[tuple[str, ...]]]:
    """Flagged rows and each one's columns, from the flagged rows of each column."""
    names = list(hits)
    if n <= SMALL_ROWS:
        per: dict[int, list[str]] = {}
        for name in names:
            for i in hits[name]:
                per.setdefault(int(i), []).append(name)
        rows = sorted(per)
        return rows, [tuple(per[i]) for i in rows]
    mask = np.zeros((n, len(names)), dtype=bool)
    for j, name in enumerate(names):
        mask[hits[name], j] = True
    rows = np.flatnonzero(mask.any(axis=1))
    if len(names) > 63:  # no bit pattern in an int64: name each row's columns one by one
        return rows.tolist(), [tuple(names[j] for j in np.flatnonzero(m)) for m in mask[rows]]
    # Rows share few combinations of columns: one bit per column, each combination named once.
    codes = mask[rows] @ (np.int64(1) << np.arange(len(names), dtype=np.int64))
    patterns, inverse = np.unique(codes, return_inverse=True)
    combos = [tuple(c for j, c in enumerate(names) if p >> j & 1) for p in patterns.tolist()]
    return rows.tolist(), [combos[k] for k in inverse.tolist()]
