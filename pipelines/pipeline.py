"""The whole training pipeline: data → preprocess → train → baseline → evaluate → log → register.

In: a `TrainConfig`. Out: one MLflow run (params, per-epoch and final metrics of the network and
the baseline, the kept epoch, the reference sample `reference/reference.parquet`, the pyfunc
model `model` and the sklearn model `baseline`) and, unless disabled, a registered model version
that went through the gate (scored against production on this run's test split).

Inside `mlflow run` the run already exists (`MLFLOW_RUN_ID`) and `mlflow.start_run()` resumes
it; standalone, a new run is created in the configured experiment.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.core import synthetic
from pipelines import baseline as baseline_step
from pipelines import data as data_step
from pipelines import evaluate, model_code, preprocess
from pipelines import train as train_step
from pipelines.settings import TrainConfig

log = logging.getLogger(__name__)

REFERENCE_ROWS = 50_000
REFERENCE_PATH = "reference/reference.parquet"


@dataclass(frozen=True)
class TrainResult:
    """What one pipeline run produced."""

    run_id: str
    model_uri: str
    metrics: dict
    version: str | None = None
    promoted: bool = False
    reason: str = ""


def load_data(cfg: TrainConfig) -> pd.DataFrame:
    """The synthetic table, or the user's CSV when `cfg.data` is set.

    Raises:
        DataError: for an unusable CSV or a target that the synthetic data lacks.
    """
    if cfg.data:
        return data_step.load_table(cfg.data, cfg.target)
    if cfg.target != synthetic.TARGET:
        raise data_step.DataError(
            f"the synthetic data's target is {synthetic.TARGET!r}; --target applies to --data CSVs"
        )
    df = synthetic.generate(cfg.rows, seed=cfg.seed)
    df.attrs["positive_label"] = 1
    return df


def _signature(spec: dict):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec(c["dtype"], c["name"]) for c in spec["numeric"]]
    inputs += [ColSpec("string", c["name"]) for c in spec["categorical"]]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double")]))


def _requirements(*packages: str) -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in packages]


def log_network(spec: dict, layers: list, example: pd.DataFrame, tmp: Path, method="float"):
    """Log the pyfunc model `model` (models-from-code) with its two artifacts.

    Args:
        spec: the preprocessing spec (written as preprocess.json).
        layers: the network's (W, b) pairs (written as weights.npz: W0, b0, W1, ...).
        example: a few raw input rows (the input example).
        tmp: a scratch folder for the two files.
        method: how weights.npz stores them (`model_code.encode_layers`: `float`, or a
            compressed variant's `int8`, `float16`, `prune`).

    Returns:
        MLflow's `ModelInfo` (its `model_uri` is what gets registered).
    """
    return log_network_arrays(spec, model_code.encode_layers(layers, method), example, tmp)


def weight_bytes(arrays: dict) -> int:
    """Bytes of a network's weight arrays (`model_code.encode_layers` output), as stored."""
    return int(sum(a.nbytes for a in arrays.values()))


def network_weight_bytes(layers: list) -> int:
    """Bytes of a float network's (W, b) pairs as weights.npz stores them uncompressed."""
    return weight_bytes(model_code.encode_layers(layers))


def log_network_arrays(spec: dict, arrays: dict, example: pd.DataFrame, tmp: Path):
    """`log_network` with weights.npz's arrays given (`model_code.encode_layers` output)."""
    import mlflow

    (tmp / "preprocess.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    save = np.savez if all(a.dtype == np.float64 for a in arrays.values()) else np.savez_compressed
    save(tmp / "weights.npz", **arrays)
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(model_code.__file__).resolve()),
        artifacts={"preprocess": str(tmp / "preprocess.json"), "weights": str(tmp / "weights.npz")},
        signature=_signature(spec),
        input_example=example,
        pip_requirements=_requirements("mlflow", "numpy", "pandas"),
    )


def _log_baseline(model, spec: dict, example: pd.DataFrame):
    import mlflow

    return mlflow.sklearn.log_model(
        model,
        name="baseline",
        signature=_signature(spec),
        input_example=example,
        pip_requirements=_requirements("mlflow", "scikit-learn", "skops", "numpy", "pandas"),
        # skops refuses unlisted types at load; the imputers store their numpy dtype.
        skops_trusted_types=["numpy.dtype"],
    )


def log_reference(train: pd.DataFrame, columns: list[str], target: str, net, seed: int, tmp: Path):
    """Log the reference sample monitoring compares live traffic with (`REFERENCE_PATH`).

    Args:
        train: the rows the model was fitted on.
        columns: the model's input columns.
        target: the target column.
        net: the fitted `TabularNetModel` (its predictions go in column `prediction`).
        seed: seed of the sample.
        tmp: a scratch folder.
    """
    import mlflow

    sample = train.sample(n=min(len(train), REFERENCE_ROWS), random_state=seed)
    reference = sample[columns + [target]].reset_index(drop=True)
    reference["prediction"] = net.predict(None, reference)
    path = tmp / "reference.parquet"
    reference.to_parquet(path, index=False)
    mlflow.log_artifact(str(path), artifact_path="reference")


def log_params(run_id: str, params: dict) -> None:
    """Log params, skipping those `mlflow run` already logged (MLflow refuses to change them)."""
    import mlflow

    logged = mlflow.MlflowClient().get_run(run_id).data.params
    mlflow.log_params({k: v for k, v in params.items() if k not in logged})


TRAINING_OPTIONS = ("epochs", "batch_size", "learning_rate", "seed", "patience", "l2", "dropout")


def fit_network_on(
    spec: dict, splits: preprocess.Splits, target: str, cfg, **extra
) -> model_code.TabularNetModel:
    """Train the network on the training split (early stopping on the validation split).

    Args:
        spec: the preprocessing spec that turns the raw rows into features.
        splits: the rows.
        target: the 0/1 target column.
        cfg: options with the `TRAINING_OPTIONS` attributes (a `TrainConfig` or
            `FinetuneConfig`).
        **extra: more `train.fit_network` arguments (`hidden`, `initial`, `frozen`).

    Returns:
        The servable model: the spec and the kept epoch's weights (also logged: `best_epoch`).
    """
    x = {name: preprocess.transform(spec, getattr(splits, name)) for name in ("train", "val")}
    y = {name: getattr(splits, name)[target].to_numpy() for name in ("train", "val")}
    options = {name: getattr(cfg, name) for name in TRAINING_OPTIONS}
    fitted = train_step.fit_network(x["train"], y["train"], x["val"], y["val"], **options, **extra)
    log_fitted(fitted)
    return model_code.TabularNetModel().setup(spec, fitted.layers)


def _fit_models(cfg: TrainConfig, spec: dict, splits: preprocess.Splits):
    """Train the network (returned as the servable model) and the sklearn baseline."""
    net = fit_network_on(spec, splits, cfg.target, cfg, hidden=cfg.hidden)
    numeric, categorical = roles(spec)
    base = baseline_step.fit_baseline(
        splits.train, numeric, categorical, cfg.target, cfg.baseline, cfg.seed
    )
    return net, base


def log_fitted(fitted: train_step.Fitted) -> None:
    """Log which epoch's weights were kept (1-based `best_epoch`) and how many ran."""
    import mlflow

    mlflow.log_metrics({"best_epoch": fitted.best_epoch + 1, "epochs_run": fitted.epochs_run})


def roles(spec: dict) -> tuple[list[str], list[str]]:
    """The spec's (numeric, categorical) input column names."""
    return [c["name"] for c in spec["numeric"]], [c["name"] for c in spec["categorical"]]


def _evaluate(net, base, spec: dict, splits: preprocess.Splits, target: str) -> dict:
    """Validation and test metrics of both models (`val_auc`, `baseline_test_auc`, ...)."""
    numeric, categorical = roles(spec)
    metrics = {}
    for part in ("val", "test"):
        rows = getattr(splits, part)
        y = rows[target].to_numpy()
        metrics |= evaluate.metrics(y, net.predict(None, rows), f"{part}_")
        proba = baseline_step.predict_baseline(base, rows, numeric, categorical)
        metrics |= evaluate.metrics(y, proba, f"baseline_{part}_")
    return metrics


def _fit_and_log(cfg: TrainConfig, run_id: str) -> tuple[TrainResult, pd.DataFrame]:
    """Fit and log both models; returns the result and the test split (the gate's rows)."""
    import mlflow

    df = load_data(cfg)
    roles = data_step.column_roles(df, cfg.target)
    splits = preprocess.split(df, cfg.target, cfg.seed)
    spec = preprocess.fit_spec(splits.train, roles, df.attrs.get("positive_label", 1))
    columns = preprocess.input_columns(spec)
    log_params(run_id, cfg.params() | {"n_rows": len(df), "n_features": len(spec["feature_order"])})
    log.info(
        "training on %d rows, %d inputs -> %d features",
        len(df),
        len(columns),
        len(spec["feature_order"]),
    )

    net, base = _fit_models(cfg, spec, splits)
    metrics = _evaluate(net, base, spec, splits, cfg.target)
    mlflow.log_metrics(metrics)
    log.info(
        "val AUC %.4f (baseline %.4f), test AUC %.4f",
        metrics["val_auc"],
        metrics["baseline_val_auc"],
        metrics["test_auc"],
    )

    example = splits.train[columns].head(5)
    with tempfile.TemporaryDirectory() as tmp:
        log_reference(splits.train, columns, cfg.target, net, cfg.seed, Path(tmp))
        info = log_network(spec, net.layers, example, Path(tmp))
    metrics["weight_bytes"] = network_weight_bytes(net.layers)
    mlflow.log_metric("weight_bytes", metrics["weight_bytes"])
    _log_baseline(base, spec, example)
    return TrainResult(run_id=run_id, model_uri=info.model_uri, metrics=metrics), splits.test


def _experiment_id(name: str) -> str:
    """The experiment's id, created if needed (no `set_experiment`: it leaves global state)."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def start_run(experiment: str):
    """The MLflow run to log into: the one `mlflow run` started, the active one, or a new one.

    Args:
        experiment: experiment for a new run (standalone use).

    Returns:
        `mlflow.start_run(...)`'s context manager.
    """
    import mlflow

    experiment_id = None
    if not os.environ.get("MLFLOW_RUN_ID") and mlflow.active_run() is None:
        from mlcycle.core.config import configure_mlflow

        configure_mlflow()
        experiment_id = _experiment_id(experiment)
    return mlflow.start_run(experiment_id=experiment_id)


def baseline_note(metrics: dict, baseline: str) -> str:
    """The network's test-AUC margin over its baseline, for the gate's reason."""
    delta = metrics["test_auc"] - metrics["baseline_test_auc"]
    return f"network vs {baseline} baseline on the test split {delta:+.4f}"


def run(cfg: TrainConfig) -> TrainResult:
    """Run the pipeline in the active/resumed MLflow run, or a new one.

    Args:
        cfg: the run's options.

    Returns:
        The run id, model URI, metrics and the gate's decision.

    Raises:
        DataError: for unusable input data.
    """
    with start_run(cfg.experiment) as active:
        return train_in_run(cfg, active.info.run_id)


def train_in_run(cfg: TrainConfig, run_id: str) -> TrainResult:
    """Train, log, register and gate into the active run `run_id` (`run`'s body; `tune`
    retrains its best trial with it in the search's parent run).

    Raises:
        DataError: for unusable input data.
    """
    import mlflow

    from pipelines.register import register

    result, test = _fit_and_log(cfg, run_id)
    if not cfg.register:
        return result
    tags = {
        "mlcycle.val_auc": f"{result.metrics['val_auc']:.6f}",
        "mlcycle.test_auc": f"{result.metrics['test_auc']:.6f}",
        "mlcycle.reference_uri": f"runs:/{run_id}/{REFERENCE_PATH}",
        "mlcycle.weight_bytes": str(result.metrics["weight_bytes"]),
    }
    decision = register(
        mlflow.MlflowClient(),
        result.model_uri,
        cfg.model_name,
        run_id,
        tags,
        test,
        cfg.target,
        cfg.promote_margin,
        note=baseline_note(result.metrics, cfg.baseline),
    )
    record_gate(decision)
    return TrainResult(
        run_id,
        result.model_uri,
        result.metrics,
        decision.version,
        decision.promoted,
        decision.reason,
    )


def record_gate(decision) -> None:
    """The gate's outcome on the active run: tags and both scores as metrics."""
    import mlflow

    mlflow.set_tags({"mlcycle.model_version": decision.version, "mlcycle.gate": decision.reason})
    scores = {"gate_auc": decision.challenger_auc, "gate_champion_auc": decision.champion_auc}
    mlflow.log_metrics({k: v for k, v in scores.items() if not np.isnan(v)})
