"""The model version a drift check judges, its reference sample and its column types.

In: the registry (model name, optional version; default the production version as
`mlcycle.core.registry.resolve_production` decides), the version tag `mlcycle.reference_uri` and the
model's input signature. Out: a `ModelRef` (version, run id, column types) and the reference
sample as a DataFrame (input columns plus `prediction`).

Column types come from the model signature (`string`/`boolean` -> categorical, numbers ->
numerical), so a run never guesses them from the data; the reference's dtypes are the fallback
for models without a signature. With private log columns (`private_reference`), a hashed
column is judged as a category on hashed values of both sides, and a dropped one is not judged.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

REFERENCE_TAG = "mlcycle.reference_uri"
DEFAULT_REFERENCE_PATH = "reference/reference.parquet"
# Evidently picks its default stat tests by reference size (<= 1000 rows: p-value tests,
# above: distances); a sampled reference never drops below this so the choice is unchanged.
EVIDENTLY_SMALL_REFERENCE = 1000


class ModelRefError(Exception):
    """The model, its version or its reference sample cannot be found (the message says why)."""


@dataclass
class ModelRef:
    """What a drift check needs to know about one model version.

    Attributes:
        name: registered model name.
        version: registry version.
        run_id: the run that logged the version.
        reference_uri: URI of the reference sample.
        numerical: numerical input columns, signature order.
        categorical: categorical input columns, signature order.
        not_judged: input columns the prediction log leaves out (`MLCYCLE_LOG_DROP_COLUMNS`).
        hashed: input columns compared as keyed hashes (`MLCYCLE_LOG_HASH_COLUMNS`).
    """

    name: str
    version: str
    run_id: str
    reference_uri: str
    numerical: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    not_judged: list[str] = field(default_factory=list)
    hashed: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """All input columns (numerical first)."""
        return self.numerical + self.categorical


def resolve_model(name: str, version: str | None) -> ModelRef:
    """Find the model version (default: production) and where its reference sample is.

    Args:
        name: registered model name.
        version: registry version, or None for the production version.

    Returns:
        The model reference (column types not yet filled in).

    Raises:
        ModelRefError: unknown model or version, or no production version.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlcycle.core.registry import RegistryError, resolve_production

    client = mlflow.MlflowClient()
    if version is None:
        try:
            version = resolve_production(client, name).version
        except RegistryError as exc:
            raise ModelRefError(f"{exc}: train and register a model first") from None
        if version is None:
            raise ModelRefError(
                f"model {name!r} has no production version: promote one or pass --model-version"
            )
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException:
        raise ModelRefError(f"model {name!r} has no version {version!r}") from None
    run_id = mv.run_id or ""
    uri = (mv.tags or {}).get(REFERENCE_TAG) or (
        f"runs:/{run_id}/{DEFAULT_REFERENCE_PATH}" if run_id else ""
    )
    if not uri:
        raise ModelRefError(f"{name} v{version} names no reference sample ({REFERENCE_TAG})")
    return ModelRef(name=name, version=str(version), run_id=run_id, reference_uri=uri)


def _signature_types(ref: ModelRef) -> tuple[list[str], list[str]] | None:
    """(numerical, categorical) from the model's input signature, or None without one."""
    import mlflow

    try:
        info = mlflow.models.get_model_info(f"models:/{ref.name}/{ref.version}")
        schema = info.signature.inputs if info.signature else None
    except Exception as exc:  # any failure here only means: fall back to the reference dtypes
        log.info("no signature for %s v%s (%s); using reference dtypes", ref.name, ref.version, exc)
        return None
    if schema is None or not schema.has_input_names():
        return None
    numerical, categorical = [], []
    for spec in schema.inputs:
        mlflow_type = str(getattr(spec.type, "name", spec.type)).lower()
        (categorical if mlflow_type in {"string", "boolean", "binary"} else numerical).append(
            spec.name
        )
    return numerical, categorical


def _dtype_types(frame: Any, exclude: set[str]) -> tuple[list[str], list[str]]:
    import pandas as pd

    numerical, categorical = [], []
    for name in frame.columns:
        if name in exclude:
            continue
        is_num = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(
            frame[name]
        )
        (numerical if is_num else categorical).append(name)
    return numerical, categorical


def read_sample(uri: str, what: str) -> Any:
    """A Parquet artifact (a version's reference or holdout sample) as a DataFrame.

    Args:
        uri: its MLflow artifact URI (`runs:/<run id>/reference/reference.parquet`).
        what: what it is, for the error message.

    Raises:
        ModelRefError: it cannot be downloaded or read.
    """
    import mlflow
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="mlcycle-ref-") as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
            return pd.read_parquet(path)
        except Exception as exc:  # a missing or unreadable artifact is a user-facing condition
            raise ModelRefError(f"cannot read {what} ({uri}): {exc.__class__.__name__}") from None


def load_reference(ref: ModelRef, cap: int, seed: int, target: str = "default") -> Any:
    """Download the reference sample, fill in `ref`'s column types, sample it to `cap` rows.

    Args:
        ref: the model reference (its column lists are filled in here).
        cap: at most this many rows (<= 0: all); never below 1001 when the sample is larger,
            so Evidently's size-based choice of stat test is the same as on the full sample.
        seed: sampling seed.
        target: the training target column, never compared.

    Returns:
        The reference DataFrame: input columns (typed) plus `prediction` when present.

    Raises:
        ModelRefError: the sample cannot be downloaded or read.
    """
    frame = read_sample(ref.reference_uri, f"the reference sample of {ref.name} v{ref.version}")
    types = _signature_types(ref) or _dtype_types(frame, {target, "prediction"})
    ref.numerical = [c for c in types[0] if c in frame.columns]
    ref.categorical = [c for c in types[1] if c in frame.columns]
    if not ref.columns:
        raise ModelRefError(f"the reference sample {ref.reference_uri} has no input columns")
    keep = ref.columns + (["prediction"] if "prediction" in frame.columns else [])
    frame, n_total = frame[keep], len(frame)
    if cap > 0 and n_total > cap:
        size = max(cap, EVIDENTLY_SMALL_REFERENCE + 1)
        frame = frame.sample(n=min(size, n_total), random_state=seed).reset_index(drop=True)
    typed = coerce(frame, ref)
    typed.attrs["n_total"] = n_total
    return typed


def coerce(frame: Any, ref: ModelRef) -> Any:
    """Give each column its declared type: numerical -> float64 (bad values -> NaN),
    categorical -> str (missing stays missing), `prediction` -> float64.

    Args:
        frame: a DataFrame with `ref.columns` (and optionally `prediction`).
        ref: the model reference with column types.

    Returns:
        A new, typed DataFrame.
    """
    import pandas as pd

    out = {}
    for name in ref.numerical:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in ref.categorical:
        col = frame[name]
        out[name] = col.where(col.isna(), col.astype(str)).astype(object)
    if "prediction" in frame.columns:
        out["prediction"] = pd.to_numeric(frame["prediction"], errors="coerce").astype("float64")
    return pd.DataFrame(out)


def private_reference(ref: ModelRef, reference: Any, privacy: Any) -> Any:
    """The reference as the log holds its rows (`mlcycle.core.prediction_log.LogPrivacy`):
    dropped columns leave `ref` (listed in `ref.not_judged`), hashed ones become categorical
    columns of hashes (`ref.hashed`), so both sides are compared alike.

    Raises:
        ModelRefError: no input column is left to judge.
    """
    columns = ref.columns
    ref.not_judged = [c for c in columns if c in privacy.drop_columns]
    ref.hashed = [c for c in columns if c in privacy.hash_columns]
    kept = [c for c in columns if c not in privacy.drop_columns]
    ref.numerical = [c for c in ref.numerical if c in kept and c not in privacy.hash_columns]
    ref.categorical = [c for c in kept if c not in ref.numerical]
    if not ref.columns:
        raise ModelRefError("every input column is left out of the log (MLCYCLE_LOG_DROP_COLUMNS)")
    n_total = reference.attrs.get("n_total")
    typed = coerce(privacy.frame(reference), ref)
    typed.attrs["n_total"] = n_total
    return typed
