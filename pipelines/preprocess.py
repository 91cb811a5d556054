"""Step 2, preprocess: split the table and fit the preprocessing spec.

In: the full table (raw input columns + 0/1 target) and its column roles. Out: stratified
train/validation/test splits, and the preprocessing spec (the dict saved as preprocess.json in the
model, see docs/architecture.md): median imputation and standard scaling for numeric columns,
one-hot encoding over the training categories for categorical ones. The same model code that
serves the model (`pipelines.model_code`) turns raw columns into features, so training and
serving cannot disagree.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.data import Columns
from pipelines.model_code import TabularNetModel

log = logging.getLogger(__name__)

MAX_CATEGORIES = 100


@dataclass(frozen=True)
class Splits:
    """Train, validation and test parts of one table (same columns)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split(
    df: pd.DataFrame, target: str, seed: int, val_size: float = 0.15, test_size: float = 0.15
) -> Splits:
    """Split stratified on the target.

    Args:
        df: the table.
        target: 0/1 target column.
        seed: random seed of the split.
        val_size: share of rows for validation.
        test_size: share of rows for the final test.

    Returns:
        The three parts, each with a fresh 0..n-1 index.
    """
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(df, test_size=test_size, stratify=df[target], random_state=seed)
    train, val = train_test_split(
        rest, test_size=val_size / (1 - test_size), stratify=rest[target], random_state=seed
    )
    return Splits(*(part.reset_index(drop=True) for part in (train, val, test)))


def _numeric_entry(name: str, values: pd.Series) -> dict:
    x = values.astype(np.float64)
    integral = pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(
        values.dtype
    )
    median = float(x.median()) if x.notna().any() else 0.0
    std = float(x.std(ddof=0)) if x.notna().sum() > 1 else 1.0
    return {
        "name": name,
        "dtype": "long" if integral else "double",
        "mean": float(x.mean()) if x.notna().any() else 0.0,
        "std": std if std > 0 and np.isfinite(std) else 1.0,
        "median": median,
        "min": float(x.min()) if x.notna().any() else 0.0,
        "max": float(x.max()) if x.notna().any() else 0.0,
        "allow_missing": True,
    }


def fit_spec(train: pd.DataFrame, columns: Columns, positive_label: object = 1) -> dict:
    """Fit the preprocessing spec on the training split.

    Categorical columns with more than `MAX_CATEGORIES` distinct values (identifiers, free
    text) are left out with a warning: one-hot encoding them would not generalise.

    Args:
        train: the training split.
        columns: column roles.
        positive_label: the original target value that maps to 1 (recorded in the spec).

    Returns:
        The spec dict (JSON-serialisable).
    """
    numeric = [_numeric_entry(name, train[name]) for name in columns.numeric]
    categorical = []
    for name in columns.categorical:
        categories = sorted(str(v) for v in train[name].dropna().unique())
        if len(categories) > MAX_CATEGORIES:
            log.warning("dropping column %r: %d distinct values", name, len(categories))
            continue
        categorical.append({"name": name, "categories": categories, "allow_missing": True})
    order = [c["name"] for c in numeric]
    order += [f"{c['name']}={cat}" for c in categorical for cat in c["categories"]]
    if not order:
        raise ValueError("no usable input column left after preprocessing")
    return {
        "target": columns.target,
        "positive_label": _jsonable(positive_label),
        "numeric": numeric,
        "categorical": categorical,
        "feature_order": order,
    }


def _jsonable(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def input_columns(spec: dict) -> list[str]:
    """The raw input columns a spec uses, numeric first."""
    return [c["name"] for c in spec["numeric"]] + [c["name"] for c in spec["categorical"]]


def transform(spec: dict, df: pd.DataFrame) -> np.ndarray:
    """Turn raw rows into the network's float64 feature matrix.

    Args:
        spec: a spec from `fit_spec`.
        df: raw rows (categorical values are compared as text).

    Returns:
        Array of shape (rows, len(spec["feature_order"])).
    """
    model = TabularNetModel().setup(spec, layers=[])
    columns = {c["name"]: df[c["name"]].to_numpy(dtype=np.float64) for c in spec["numeric"]}
    for c in spec["categorical"]:
        values = df[c["name"]]
        columns[c["name"]] = values.where(values.isna(), values.astype(str)).to_numpy(object)
    return model.features(columns, n_rows=len(df))
