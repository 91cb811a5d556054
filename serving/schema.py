"""Input schema of a served model and the microsecond validator built from it.

In: the model's preprocessing `spec` (Contract 1) or, for generic pyfunc models, its MLflow
column signature; request columns as `{name: list}` (already parsed from any protocol).
Out: `{name: numpy array}` ready for `predict_columns` (float64 for numbers, NaN = missing;
object arrays of str for categories), or a `RequestError` naming the offending field.
Requests are checked with plain Python loops on small batches, numpy on large ones, and, from
`COLUMNAR_ROWS` rows, categories are factorised once (pandas, in C) into a `pandas.Categorical`
so only the few distinct values are checked and the model maps codes, not strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from serving.errors import RequestError

LOOP_ROWS = 64  # below this many rows a Python loop beats numpy's type inference
COLUMNAR_ROWS = 512  # from this many rows categories are factorised (one C pass over the values)
_NUMBER_TYPES = frozenset((int, float, type(None)))
_NUMERIC_TYPES = {"double", "float", "long", "integer", "int", "number"}


@dataclass(frozen=True)
class Column:
    """One input column: numeric or categorical, whether it may be missing, its categories."""

    name: str
    numeric: bool
    allow_missing: bool = True
    categories: frozenset | None = None
    dtype: str = "double"


class Schema:
    """The ordered input columns of a model and the validator over them."""

    def __init__(self, columns: list[Column]) -> None:
        self.columns = columns
        self.names = tuple(c.name for c in columns)
        self.name_set = frozenset(self.names)
        self.by_name = {c.name: c for c in columns}

    @classmethod
    def from_spec(cls, spec: dict) -> Schema:
        """Build from the preprocessing spec of Contract 1 (numeric + categorical lists)."""
        cols = [
            Column(
                n["name"],
                True,
                bool(n.get("allow_missing", True)),
                None,
                str(n.get("dtype", "double")),
            )
            for n in spec.get("numeric", [])
        ]
        cols += [
            Column(
                c["name"],
                False,
                bool(c.get("allow_missing", True)),
                frozenset(str(v) for v in c.get("categories", [])),
                "string",
            )
            for c in spec.get("categorical", [])
        ]
        return cls(cols)

    @classmethod
    def from_signature(cls, signature) -> Schema | None:
        """Build from an MLflow column signature; None for tensor or missing signatures."""
        inputs = getattr(signature, "inputs", None)
        if inputs is None or not getattr(inputs, "has_input_names", lambda: False)():
            return None
        cols = []
        for spec in inputs.inputs:
            mlflow_type = str(getattr(spec.type, "name", spec.type)).lower()
            numeric = mlflow_type in _NUMERIC_TYPES
            cols.append(
                Column(spec.name, numeric, not getattr(spec, "required", True), None, mlflow_type)
            )
        return cls(cols)

    def check_names(self, names) -> None:
        """Raise a `RequestError` naming the first missing or unexpected column."""
        missing = [n for n in self.names if n not in names]
        if missing:
            raise RequestError(f"missing column '{missing[0]}'", field=missing[0])
        extra = sorted(str(n) for n in names if n not in self.name_set)
        if extra:
            raise RequestError(f"unexpected column '{extra[0]}'", field=extra[0])

    def validate(self, columns: dict[str, list], n_rows: int) -> dict[str, np.ndarray]:
        """Check parsed columns against the schema and convert them to arrays.

        Args:
            columns: exactly the schema's column names, each a list of `n_rows` values.
            n_rows: number of rows (> 0).

        Returns:
            `{name: array}`: float64 (NaN = missing) for numeric, object arrays for categorical.

        Raises:
            RequestError: naming the column on a wrong type, a non-finite number or a missing
                value where none is allowed. (Categories training never saw pass: the range
                guard refuses them, `serving.guard`.)
        """
        if n_rows == 0:
            raise RequestError("empty batch: send at least one row")
        if columns.keys() != self.name_set:
            self.check_names(columns.keys())
        out = {}
        for col in self.columns:
            values = columns[col.name]
            if len(values) != n_rows:
                raise RequestError(
                    f"column '{col.name}' has {len(values)} values, expected {n_rows}",
                    field=col.name,
                )
            out[col.name] = _numeric(col, values) if col.numeric else _categorical(col, values)
        return out


def _numeric(col: Column, values: list) -> np.ndarray:
    if len(values) <= LOOP_ROWS:
        missing = False
        for v in values:
            t = type(v)
            if t is float:
                if v != v:
                    missing = True
                elif v in (math.inf, -math.inf):
                    _bad_number(col, v)
            elif t is int:
                continue
            elif v is None:
                missing = True
            else:
                _bad_number(col, v)
        if missing and not col.allow_missing:
            raise RequestError(f"column '{col.name}' may not be missing", field=col.name)
        return np.array(values, dtype=np.float64)
    return _numeric_large(col, values)


def _numeric_large(col: Column, values) -> np.ndarray:
    """Many values (a list, or an object/numeric array from a columnar parser) to float64."""
    python_values = not isinstance(values, np.ndarray) or values.dtype.kind == "O"
    if python_values and not set(map(type, values)) <= _NUMBER_TYPES:  # JSON true, "1"
        _bad_number(col, next(v for v in values if type(v) not in _NUMBER_TYPES))
    try:
        arr = values if isinstance(values, np.ndarray) else np.array(values)
    except (ValueError, TypeError):
        raise RequestError(f"column '{col.name}' must hold numbers", field=col.name) from None
    dtype_kind = arr.dtype.kind
    if dtype_kind == "O" and arr.ndim == 1:
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError, OverflowError):
            raise RequestError(f"column '{col.name}' must hold numbers", field=col.name) from None
    elif dtype_kind not in "fiu" or arr.ndim != 1:
        raise RequestError(f"column '{col.name}' must hold numbers", field=col.name)
    else:
        arr = arr.astype(np.float64, copy=False)
    if np.isinf(arr).any():
        _bad_number(col, math.inf)
    if not col.allow_missing and np.isnan(arr).any():
        raise RequestError(f"column '{col.name}' may not be missing", field=col.name)
    return arr


def _bad_number(col: Column, value) -> None:
    shown = repr(value)[:40]
    raise RequestError(f"column '{col.name}' must be a finite number, got {shown}", field=col.name)


def _categorical(col: Column, values):
    if len(values) >= COLUMNAR_ROWS or (type(values) is not list and _is_categorical(values)):
        return _categorical_large(col, values)
    try:
        seen = set(values)
    except TypeError:
        raise RequestError(f"column '{col.name}' must hold strings", field=col.name) from None
    _check_categories(col, seen)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _categorical_large(col: Column, values):
    """Factorise once, check only the distinct values; a `pandas.Categorical` comes back."""
    import pandas as pd

    if _is_categorical(values):
        codes, uniques = np.asarray(values.codes), list(values.categories)
    else:
        arr = values
        if not (isinstance(values, np.ndarray) and values.dtype.kind == "O" and values.ndim == 1):
            arr = np.empty(len(values), dtype=object)
            try:
                arr[:] = values
            except ValueError:
                _not_strings(col)
        try:
            codes, uniques = pd.factorize(arr)
        except TypeError:
            _not_strings(col)
        uniques = list(uniques)
    _check_categories(col, uniques + ([None] if (codes < 0).any() else []))
    return pd.Categorical.from_codes(codes, categories=uniques, validate=False)


def _not_strings(col: Column) -> None:
    raise RequestError(f"column '{col.name}' must hold strings", field=col.name) from None


def _is_categorical(values) -> bool:
    return hasattr(values, "codes") and hasattr(values, "categories")


def _check_categories(col: Column, seen) -> None:
    """Each distinct value must be a string (or missing, where that is allowed).

    Whether training saw the category is the range guard's question (`serving.guard`): it
    counts such rows and answers 422 with the training categories.
    """
    for v in seen:
        if type(v) is str:
            continue
        if v is None or (type(v) is float and v != v):
            if not col.allow_missing:
                raise RequestError(f"column '{col.name}' may not be missing", field=col.name)
        else:
            raise RequestError(
                f"column '{col.name}' must be a string, got {repr(v)[:40]}", field=col.name
            )
