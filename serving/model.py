"""The served model: validation schema, fast forward pass, micro-batcher and cache of one version.

In: a loaded model (an `mlflow.pyfunc.PyFuncModel`, or any object with `predict_columns` and
`spec`, e.g. a tiny stub in tests) plus its registry name, version and run id.
Out: `ModelService.score(columns, n)` -> float64 probabilities, one per row, all finite (a
non-finite one is a 422), or a 400 `RequestError` for the model's own `InputError` (recognised
by class name: `is_input_error`); `ModelService.check_range(columns, n)` -> the rows outside
the version's training reference (`serving.guard`). Uses the model's `predict_columns` fast
path when it has one (no pandas) and falls back to `predict` on a DataFrame for generic pyfunc
models.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from serving.batching import MicroBatcher
from serving.cache import PredictionCache
from serving.errors import RequestError
from serving.guard import MARGIN, OutOfRange, RangeGuard
from serving.schema import Schema

log = logging.getLogger(__name__)
CHUNK_ROWS = 8192  # large batches go through the network in slices that stay in CPU cache
_SHOWN_ROWS = 10  # rows named in a non-finite-output error


def is_input_error(exc: BaseException) -> bool:
    """True for the model's own "bad input" error: a class named `InputError` in its MRO.

    Serving never imports `pipelines`, and a model logged from code is loaded under a module
    name MLflow picks, so the class is recognised by name (`pipelines.model_code.InputError`,
    or any pyfunc's own `InputError`), not by identity. A plain `ValueError` does not count:
    it is as likely a bug in the model as a bad row, so it is answered 500 and logged.
    """
    return any(cls.__name__ == "InputError" for cls in type(exc).__mro__)


def _python_model(model):
    if hasattr(model, "predict_columns"):
        return model
    unwrap = getattr(model, "unwrap_python_model", None)
    if unwrap is None:
        return None
    try:
        return unwrap()
    except Exception:  # not a PythonModel-based pyfunc: use the generic path
        return None


class ModelService:
    """One loaded model version, ready to score validated columns."""

    def __init__(
        self,
        model,
        name: str,
        version: str,
        run_id: str = "",
        *,
        batching: bool = False,
        max_batch: int = 256,
        max_wait_us: int = 500,
        cache_size: int = 0,
        cache_max_rows: int = 256,
        range_margin: float = MARGIN,
    ) -> None:
        self.model = model
        self.name = name
        self.version = str(version)
        self.run_id = run_id or ""
        self.label = f"{name}/{self.version}"
        self.reference_uri: str | None = None  # its training reference sample (explanations)
        inner = _python_model(model)
        self._fast = getattr(inner, "predict_columns", None)
        self.spec: dict | None = getattr(inner, "spec", None)
        schema = Schema.from_spec(self.spec) if self.spec else None
        if schema is None:
            meta = getattr(model, "metadata", None)
            schema = Schema.from_signature(getattr(meta, "signature", None))
        if schema is None:
            raise ValueError(f"{self.label} has neither a spec nor a column signature")
        self.schema = schema
        self.guard = RangeGuard.from_spec(self.spec, range_margin)
        self.batcher = (
            MicroBatcher(self.predict_arrays, max_batch, max_wait_us) if batching else None
        )
        self.cache = _cache(cache_size) if cache_size > 0 else None
        self.cache_max_rows = cache_max_rows

    def predict_arrays(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """One forward pass over validated columns (no batching, no cache).

        Batches of more than `CHUNK_ROWS` rows are scored slice by slice: the hidden layer of
        a whole 50k-row batch (25 MB) falls out of cache and costs ~4x more per row. Extreme
        inputs may overflow inside the network: no numpy warning is printed for that, the
        non-finite result is refused by `score`.
        """
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._predict_arrays(columns)

    def _predict_arrays(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        if self._fast is None:
            import pandas as pd

            plain = {k: np.asarray(v) for k, v in columns.items()}  # Categorical -> object
            return _as_probabilities(
                self.model.predict(pd.DataFrame(plain, columns=list(self.schema.names)))
            )
        n = len(next(iter(columns.values()))) if columns else 0
        if n <= CHUNK_ROWS:
            return _as_probabilities(self._fast(columns))
        parts = []
        for i in range(0, n, CHUNK_ROWS):
            part = {k: v[i : i + CHUNK_ROWS] for k, v in columns.items()}
            parts.append(_as_probabilities(self._fast(part)))
        return np.concatenate(parts)

    def score(
        self, columns: dict[str, np.ndarray], raw: dict[str, list], n: int, turn=None
    ) -> np.ndarray:
        """Score `n` validated rows through the cache and the micro-batcher.

        Args:
            columns: validated arrays from `Schema.validate`.
            raw: the same rows as plain Python values (the cache key).
            n: number of rows; requests of more than `cache_max_rows` rows skip the cache
                (keying every row of a large batch costs more than its forward pass).
            turn: the request's `MicroBatcher.expect()` announcement, if any.

        Returns:
            float64 probabilities, one per row, all finite.

        Raises:
            RequestError: 400 when the model itself rejects the input (its `InputError`;
                any other exception is the model's fault and propagates: a 500); 422 naming
                the rows when it gives a non-finite probability.
        """
        try:
            if self.cache is None or n > self.cache_max_rows:
                preds = self._forward(columns, n, turn)
            else:
                preds = self._cached(columns, raw, n, turn)
        except Exception as exc:
            if not is_input_error(exc):
                raise
            column = getattr(exc, "column", None)
            raise RequestError(
                f"model rejected the input: {exc}", field=column if type(column) is str else None
            ) from None
        _check_finite(preds)
        return preds

    def check_range(self, columns: dict[str, np.ndarray], n: int) -> OutOfRange | None:
        """The rows of validated columns outside this version's training reference, or None."""
        return self.guard.check(columns, n)

    def _forward(self, columns: dict[str, np.ndarray], n: int, turn=None) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.submit(columns, n, turn)
        return self.predict_arrays(columns)

    def _cached(self, columns: dict[str, np.ndarray], raw: dict[str, list], n: int, turn=None):
        keys = list(zip(*(raw[c] for c in self.schema.names), strict=True))
        found = self.cache.get_many(keys)
        miss = [i for i, v in enumerate(found) if v is None]
        if not miss:
            return np.array(found, dtype=np.float64)
        if len(miss) == n:
            preds = self._forward(columns, n, turn)
            self.cache.put_many(keys, preds)
            return preds
        idx = np.array(miss)
        sub = {k: v[idx] for k, v in columns.items()}
        fresh = self._forward(sub, len(miss), turn)
        self.cache.put_many([keys[i] for i in miss], fresh)
        out = np.array([0.0 if v is None else v for v in found], dtype=np.float64)
        out[idx] = fresh
        return out

    def example_columns(self) -> tuple[dict[str, np.ndarray], dict[str, list]]:
        """A plausible one-row input built from the schema (for warm-up and readiness)."""
        raw = {}
        numeric = {n["name"]: n for n in (self.spec or {}).get("numeric", [])}
        for col in self.schema.columns:
            if col.numeric:
                raw[col.name] = [float(numeric.get(col.name, {}).get("median", 0.0))]
            else:
                cats = sorted(col.categories) if col.categories else ["a"]
                raw[col.name] = [cats[0]]
        return self.schema.validate(raw, 1), raw

    def warm(self, rounds: int = 3) -> None:
        """Run a few forward passes so the first real request pays no first-call cost."""
        columns, _ = self.example_columns()
        for _ in range(rounds):
            self.predict_arrays(columns)

    def metadata(self) -> dict:
        """Open Inference Protocol v2 model metadata."""
        inputs = [
            {"name": c.name, "datatype": "FP64" if c.numeric else "BYTES", "shape": [-1]}
            for c in self.schema.columns
        ]
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": "mlflow-pyfunc",
            "inputs": inputs,
            "outputs": [{"name": "probability", "datatype": "FP64", "shape": [-1]}],
        }


def _cache(size: int) -> PredictionCache:
    from serving.metrics import get_metrics

    return PredictionCache(size, on_lookup=get_metrics().observe_cache)


def _check_finite(preds: np.ndarray) -> None:
    """Refuse a batch whose probabilities are not all finite (JSON would show them as null)."""
    if len(preds) <= 8:
        if all(map(math.isfinite, preds.tolist())):
            return
    elif np.isfinite(preds).all():
        return
    rows = np.flatnonzero(~np.isfinite(preds))
    shown = rows[:_SHOWN_ROWS].tolist()
    more = ", ..." if len(rows) > _SHOWN_ROWS else ""
    raise RequestError(
        f"the model gave no finite probability for {len(rows)} row(s) "
        f"(rows {str(shown)[1:-1]}{more}): the inputs are beyond what it can score",
        422,
        detail={"rows": shown, "count": len(rows)},
    )


def _as_probabilities(out) -> np.ndarray:
    if hasattr(out, "to_numpy"):
        out = out.to_numpy()
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, -1] if arr.shape[1] > 1 else arr[:, 0]
    return arr.reshape(-1)
