"""The registered model: preprocessing + a dense network as a numpy forward pass.

This file is logged with the model ("models from code") and runs wherever the model is loaded,
so it imports only numpy, pandas and mlflow: never `pipelines` or TensorFlow.

In: artifacts `preprocess` (preprocess.json, the fitted preprocessing spec) and `weights`
(weights.npz with `W0, b0, W1, b1, ...`; a compressed variant, `mlcycle compress`, stores each
`W<i>` instead as int8 `Wq<i>` with per-output-channel float32 scales `Ws<i>`, as float16, or
sparse as CSR parts `Wd<i>, Wj<i>, Wp<i>, Wshape<i>`: see `encode_layers`); at predict time a
DataFrame of raw named columns, or (fast path) a dict of numpy arrays. Out: a 1-D float64
array, the probability of the positive class per row. Bad input raises `InputError` naming
the column.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import numpy as np
import pandas as pd


class InputError(ValueError):
    """The input cannot be scored: a missing column, a non-numeric value, an unknown category.

    Attributes:
        column: the offending column, or None when the input as a whole is unusable.
    """

    def __init__(self, column: str | None, message: str):
        self.column = column
        super().__init__(f"column {column!r}: {message}" if column is not None else message)


def _is_missing(value: Any) -> bool:
    """True for None, NaN and pandas' NA/NaT."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


class TabularNetModel(mlflow.pyfunc.PythonModel):
    """Impute, scale and one-hot the raw columns, then run the dense network.

    Everything that does not depend on the input (index arrays, category lookups, float64
    weights) is prepared once in `load_context`/`setup`, so one row costs a few microseconds.
    """

    spec: dict

    def load_context(self, context: Any) -> None:
        """Read `preprocess.json` and `weights.npz` from the model's artifacts."""
        with open(context.artifacts["preprocess"], encoding="utf-8") as f:
            spec = json.load(f)
        with np.load(context.artifacts["weights"]) as npz:
            layers, compressed = decode_layers({k: npz[k] for k in npz.files})
        # A compressed variant computes in float32: its weights carry less precision than
        # that anyway, and float32 matmuls are what make it faster per row than its parent.
        self.setup(spec, layers, np.float32 if compressed else np.float64)

    def setup(
        self,
        spec: dict,
        layers: list[tuple[np.ndarray, np.ndarray]],
        dtype: type = np.float64,
    ) -> TabularNetModel:
        """Prepare the forward pass from a spec and the network's (weights, bias) pairs.

        Args:
            spec: the preprocessing spec (the content of preprocess.json).
            layers: (W, b) per dense layer; ReLU between layers, sigmoid on the last one.
            dtype: the forward pass's float type (float32 for compressed variants).

        Returns:
            self, ready to predict.
        """
        self.spec = spec
        self._dtype = np.dtype(dtype)
        position = {name: i for i, name in enumerate(spec["feature_order"])}
        self._n_features = len(position)
        numeric = spec["numeric"]
        self._num_names = [c["name"] for c in numeric]
        self._num_pos = np.array([position[n] for n in self._num_names], dtype=np.intp)
        self._num_median = np.array([c["median"] for c in numeric], dtype=np.float64)
        self._num_mean = np.array([c["mean"] for c in numeric], dtype=np.float64)
        std = np.array([c["std"] for c in numeric], dtype=np.float64)
        self._num_std = np.where(std > 0, std, 1.0)
        self._num_allow_missing = [bool(c.get("allow_missing", True)) for c in numeric]
        self._categorical = [
            (
                c["name"],
                {str(cat): position[f"{c['name']}={cat}"] for cat in c["categories"]},
                bool(c.get("allow_missing", True)),
            )
            for c in spec["categorical"]
        ]
        names = self.input_columns
        self._first_column = names[0] if names else None
        self._layers = [
            (np.asarray(w, dtype=self._dtype), np.asarray(b, dtype=self._dtype).ravel())
            for w, b in layers
        ]
        if self._layers:
            self._fold_first_layer()
        return self

    def _fold_first_layer(self) -> None:
        """Fold scaling and one-hot encoding into the first layer for `predict_columns`.

        (x - mean) / std @ W equals x @ (W / std) - (mean / std) @ W, and a one-hot block
        times W picks one row of W, so scoring needs no feature matrix: one small matmul for
        the numeric columns and one row lookup per categorical column.
        """
        w0, b0 = (a.astype(np.float64) for a in self._layers[0])
        rows = w0[self._num_pos]
        self._w_num = (rows / self._num_std[:, None]).astype(self._dtype)
        self._b_first = (b0 - (self._num_mean / self._num_std) @ rows).astype(self._dtype)
        self._cat_tables = []
        for name, lookup, allow_missing in self._categorical:
            cats = list(lookup)
            # Row 0 (zeros) stands for a missing value: one-hot all zeros.
            table = np.vstack([np.zeros((1, w0.shape[1])), w0[[lookup[c] for c in cats]]])
            table = table.astype(self._dtype)
            index = {cat: i + 1 for i, cat in enumerate(cats)}
            self._cat_tables.append((name, index, table, allow_missing))

    @property
    def layers(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The network's (W, b) pairs as float64, input layer first."""
        return [(w.astype(np.float64), b.astype(np.float64)) for w, b in self._layers]

    @property
    def input_columns(self) -> list[str]:
        """The raw input columns the model needs, numeric first."""
        return self._num_names + [name for name, _, _ in self._categorical]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> np.ndarray:
        """Score a DataFrame (or a dict / list of records) of raw named columns.

        Args:
            context: MLflow's context (unused; artifacts were read in `load_context`).
            model_input: raw input rows; extra columns are ignored.
            params: unused.

        Returns:
            The probability of the positive class per row (1-D float64).

        Raises:
            InputError: for a missing column, a non-numeric value or an unknown category.
        """
        df = model_input
        if not isinstance(df, pd.DataFrame):
            try:
                df = pd.DataFrame(df)
            except (TypeError, ValueError) as exc:
                raise InputError(None, f"input is not a table of named columns: {exc}") from exc
        columns: dict[str, np.ndarray] = {}
        for name in self._num_names:
            columns[name] = _numeric_column(df, name)
        for name, _, _ in self._categorical:
            if name not in df.columns:
                raise InputError(name, "missing column")
            columns[name] = df[name].to_numpy(dtype=object)
        return self.predict_columns(columns, n_rows=len(df))

    def predict_columns(
        self, columns: dict[str, np.ndarray], n_rows: int | None = None
    ) -> np.ndarray:
        """Fast path: score columns given as numpy arrays (no pandas, no schema enforcement).

        Args:
            columns: numeric columns as float64 arrays (NaN = missing), categorical columns as
                object arrays of str or `pandas.Categorical` (None/NaN = missing). Extra keys
                are ignored.
            n_rows: row count, needed only when the model has no input column at all.

        Returns:
            The probability of the positive class per row (1-D float64).

        Raises:
            InputError: for a missing column, a non-numeric value or an unknown category.
        """
        n = self._row_count(columns, n_rows)
        if self._num_names:
            h = self._numeric_raw(columns, n).astype(self._dtype, copy=False) @ self._w_num
            h += self._b_first
        else:
            h = np.tile(self._b_first, (n, 1))
        for name, index, table, allow_missing in self._cat_tables:
            h += table[_category_codes(name, _get(columns, name), index, allow_missing, 0)]
        return self._forward_from(h)

    def features(self, columns: dict[str, np.ndarray], n_rows: int | None = None) -> np.ndarray:
        """The network's input matrix (imputed, scaled, one-hot), in `spec["feature_order"]`.

        Args:
            columns: as for `predict_columns`.
            n_rows: as for `predict_columns`.

        Returns:
            A float64 array of shape (rows, features).

        Raises:
            InputError: for a missing column, a non-numeric value or an unknown category.
        """
        x = np.zeros((self._row_count(columns, n_rows), self._n_features), dtype=np.float64)
        if self._num_names:
            x[:, self._num_pos] = self._numeric_block(columns, x.shape[0])
        for name, lookup, allow_missing in self._categorical:
            values = _get(columns, name)
            codes = _category_codes(name, values, lookup, allow_missing)
            hit = codes >= 0
            x[np.nonzero(hit)[0], codes[hit]] = 1.0
        return x

    def _row_count(self, columns: dict[str, np.ndarray], n_rows: int | None) -> int:
        if self._first_column is not None:
            first = _get(columns, self._first_column)
            return len(first) if isinstance(first, pd.Categorical) else np.size(first)
        return int(n_rows or 0)

    def _numeric_raw(self, columns: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Numeric columns as an (n, k) float64 block, missing values imputed, not scaled."""
        try:
            block = np.array([columns[name] for name in self._num_names], dtype=np.float64)
            block = block.reshape(len(self._num_names), n).T
        except (KeyError, TypeError, ValueError):
            block = np.empty((n, len(self._num_names)), dtype=np.float64)
            for j, name in enumerate(self._num_names):
                try:
                    block[:, j] = np.asarray(_get(columns, name), dtype=np.float64)
                except (TypeError, ValueError) as exc:
                    raise InputError(name, f"expected numbers: {exc}") from exc
        missing = np.isnan(block)
        if missing.any():
            for j in np.nonzero(missing.any(axis=0))[0]:
                if not self._num_allow_missing[j]:
                    raise InputError(self._num_names[j], "missing value")
            block = np.where(missing, self._num_median, block)
        return block

    def _numeric_block(self, columns: dict[str, np.ndarray], n: int) -> np.ndarray:
        return (self._numeric_raw(columns, n) - self._num_mean) / self._num_std

    def _forward_from(self, h: np.ndarray) -> np.ndarray:
        """Finish the forward pass from the first layer's pre-activation."""
        for w, b in self._layers[1:]:
            h = np.maximum(h, 0.0) @ w + b
        z = h.reshape(-1).astype(np.float64, copy=False).clip(-500.0, 500.0)
        return 1.0 / (1.0 + np.exp(-z))


def encode_layers(layers: list, method: str = "float", sparsity: float = 0.0) -> dict:
    """The arrays of weights.npz for the network's (W, b) pairs, stored as `method` says.

    Args:
        layers: (W, b) per dense layer.
        method: `float` (as given), `int8` (symmetric per-output-channel quantisation: int8
            `Wq<i>` and float32 scales `Ws<i>`, |error| <= scale / 2 per weight), `float16`,
            or `prune` (the smallest-magnitude `sparsity` share of each W set to zero, the rest
            kept as float16 CSR parts `Wd<i>` data, `Wj<i>` column indices, `Wp<i>` row
            pointers, `Wshape<i>`).
        sparsity: with `prune`, the share of each weight matrix set to zero (0 <= s < 1).

    Returns:
        `{name: array}`; biases `b<i>` stay float32 (float64 with `float`).

    Raises:
        ValueError: for an unknown method or a sparsity outside [0, 1).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    arrays: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(layers):
        w = np.asarray(w, dtype=np.float64)
        arrays[f"b{i}"] = np.asarray(b, dtype=np.float64 if method == "float" else np.float32)
        if method == "float":
            arrays[f"W{i}"] = w
        elif method == "float16":
            arrays[f"W{i}"] = w.astype(np.float16)
        elif method == "int8":
            arrays[f"Wq{i}"], arrays[f"Ws{i}"] = quantize_int8(w)
        else:
            arrays |= {f"{k}{i}": v for k, v in to_csr(prune(w, sparsity)).items()}
    return arrays


METHODS = ("float", "int8", "float16", "prune")


def quantize_int8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantisation with one scale per output channel (column of W)."""
    scale = np.abs(w).max(axis=0) / 127.0
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def prune(w: np.ndarray, sparsity: float) -> np.ndarray:
    """W with its smallest-magnitude `sparsity` share of weights set to zero."""
    k = int(sparsity * w.size)
    if k == 0:
        return w.copy()
    cut = np.partition(np.abs(w).ravel(), k - 1)[k - 1]
    return np.where(np.abs(w) > cut, w, 0.0)


def to_csr(w: np.ndarray) -> dict[str, np.ndarray]:
    """A dense matrix as CSR parts (`d` float16 data, `j` column indices, `p` row pointers)."""
    rows, cols = np.nonzero(w)
    index = np.uint16 if w.shape[1] <= np.iinfo(np.uint16).max else np.int32
    pointers = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=w.shape[0]))])
    return {
        "Wd": w[rows, cols].astype(np.float16),
        "Wj": cols.astype(index),
        "Wp": pointers.astype(np.int32),
        "Wshape": np.array(w.shape, dtype=np.int64),
    }


def from_csr(data: np.ndarray, cols: np.ndarray, pointers: np.ndarray, shape) -> np.ndarray:
    """The dense float32 matrix of CSR parts (`to_csr`)."""
    w = np.zeros(tuple(int(n) for n in shape), dtype=np.float32)
    rows = np.repeat(np.arange(w.shape[0]), np.diff(pointers))
    w[rows, cols.astype(np.intp)] = data
    return w


def decode_layers(arrays: dict[str, np.ndarray]) -> tuple[list, bool]:
    """The (W, b) pairs stored by `encode_layers`, and whether they were compressed.

    int8 weights are dequantised once here (`Wq * Ws`): a float32 matmul on 2 cores beats
    integer matmuls in numpy, which has no int8 BLAS.
    """
    compressed = False
    layers = []
    for i in range(len([k for k in arrays if k.startswith("b")])):
        if f"Wq{i}" in arrays:
            w = arrays[f"Wq{i}"].astype(np.float32) * arrays[f"Ws{i}"]
        elif f"Wd{i}" in arrays:
            parts = (arrays[f"{k}{i}"] for k in ("Wd", "Wj", "Wp", "Wshape"))
            w = from_csr(*parts)
        else:
            w = arrays[f"W{i}"]
        compressed |= w.dtype != np.float64 or f"W{i}" not in arrays
        layers.append((w, arrays[f"b{i}"]))
    return layers, compressed


def _get(columns: dict[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return columns[name]
    except KeyError:
        raise InputError(name, "missing column") from None


def _numeric_column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A DataFrame column as float64, refusing values that are not numbers."""
    if name not in df.columns:
        raise InputError(name, "missing column")
    series = df[name]
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    if bad.any():
        raise InputError(name, f"non-numeric value {series[bad].iloc[0]!r}")
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _category_codes(
    name: str, values: Any, lookup: dict[str, int], allow_missing: bool, missing: int = -1
) -> np.ndarray:
    """`lookup[value]` per value (`missing` for None/NaN); unknown categories raise InputError.

    `values` is an array of str, or a `pandas.Categorical` (batch scoring reads dictionary-
    encoded columns): then only its few categories are looked up and the codes are mapped in
    one vectorised step.
    """
    if isinstance(values, pd.Categorical):
        table = _category_codes(
            name, np.asarray(values.categories, dtype=object), lookup, allow_missing, missing
        )
        codes = values.codes
        if (codes < 0).any() and not allow_missing:
            raise InputError(name, "missing value")
        return np.append(table, missing)[codes]
    values = np.atleast_1d(values)
    try:
        found = [lookup.get(v, -1) for v in values]
    except TypeError as exc:  # unhashable values such as lists
        raise InputError(name, f"expected text values: {exc}") from exc
    codes = np.array(found, dtype=np.intp)
    if -1 not in found:
        return codes
    for i in np.nonzero(codes < 0)[0]:
        value = values[i]
        if _is_missing(value):
            if not allow_missing:
                raise InputError(name, "missing value")
            codes[i] = missing
            continue
        code = lookup.get(str(value), -1)
        if code < 0:
            known = ", ".join(sorted(lookup))
            raise InputError(name, f"unknown category {value!r}; expected one of: {known}")
        codes[i] = code
    return codes


mlflow.models.set_model(TabularNetModel())
