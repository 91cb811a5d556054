"""Step 1, data: the training table, bundled synthetic or a user's CSV, and its column roles.

In: a CSV path and the name of its binary target column (the bundled synthetic table comes from
`mlcycle.core.synthetic`). Out: a pandas DataFrame of raw input columns plus the target as 0/1
integers, and the split of its input columns into numeric and categorical ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


class DataError(ValueError):
    """A user-supplied table cannot be used for training (the message says why)."""


@dataclass(frozen=True)
class Columns:
    """The roles of a table's columns.

    Attributes:
        numeric: numeric input columns (including booleans), in table order.
        categorical: categorical input columns (any non-numeric dtype), in table order.
        target: the binary target column.
    """

    numeric: list[str]
    categorical: list[str]
    target: str


def column_roles(df: pd.DataFrame, target: str) -> Columns:
    """Split a table's input columns into numeric and categorical ones.

    Booleans and numbers are numeric; every other dtype (strings, objects, categories, dates)
    is categorical.

    Args:
        df: the table, target included.
        target: name of the target column.

    Returns:
        The column roles.
    """
    numeric, categorical = [], []
    for name in df.columns:
        if name == target:
            continue
        dtype = df[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numeric.append(str(name))
        else:
            categorical.append(str(name))
    return Columns(numeric=numeric, categorical=categorical, target=target)


def binarize_target(values: pd.Series) -> tuple[pd.Series, object]:
    """Map a two-valued target to 0/1.

    The larger of the two values (in sorted order: 1 over 0, True over False, "yes" over "no")
    becomes the positive class 1.

    Args:
        values: the target column.

    Returns:
        The 0/1 int64 series and the original value mapped to 1.

    Raises:
        DataError: if the column has missing values or not exactly two distinct values.
    """
    name = values.name
    if values.isna().any():
        raise DataError(f"target column {name!r} has {int(values.isna().sum())} missing values")
    distinct = sorted(values.unique().tolist(), key=lambda v: (str(type(v)), v))
    if len(distinct) != 2:
        shown = ", ".join(repr(v) for v in distinct[:5])
        raise DataError(
            f"target column {name!r} must have exactly two distinct values, "
            f"found {len(distinct)}: {shown}{' ...' if len(distinct) > 5 else ''}"
        )
    positive = distinct[1]
    return (values == positive).astype(np.int64), positive


def load_table(path: str | Path, target: str) -> pd.DataFrame:
    """Read a user's CSV for training.

    Args:
        path: the CSV file.
        target: name of its binary target column.

    Returns:
        The table with the target mapped to 0/1 int64; `df.attrs["positive_label"]` holds the
        original value mapped to 1.

    Raises:
        DataError: if the file is missing or unreadable, the target column is absent or not
            binary, or no input column is left.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        df = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read {path} as CSV: {exc}") from exc
    if target not in df.columns:
        shown = ", ".join(map(str, list(df.columns)[:20]))
        raise DataError(f"target column {target!r} not in {path.name}; columns are: {shown}")
    if df.shape[1] < 2:
        raise DataError(f"{path.name} has no input column besides the target {target!r}")
    if len(df) < 20:
        raise DataError(f"{path.name} has only {len(df)} rows; at least 20 are needed")
    df[target], positive = binarize_target(df[target])
    df.columns = [str(c) for c in df.columns]
    # Booleans train as 0/1 numbers (the model's signature knows double and long, not bool).
    flags = [c for c in df.columns if pd.api.types.is_bool_dtype(df[c].dtype)]
    df[flags] = df[flags].astype(np.int64)
    df.attrs["positive_label"] = positive
    return df
