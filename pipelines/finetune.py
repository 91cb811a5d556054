"""Fine-tuning: continue training a registered version on new labelled rows, then the gate.

In: labelled raw rows (a CSV through `load_rows`, or any DataFrame, e.g. the labelled rows of the
prediction log), the parent version (`production` or a number) and a `FinetuneConfig`. Out: one
MLflow run (params, per-epoch metrics, the new network's and the parent's scores on the held-out
rows, the reference sample and the pyfunc model `model`), a registered version with lineage tags
(`mlcycle.parent_version`, `mlcycle.data_window`, `mlcycle.label_count`,
`mlcycle.new_categories`, ...) and the gate's decision: production is scored on the same
held-out rows, which fine-tuning never trains on.

The parent's preprocessing (`preprocess.json`) and weights (`weights.npz`) come from its
registered pyfunc (`TabularNetModel.spec` and `.layers`). Numeric imputation and scaling stay the
parent's (its first layer's weights are in those units); `min`/`max` widen to cover the new rows
(the serving range guard reads them). **New categories** (values of a categorical column that the
parent never saw) join the one-hot vocabulary, and the first layer gets a zero row of weights for
each: the network's output is unchanged at first, a new category starts out exactly like a
missing value (an all-zero one-hot block), and fine-tuning learns its weights (with the first
layer frozen it keeps that missing-value encoding).

The held-out rows are the most recent `holdout` share when the rows have a `ts` column (Unix
seconds or datetimes, as in the prediction log), else a stratified random share; the rest is
split into training and validation rows (early stopping).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.core import registry
from pipelines import baseline as baseline_step
from pipelines import data as data_step
from pipelines import evaluate, model_code, pipeline, preprocess
from pipelines.settings import MODEL_NAME

log = logging.getLogger(__name__)

TIME_COLUMN = "ts"
MIN_ROWS = 50


@dataclass(frozen=True)
class FinetuneConfig:
    """Options of one fine-tuning run (see `python -m pipelines finetune --help`).

    Attributes:
        model_name: registered model name.
        target: the 0/1 target column of the rows.
        epochs: most passes over the new rows (early stopping usually ends sooner).
        batch_size: minibatch size.
        learning_rate: Adam's initial learning rate, below training's 3e-3 so the network
            moves from the parent's weights rather than starting over.
        patience: epochs without a better validation AUC before training stops.
        frozen_layers: leading hidden layers kept fixed (1: the first layer).
        l2: L2 penalty on the hidden layers' weights.
        dropout: dropout rate after each hidden layer.
        holdout: share of the rows held out for the gate (the most recent ones with `ts`).
        seed: seed of the split and of training.
        margin: the new version's AUC must beat production's on the held-out rows by more.
        experiment: MLflow experiment for standalone runs.
        data_window: what the rows are, e.g. `csv shifted.csv` or `log since 7d`; with a `ts`
            column the first and last timestamps are recorded as well.
    """

    model_name: str = MODEL_NAME
    target: str = "default"
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 1e-3
    patience: int = 5
    frozen_layers: int = 0
    l2: float = 3e-3
    dropout: float = 0.5
    holdout: float = 0.2
    seed: int = 42
    margin: float = 0.0
    experiment: str = MODEL_NAME
    data_window: str = ""

    def params(self) -> dict[str, object]:
        """The options as MLflow params."""
        return {
            "model_name": self.model_name,
            "target": self.target,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "patience": self.patience,
            "frozen_layers": self.frozen_layers,
            "l2": self.l2,
            "dropout": self.dropout,
            "holdout": self.holdout,
            "seed": self.seed,
            "promote_margin": self.margin,
        }


@dataclass(frozen=True)
class FinetuneResult:
    """What one fine-tuning run produced.

    Attributes:
        run_id: the MLflow run.
        model_uri: the logged model.
        version: the registered version.
        parent_version: the version it started from.
        promoted: whether the gate promoted it to production.
        reason: the gate's reason.
        metrics: the run's final metrics (`test_auc`, `parent_test_auc`, ...).
        label_count: labelled rows received (training, validation and held out).
        new_categories: categories added to the parent's vocabulary, per column.
    """

    run_id: str
    model_uri: str
    version: str
    parent_version: str
    promoted: bool
    reason: str
    metrics: dict
    label_count: int
    new_categories: dict[str, list[str]] = field(default_factory=dict)


def load_rows(path: str | Path, target: str) -> pd.DataFrame:
    """Read a CSV of labelled raw rows (inputs and the target) for fine-tuning.

    Raises:
        DataError: for a missing or unreadable file or an unusable target (see
            `pipelines.data.load_table`).
    """
    return data_step.load_table(path, target)


def rows_from_log(
    log_url: str, name: str, parent: str, since_s: float, now: float | None = None
) -> pd.DataFrame:
    """The labelled rows the log holds from the last `since_s` seconds, as fine-tuning takes
    them: the parent's input columns, its target (0/1; its name in `attrs["target"]`) and
    `ts`, oldest first.

    Args:
        log_url: the prediction log's URL.
        name: registered model name (rows served by any of its versions count).
        parent: `production` or a version number: whose input columns and target to use.
        since_s: how far back to read.
        now: the end of the window (default: now).

    Raises:
        DataError: the log cannot be read, or the parent does not exist.
    """
    import time

    import mlflow

    from mlcycle.core.labelled import read_labelled_inputs
    from mlcycle.core.logdb import LogError

    version = resolve_parent(mlflow.MlflowClient(), name, parent)
    spec = load_parent(name, version).spec
    columns = [c["name"] for c in spec["numeric"]] + [c["name"] for c in spec["categorical"]]
    end = time.time() if now is None else now
    try:
        rows = read_labelled_inputs(log_url, name, end - since_s, end, columns)
    except LogError as exc:
        raise data_step.DataError(str(exc)) from None
    _refuse_private(rows, columns)
    target = spec.get("target", "default")
    rows = rows.drop(columns=["model_version"]).rename(columns={"label": target})
    rows.attrs["target"] = target
    return rows


def _refuse_private(rows: pd.DataFrame, columns: list[str]) -> None:
    """Refuse logged rows whose inputs the log keeps hashed or left out (private columns):
    a model cannot learn from them.

    Raises:
        DataError: naming the columns.
    """
    from mlcycle.core.prediction_log import HASH_PREFIX

    private = []
    for name in columns:
        values = rows[name].dropna() if name in rows else pd.Series(dtype=object)
        if len(rows) and (values.empty or values.astype(str).str.startswith(HASH_PREFIX).any()):
            private.append(name)
    if private:
        raise data_step.DataError(
            f"the log holds {', '.join(private)} hashed or not at all (MLCYCLE_LOG_HASH_COLUMNS, "
            "MLCYCLE_LOG_DROP_COLUMNS): fine-tune from a CSV of the raw labelled rows (--data)"
        )


def resolve_parent(client, name: str, parent: str) -> str:
    """The parent's version number: `production`'s current version, or `parent` itself.

    Raises:
        DataError: if nothing is in production or the version does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        if str(parent).strip().lower() == "production":
            version = registry.resolve_production(client, name).version
            if version is None:
                raise data_step.DataError(f"{name!r} has no production version to fine-tune")
            return str(version)
        return str(client.get_model_version(name, str(parent)).version)
    except registry.RegistryError as exc:
        raise data_step.DataError(str(exc)) from None
    except MlflowException:
        raise data_step.DataError(f"model {name!r} has no version {parent!r}") from None


def load_parent(name: str, version: str) -> model_code.TabularNetModel:
    """The parent's network and preprocessing, from `models:/<name>/<version>`.

    Raises:
        DataError: if the version is not an mlcycle network (no spec and layers).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        python_model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
    except MlflowException:
        python_model = None
    if not (hasattr(python_model, "spec") and hasattr(python_model, "layers")):
        raise data_step.DataError(f"{name} v{version} is not an mlcycle network; cannot fine-tune")
    return python_model


def grow(spec: dict, layers: list, rows: pd.DataFrame) -> tuple[dict, list, dict]:
    """The parent's spec and layers, extended to the categories and ranges of `rows`.

    Args:
        spec: the parent's preprocessing spec.
        layers: the parent's (W, b) pairs.
        rows: the new labelled rows (all of them, so held-out rows can be scored too).

    Returns:
        (new spec, new layers, `{column: [new categories]}`). The first layer gets a zero row
        per new one-hot feature, appended after the parent's features.
    """
    spec = copy.deepcopy(spec)
    added: dict[str, list[str]] = {}
    for column in spec["categorical"]:
        name = column["name"]
        seen = {str(v) for v in rows[name].dropna().unique()}
        new = sorted(seen - {str(c) for c in column["categories"]})
        if new:
            column["categories"] = [*column["categories"], *new]
            spec["feature_order"] += [f"{name}={cat}" for cat in new]
            added[name] = new
        if len(column["categories"]) > preprocess.MAX_CATEGORIES:
            log.warning("column %r now has %d categories", name, len(column["categories"]))
    for column in spec["numeric"]:
        values = pd.to_numeric(rows[column["name"]], errors="coerce")
        if values.notna().any():
            column["min"] = min(float(column["min"]), float(values.min()))
            column["max"] = max(float(column["max"]), float(values.max()))
    w0, b0 = (np.asarray(a, dtype=np.float64) for a in layers[0])
    extra = len(spec["feature_order"]) - w0.shape[0]
    w0 = np.vstack([w0, np.zeros((extra, w0.shape[1]))])
    return spec, [(w0, b0), *layers[1:]], added


def _check_rows(rows: pd.DataFrame, spec: dict, target: str) -> pd.DataFrame:
    """The rows with a 0/1 int target, after checking columns, labels and size.

    Raises:
        DataError: for a missing target or input column, labels other than 0/1, too few rows.
    """
    if target not in rows:
        raise data_step.DataError(f"the rows have no target column {target!r}")
    missing = [c for c in preprocess.input_columns(spec) if c not in rows]
    if missing:
        raise data_step.DataError(f"the rows lack the parent's input columns: {missing}")
    labels = rows[target]
    if labels.isna().any() or not labels.isin([0, 1, True, False]).all():
        raise data_step.DataError(f"target column {target!r} must hold 0/1 labels")
    positive, expected = rows.attrs.get("positive_label"), spec.get("positive_label", 1)
    if positive is not None and str(positive) != str(expected):
        raise data_step.DataError(
            f"the rows' positive label is {positive!r}, the parent's is {expected!r}"
        )
    if len(rows) < MIN_ROWS or labels.nunique() < 2:
        raise data_step.DataError(
            f"need at least {MIN_ROWS} labelled rows with both classes, got {len(rows)} "
            f"({int(labels.sum())} positive)"
        )
    return rows.assign(**{target: labels.astype(np.int64)}).reset_index(drop=True)


def split(rows: pd.DataFrame, target: str, holdout: float, seed: int) -> preprocess.Splits:
    """Train/validation rows and the held-out rows (the most recent ones when `ts` exists).

    Raises:
        DataError: if a class is too rare to be split (stratified) into every part.
    """
    from sklearn.model_selection import train_test_split

    try:
        if TIME_COLUMN not in rows:
            return preprocess.split(rows, target, seed, val_size=0.15, test_size=holdout)
        ordered = rows.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
        cut = len(ordered) - max(1, math.ceil(holdout * len(ordered)))
        rest, test = ordered.iloc[:cut], ordered.iloc[cut:]
        train, val = train_test_split(
            rest, test_size=0.15, stratify=rest[target], random_state=seed
        )
    except ValueError as exc:
        raise data_step.DataError(f"cannot split the labelled rows: {exc}") from None
    return preprocess.Splits(*(part.reset_index(drop=True) for part in (train, val, test)))


def data_window(rows: pd.DataFrame, described: str) -> str:
    """`described`, plus the first and last timestamps when the rows have a `ts` column."""
    parts = [described] if described else []
    if TIME_COLUMN in rows and len(rows):
        ts = rows[TIME_COLUMN]
        if pd.api.types.is_numeric_dtype(ts):
            ts = pd.to_datetime(ts, unit="s", utc=True)
        first, last = (_iso(t) for t in (ts.min(), ts.max()))
        parts.append(f"{first}..{last}")
    return " ".join(parts) or "unspecified"


def _iso(value) -> str:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize(timezone.utc) if stamp.tzinfo is None else stamp
    # Whole seconds: the text shows no more, and to_pydatetime warns when it drops nanoseconds.
    return stamp.floor("s").to_pydatetime().astimezone(timezone.utc).isoformat(timespec="seconds")


def _scores(net, parent, spec: dict, splits: preprocess.Splits, target: str) -> dict:
    """The new network's val/test metrics, the parent's and a fresh baseline's on the test rows.

    The parent is scored through the grown spec (its weights with zero rows for the new
    categories), which gives its own predictions and treats new categories as missing.
    """
    numeric, categorical = pipeline.roles(spec)
    test = splits.test
    y = test[target].to_numpy()
    metrics = evaluate.metrics(splits.val[target], net.predict(None, splits.val), "val_")
    metrics |= evaluate.metrics(y, net.predict(None, test), "test_")
    metrics |= evaluate.metrics(y, parent.predict(None, test), "parent_test_")
    base = baseline_step.fit_baseline(splits.train, numeric, categorical, target, "logreg", 0)
    proba = baseline_step.predict_baseline(base, test, numeric, categorical)
    return metrics | evaluate.metrics(y, proba, "baseline_test_")


@dataclass(frozen=True)
class _Prepared:
    """The parent and the new rows, ready to train on."""

    parent_version: str
    parent: model_code.TabularNetModel  # the parent's weights behind the grown spec
    spec: dict
    splits: preprocess.Splits
    added: dict[str, list[str]]
    lineage: dict[str, object]


def _prepare(client, cfg: FinetuneConfig, rows: pd.DataFrame, parent: str) -> _Prepared:
    parent_version = resolve_parent(client, cfg.model_name, parent)
    parent_net = load_parent(cfg.model_name, parent_version)
    rows = _check_rows(rows, parent_net.spec, cfg.target)
    spec, layers, added = grow(parent_net.spec, parent_net.layers, rows)
    splits = split(rows, cfg.target, cfg.holdout, cfg.seed)
    lineage = {
        "parent_version": parent_version,
        "data_window": data_window(rows, cfg.data_window),
        "label_count": len(rows),
        "finetune_rows": len(splits.train) + len(splits.val),
        "holdout_rows": len(splits.test),
    }
    grown = model_code.TabularNetModel().setup(spec, layers)
    return _Prepared(parent_version, grown, spec, splits, added, lineage)


def _log_model(net, prep: _Prepared, cfg: FinetuneConfig, run_id: str):
    columns = preprocess.input_columns(prep.spec)
    train = prep.splits.train
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.log_reference(train, columns, cfg.target, net, cfg.seed, Path(tmp))
        return pipeline.log_network(prep.spec, net.layers, train[columns].head(5), Path(tmp))


def _version_tags(prep: _Prepared, cfg: FinetuneConfig, metrics: dict, run_id: str) -> dict:
    tags = {
        "mlcycle.val_auc": f"{metrics['val_auc']:.6f}",
        "mlcycle.test_auc": f"{metrics['test_auc']:.6f}",
        "mlcycle.reference_uri": f"runs:/{run_id}/{pipeline.REFERENCE_PATH}",
        "mlcycle.new_categories": json.dumps(prep.added, separators=(",", ":")),
        "mlcycle.frozen_layers": str(cfg.frozen_layers),
        "mlcycle.weight_bytes": str(metrics["weight_bytes"]),
    }
    return tags | {f"mlcycle.{k}": str(v) for k, v in prep.lineage.items()}


def finetune(
    rows: pd.DataFrame,
    parent: str = "production",
    config: FinetuneConfig | None = None,
    gate_rows: pd.DataFrame | None = None,
) -> FinetuneResult:
    """Fine-tune a registered version on labelled rows, register the result and gate it.

    Args:
        rows: labelled raw rows: the parent's input columns and the target as 0/1; an optional
            `ts` column orders them (the most recent are held out for the gate).
        parent: `production` or a version number of `config.model_name`.
        config: the options (defaults: `FinetuneConfig()`).
        gate_rows: more labelled rows for the gate only (never trained on), e.g. recent
            labelled live rows kept out of `rows`.

    Returns:
        The run, the new version, its lineage and the gate's decision.

    Raises:
        DataError: for unusable rows, or a parent that does not exist or is not a network.
        GateError: if the gate cannot score the held-out rows.
    """
    import mlflow

    from pipelines.register import register

    cfg = config or FinetuneConfig()
    with pipeline.start_run(cfg.experiment) as active:
        client, run_id = mlflow.MlflowClient(), active.info.run_id
        prep = _prepare(client, cfg, rows, parent)
        pipeline.log_params(run_id, cfg.params() | prep.lineage)
        mlflow.set_tags({"mlcycle.parent_version": prep.parent_version})
        log.info(
            "fine-tuning %s v%s on %d labelled rows (%s); new categories: %s",
            cfg.model_name,
            prep.parent_version,
            prep.lineage["label_count"],
            prep.lineage["data_window"],
            prep.added or "none",
        )
        net = pipeline.fit_network_on(
            prep.spec,
            prep.splits,
            cfg.target,
            cfg,
            initial=prep.parent.layers,
            frozen=cfg.frozen_layers,
        )
        metrics = _scores(net, prep.parent, prep.spec, prep.splits, cfg.target)
        metrics["weight_bytes"] = pipeline.network_weight_bytes(net.layers)
        mlflow.log_metrics(metrics)
        log.info(
            "held-out AUC %.4f (parent v%s %.4f, fresh logreg %.4f)",
            metrics["test_auc"],
            prep.parent_version,
            metrics["parent_test_auc"],
            metrics["baseline_test_auc"],
        )
        info = _log_model(net, prep, cfg, run_id)
        decision = register(
            client,
            info.model_uri,
            cfg.model_name,
            run_id,
            _version_tags(prep, cfg, metrics, run_id),
            prep.splits.test,
            cfg.target,
            cfg.margin,
            live=gate_rows,
            note=f"parent v{prep.parent_version}, {prep.lineage['label_count']} labels",
        )
        pipeline.record_gate(decision)
    return FinetuneResult(
        run_id,
        info.model_uri,
        decision.version,
        prep.parent_version,
        decision.promoted,
        decision.reason,
        metrics,
        int(prep.lineage["label_count"]),
        prep.added,
    )
