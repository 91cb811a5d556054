"""Per-prediction explanations: additive attributions over the model's input columns.

In: a served `ModelService`, the validated rows of a request asking for them (`/predict?
explain=true`, OIP v2 `"parameters": {"explain": true}`, gRPC parameter `explain`), and a
background of `BACKGROUND_ROWS` rows of the version's training reference (the sample logged
with its run, version tag `mlcycle.reference_uri`), read once per version on first use.
Out: per row `{"base_value", "attributions": {column: value}, "space"}` where the
attributions add up to the prediction minus `base_value` (exactly, up to float rounding).

- The network: exact (interventional) Shapley values. Every coalition S of the k input
  columns (2^k: 8,192 for the 13 bundled ones) is scored against every background row b, with
  the columns of S taken from the row and the others from b: 2^k x B model rows (262,144 for
  B = 32); v(S) is the mean over b and each column's value is the Shapley average of its
  marginal contributions. `base_value` = v(∅), the mean prediction over the background;
  `space` = "probability".
  A dense network that shows its features (`features`, `layers`, `spec`) is scored without
  building those rows: each input column owns its own features (a scaled number, a one-hot
  block), so the first layer's pre-activation of a composite row is the background row's plus
  one (B, hidden) difference per column taken from the row; all coalitions are then one
  (2^k, k) @ (k, B x hidden) product and the rest of the network. That pass is checked against
  the model's own predictions on the background when the explainer is built (else the
  composite rows go through the model: about as slow as shap's Exact explainer, both bound by
  the forward pass). Costs are measured in docs/benchmarks.md.
- A linear model (a network without hidden layers: logistic regression): the closed form in
  log-odds, attribution = w·x_i - mean_b w·b_i per column; `space` = "log_odds" (the
  prediction is sigmoid(base_value + sum)).

Explaining costs nothing unless asked: nothing here runs for other requests.
"""

from __future__ import annotations

import logging
import math
import threading

import numpy as np

from serving.errors import RequestError

log = logging.getLogger(__name__)

BACKGROUND_ROWS = 32
MAX_EXACT_COLUMNS = 16  # 2^16 coalitions x 32 rows is ~2M model rows per explained row
MAX_EXPLAINED_ROWS = 16  # each costs ~0.2 s on one core (13 columns, 32 background rows;
# 0.4-1 s through the model): a bound keeps a request's cost known
CHUNK_VALUES = 1 << 21  # first-layer values per additive pass: 16 MB of float64
AGREEMENT = 1e-9  # the additive pass must match the model's own predictions this closely
REFERENCE_TAG = "mlcycle.reference_uri"  # the version tag naming its reference sample
DEFAULT_REFERENCE_PATH = "reference/reference.parquet"


def _coalitions(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(masks as an (2^k, k) bool matrix: bit i of coalition m is column i; popcounts)."""
    ids = np.arange(2**k, dtype=np.int64)
    masks = ((ids[:, None] >> np.arange(k)) & 1).astype(bool)
    return masks, masks.sum(axis=1)


def shapley_from_values(v: np.ndarray, k: int) -> np.ndarray:
    """Exact Shapley values of a k-player game from its value of every coalition.

    Args:
        v: `v[m]` the value of coalition m (bit i set: player i in it), length 2^k.
        k: players.

    Returns:
        k values summing to v[all] - v[∅].
    """
    sizes = _coalitions(k)[1]
    weight = np.array(
        [math.factorial(s) * math.factorial(k - s - 1) / math.factorial(k) for s in range(k)]
    )
    ids = np.arange(2**k, dtype=np.int64)
    out = np.empty(k)
    for i in range(k):
        without = ids[(ids >> i) & 1 == 0]
        out[i] = float(np.sum(weight[sizes[without]] * (v[without | (1 << i)] - v[without])))
    return out


class Explainer:
    """Explanations of one model version against a fixed background.

    Args:
        service: the served version (`serving.model.ModelService`).
        background: validated columns (`Schema.validate`) of the background rows.
    """

    def __init__(self, service, background: dict[str, np.ndarray]) -> None:
        self.service = service
        self.names = list(service.schema.names)
        self.background = {c: _plain(background[c]) for c in self.names}
        self.rows = len(next(iter(self.background.values())))
        view = _network_view(service)
        self.linear = _linear_parts(view)
        k = len(self.names)
        if self.linear is None and k > MAX_EXACT_COLUMNS:
            raise ValueError(f"exact Shapley values over {k} columns cost too much")
        self._masks = _coalitions(k)[0] if self.linear is None else None
        self.additive = None
        if self.linear is None:
            preds = np.asarray(service.predict_arrays(self.background), dtype=np.float64)
            self.base_value = float(np.mean(preds))
            self.additive = _Additive.checked(view, self.background, preds)
        else:
            self.base_value = float(np.mean(self._log_odds_parts(self.background).sum(axis=1)))

    @property
    def space(self) -> str:
        """`log_odds` for the linear closed form, else `probability`."""
        return "probability" if self.linear is None else "log_odds"

    @property
    def cost_rows(self) -> int:
        """Model rows scored per explained row: 2^k coalitions x background rows (0 for the
        closed form)."""
        return 0 if self._masks is None else len(self._masks) * self.rows

    def explain(self, arrays: dict[str, np.ndarray], n: int) -> list[dict]:
        """Attributions of each of `n` validated rows.

        Returns:
            Per row `{"base_value", "attributions": {column: value}, "space"}`.
        """
        columns = {c: _plain(arrays[c]) for c in self.names}
        if self.linear is not None:
            values = self._linear(columns)
        elif self.additive is not None:
            values = self.additive.shapley(columns)
        else:
            values = np.array(
                [self._exact({c: v[i] for c, v in columns.items()}) for i in range(n)]
            )
        return [
            {
                "base_value": self.base_value,
                "attributions": dict(zip(self.names, row.tolist(), strict=True)),
                "space": self.space,
            }
            for row in values
        ]

    def _exact(self, row: dict) -> np.ndarray:
        """One row's Shapley values: every coalition x every background row, one pass."""
        masks, b = self._masks, self.rows
        composite = {}
        for i, name in enumerate(self.names):
            bg = self.background[name]
            if bg.dtype.kind == "O":  # categories: codes, so the model looks each up once
                composite[name] = _categorical_block(bg, row[name], masks[:, i])
                continue
            block = np.empty((len(masks), b), dtype=bg.dtype)
            block[:] = bg
            block[masks[:, i]] = row[name]
            composite[name] = block.reshape(-1)
        preds = self.service.predict_arrays(composite).reshape(len(masks), b)
        return shapley_from_values(preds.mean(axis=1), len(self.names))

    def _log_odds_parts(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Each column's share of the log-odds (bias spread evenly): (rows, columns)."""
        model, groups, weights, bias = self.linear
        x = model.features(columns)
        parts = np.column_stack([x[:, idx] @ weights[idx] for idx in groups])
        return parts + bias / len(groups)

    def _linear(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        parts = self._log_odds_parts(columns)
        return parts - self._log_odds_parts(self.background).mean(axis=0)


def _categorical_block(background: np.ndarray, value, rows: np.ndarray):
    """A `pandas.Categorical` of len(rows) x len(background) values: `value` on the rows of
    `rows`, the background's values on the others (None/NaN: missing)."""
    import pandas as pd

    def present(v) -> bool:
        return v is not None and v == v

    categories = list(dict.fromkeys(v for v in [*background.tolist(), value] if present(v)))
    code = {c: i for i, c in enumerate(categories)}
    bg_codes = np.array([code[v] if present(v) else -1 for v in background], dtype=np.int64)
    block = np.empty((len(rows), len(background)), dtype=np.int64)
    block[:] = bg_codes
    block[rows] = code[value] if present(value) else -1
    return pd.Categorical.from_codes(block.reshape(-1), categories=categories, validate=False)


def _plain(values) -> np.ndarray:
    """A validated column as a plain numpy array (a `pandas.Categorical` as objects)."""
    return np.asarray(values, dtype=object) if hasattr(values, "codes") else np.asarray(values)


def _network_view(service):
    """(model, feature indices per input column, layers) for a dense network that shows its
    features (`features`, `layers`, `spec`) with each feature owned by one input column, else
    None."""
    inner = getattr(service, "_fast", None)
    model = getattr(inner, "__self__", None)
    layers = getattr(model, "layers", None)
    spec = getattr(model, "spec", None)
    if not callable(getattr(model, "features", None)) or not layers or not spec:
        return None
    order = {name: i for i, name in enumerate(spec["feature_order"])}
    groups = []
    for name in service.schema.names:
        idx = [i for f, i in order.items() if f == name or f.startswith(name + "=")]
        groups.append(np.array(idx, dtype=np.intp))
    owned = np.sort(np.concatenate(groups)) if groups else np.array([])
    if not np.array_equal(owned, np.arange(len(order))):
        return None
    return model, groups, layers


def _linear_parts(view):
    """(model, feature indices per input column, weights, bias) for a network without hidden
    layers (`_network_view`), else None."""
    if view is None or len(view[2]) != 1:
        return None
    model, groups, layers = view
    weights, bias = layers[0]
    if weights.ndim != 2 or weights.shape[1] != 1:
        return None
    return model, groups, weights[:, 0], float(np.ravel(bias)[0])


class _Additive:
    """Every coalition's value from first-layer differences (see the module docstring).

    Args:
        model: the pyfunc's python model (`features`).
        groups: feature indices per input column.
        layers: the network's (W, b) pairs, input layer first (ReLU between, sigmoid out).
        background: the background's validated columns.
    """

    def __init__(self, model, groups, layers, background: dict[str, np.ndarray]) -> None:
        self.model, self.groups, self.layers = model, groups, layers
        self.bg_features = model.features(background)
        w0, b0 = layers[0]
        self.bg_first = self.bg_features @ w0 + b0  # (B, hidden)

    @classmethod
    def checked(cls, view, background: dict[str, np.ndarray], preds: np.ndarray):
        """The pass for `view` if it reproduces the model's predictions on the background."""
        if view is None:
            return None
        try:
            additive = cls(*view, background)
            same = np.max(np.abs(additive.finish(additive.bg_first) - preds)) <= AGREEMENT
        except Exception as exc:  # a model this pass does not understand: the general one
            log.info("explanations through the model (no additive pass): %s", exc)
            return None
        return additive if same else None

    def finish(self, first: np.ndarray) -> np.ndarray:
        """Probabilities from first-layer pre-activations (rows, hidden)."""
        h = first
        for w, b in self.layers[1:]:
            h = np.maximum(h, 0.0) @ w + b
        return 1.0 / (1.0 + np.exp(-h.reshape(-1).clip(-500.0, 500.0)))

    def shapley(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Shapley values of each row of `columns`: (rows, input columns)."""
        w0 = self.layers[0][0]
        out = []
        for x in self.model.features(columns):
            diff = x[None, :] - self.bg_features
            parts = [diff[:, g] @ w0[g] for g in self.groups]  # k x (B, hidden)
            out.append(shapley_from_values(self._values(parts), len(parts)))
        return np.array(out)

    def _values(self, parts: list[np.ndarray]) -> np.ndarray:
        """v(S) for every coalition S (bit i: column i). The first `low` columns' coalitions
        are built by doubling (each adds its difference to every coalition so far: one add
        per value), each combination of the other columns is one offset to all of them."""
        k, (b, hidden) = len(parts), self.bg_first.shape
        low = min(k, max(0, int(np.log2(max(CHUNK_VALUES // (b * hidden), 1)))))
        block = self.bg_first[None]
        for part in parts[:low]:
            block = np.concatenate([block, block + part])
        values = np.empty(2**k)
        for high in range(2 ** (k - low)):
            offset = sum(parts[low + i] for i in range(k - low) if high >> i & 1)
            first = (block + offset).reshape(-1, hidden)
            chunk = self.finish(first).reshape(-1, b).mean(axis=1)
            values[high << low : (high + 1) << low] = chunk
        return values


class Explainers:
    """One `Explainer` per served version, built on first use (the background is read from
    the version's reference sample then), for every request thread of a worker."""

    def __init__(self, background=None) -> None:
        self._by_version: dict[tuple[str, str], Explainer] = {}
        self._background = background or reference_background
        self._lock = threading.Lock()

    def explain(self, service, arrays: dict[str, np.ndarray], n: int) -> list[dict]:
        """Attributions of the request's rows (`Explainer.explain`).

        Raises:
            RequestError: 413 past `MAX_EXPLAINED_ROWS` rows; 422 for a row whose
                attributions are not finite; 503 when the version's reference sample (the
                background) cannot be read.
        """
        if n > MAX_EXPLAINED_ROWS:
            raise RequestError(
                f"explanations are given for at most {MAX_EXPLAINED_ROWS} rows per request "
                f"({n} sent): each costs a forward pass of thousands of rows",
                status=413,
            )
        explained = self.get(service).explain(arrays, n)
        for i, row in enumerate(explained):
            bad = [c for c, v in row["attributions"].items() if not math.isfinite(v)]
            if bad:  # as for a non-finite prediction: never a 200 with null
                raise RequestError(
                    f"row {i} cannot be explained: its attributions overflow for "
                    f"{', '.join(bad)} (values far outside the training range)",
                    status=422,
                    field=bad[0],
                )
        return explained

    def get(self, service) -> Explainer:
        """The version's explainer (built once)."""
        key = (service.name, service.version)
        with self._lock:
            found = self._by_version.get(key)
            if found is not None and found.service is service:
                return found
            try:
                frame = self._background(service)
                background = service.schema.validate(
                    {c: frame[c].tolist() for c in service.schema.names}, len(frame)
                )
            except Exception as exc:
                log.warning("no explanation background for %s: %s", service.label, exc)
                raise RequestError(
                    f"no explanation background for {service.label}: its training reference "
                    "sample cannot be read",
                    status=503,
                ) from None
            try:
                found = self._by_version[key] = Explainer(service, background)
            except ValueError as exc:  # too many columns for exact values
                raise RequestError(f"{service.label} cannot be explained: {exc}", 422) from None
            return found


def reference_background(service, rows: int = BACKGROUND_ROWS, seed: int = 0):
    """`rows` rows (seeded sample) of the version's reference sample, as a DataFrame."""
    import mlflow
    import pandas as pd

    uri = getattr(service, "reference_uri", None)
    if not uri:
        if not service.run_id:
            raise ValueError(f"{service.label} has no run, so no reference sample")
        uri = f"runs:/{service.run_id}/{DEFAULT_REFERENCE_PATH}"
    frame = pd.read_parquet(mlflow.artifacts.download_artifacts(uri))
    frame = frame[list(service.schema.names)]
    return frame.sample(min(rows, len(frame)), random_state=seed).reset_index(drop=True)


def explain_asked(req, protocol: str, body: bytes) -> bool:
    """Whether a request asks for explanations: query `explain=true` on any HTTP prediction
    route, `"parameters": {"explain": true}` in an OIP v2 body, or the gRPC request's
    parameter `explain` (`req.explain_asked()`).

    Raises:
        RequestError: 400 for an `explain` that is not `true` or `false` (as the OpenAPI
            document says: a boolean).
    """
    asked = getattr(req, "explain_asked", None)
    if asked is not None:
        return bool(asked())
    query = req.environ.get("QUERY_STRING", "")
    if "explain" in query:
        from urllib.parse import parse_qs

        for value in parse_qs(query, keep_blank_values=True).get("explain", ()):
            if value not in ("true", "false"):
                raise RequestError(f"explain must be true or false, not {value!r}", field="explain")
            return value == "true"
    if protocol == "v2" and b'"explain"' in body:
        import orjson

        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False  # the parser answers the malformed body
        parameters = doc.get("parameters") if type(doc) is dict else None
        value = parameters.get("explain", False) if type(parameters) is dict else False
        if type(value) is not bool:
            raise RequestError("parameters.explain must be true or false", field="explain")
        return value
    return False


def attach_explanations(protocol: str, answer: dict, extra, explained: list[dict]) -> None:
    """Put the rows' explanations into the answer where each protocol has room: `/predict`
    an `explanation` per row (beside the single row's fields for a one-object body),
    `/invocations` a top-level `explanations` list, OIP v2 `parameters.explanations`."""
    if protocol == "predict":
        if extra:  # one JSON object, one row
            answer["explanation"] = explained[0]
        else:
            for row, explanation in zip(answer["predictions"], explained, strict=True):
                row["explanation"] = explanation
    elif protocol == "invocations":
        answer["explanations"] = explained
    else:
        answer.setdefault("parameters", {})["explanations"] = explained
