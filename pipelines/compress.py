"""Compression: a smaller variant of a registered version, registered beside it and gated on it.

In: a registered version (`production` or a number), a method (`int8`: per-output-channel int8
weights; `float16`; `prune`: magnitude pruning to a sparsity target, stored sparse) and the
labelled rows to judge it on: by default the parent's own test split, rebuilt from its run's
params (`data_source`, `target`, `rows`, `seed`: the same CSV or synthetic table and the same
seeded split training used), or any labelled CSV given. Out: one MLflow run (params, both AUCs,
both per-row batch times) and a new version of the same model: the same `model_code`, the same
preprocess.json, a new weights.npz (`model_code.encode_layers`), tagged with its lineage
(`mlcycle.parent_version`, `mlcycle.compression.method`, `mlcycle.weight_bytes`,
`mlcycle.artifact_bytes`, `mlcycle.parent_weight_bytes`) and the compression gate's outcome
(`mlcycle.gate*`). The gate passes when the variant's AUC on the rows is at most `MAX_AUC_DROP`
below the parent's and it is not slower per row on the same batch; a variant that fails stays
in Staging with the reason. A passing variant is promoted only when asked (`promote=True`) and
only over its parent in production: compression must not silently replace a newer champion.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.core import registry
from pipelines import data as data_step
from pipelines import evaluate, model_code, pipeline, preprocess
from pipelines.settings import MODEL_NAME, TrainConfig

log = logging.getLogger(__name__)

MAX_AUC_DROP = 0.002
# Per-row batch time may exceed the parent's by this factor: two timings of the same code on a
# shared machine differ by a few percent, which says nothing about the variant.
MAX_SLOWDOWN = 1.05
BATCH_ROWS = 20_000
REPEATS = 7


@dataclass(frozen=True)
class CompressConfig:
    """Options of one compression run (see `mlcycle compress --help`).

    Attributes:
        model_name: registered model name.
        version: the parent: `production` or a version number.
        method: `int8`, `float16` or `prune`.
        sparsity: with `prune`, the share of each weight matrix set to zero.
        data: a labelled CSV to gate on; empty: the parent's test split.
        target: the CSV's 0/1 target column (with `data`).
        promote: promote a variant that passes over its parent in production.
        experiment: MLflow experiment for standalone runs.
    """

    model_name: str = MODEL_NAME
    version: str = "production"
    method: str = "int8"
    sparsity: float = 0.5
    data: str = ""
    target: str = "default"
    promote: bool = False
    experiment: str = MODEL_NAME


@dataclass(frozen=True)
class CompressResult:
    """What one compression run produced (`passed`: the gate; `reason`: its one line)."""

    run_id: str
    version: str
    parent_version: str
    passed: bool
    promoted: bool
    reason: str
    sizes: dict


def holdout(client, name: str, version: str, cfg: CompressConfig) -> tuple[pd.DataFrame, str]:
    """The labelled rows to judge the variant on, and their target column.

    The CSV in `cfg.data` if given, else the parent's test split rebuilt from the params of
    the run that logged it: the same table and the same seeded stratified split as training.

    Raises:
        DataError: if the rows cannot be had (a run without those params, a moved CSV).
    """
    if cfg.data:
        return data_step.load_table(cfg.data, cfg.target), cfg.target
    run_id = client.get_model_version(name, version).run_id
    params = client.get_run(run_id).data.params
    if not {"data_source", "target", "seed"} <= params.keys():
        raise data_step.DataError(
            f"{name} v{version} was not logged by a training run (no data_source/seed params): "
            "give the labelled rows to gate on with --data"
        )
    source = params["data_source"]
    train_cfg = TrainConfig(
        data="" if source == "synthetic" else source,
        target=params["target"],
        rows=int(params.get("rows", TrainConfig.rows)),
        seed=int(params["seed"]),
    )
    df = pipeline.load_data(train_cfg)
    return preprocess.split(df, train_cfg.target, train_cfg.seed).test, train_cfg.target


def _columns(spec: dict, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Rows as the fast path takes them (`predict_columns`), as `mlcycle score` passes them."""
    columns = {c["name"]: rows[c["name"]].to_numpy(np.float64) for c in spec["numeric"]}
    for c in spec["categorical"]:
        values = rows[c["name"]]
        columns[c["name"]] = values.where(values.isna(), values.astype(str)).to_numpy(object)
    return columns


def row_times(models: list, spec: dict, rows: pd.DataFrame) -> list[float]:
    """Median seconds per row of each model on the same batch (`REPEATS` interleaved runs)."""
    batch = rows.sample(n=BATCH_ROWS, replace=True, random_state=0).reset_index(drop=True)
    columns = _columns(spec, batch)
    samples: list[list[float]] = [[] for _ in models]
    for _ in range(REPEATS):
        for model, times in zip(models, samples, strict=True):
            start = time.perf_counter()
            model.predict_columns(columns)
            times.append(time.perf_counter() - start)
    return [statistics.median(t) / len(batch) for t in samples]


def judge(parent, variant, rows: pd.DataFrame, target: str) -> tuple[bool, str, dict]:
    """The compression gate: (passed, reason, figures) for the variant against its parent."""
    y = rows[target].to_numpy().astype(int)
    auc = [evaluate.metrics(y, m.predict(None, rows))["auc"] for m in (parent, variant)]
    per_row = row_times([parent, variant], parent.spec, rows)
    figures = {
        "parent_auc": auc[0],
        "auc": auc[1],
        "auc_drop": auc[0] - auc[1],
        "parent_row_us": per_row[0] * 1e6,
        "row_us": per_row[1] * 1e6,
    }
    problems = []
    if math.isnan(figures["auc_drop"]) or figures["auc_drop"] > MAX_AUC_DROP:
        problems.append(f"AUC drop {figures['auc_drop']:.4f} > {MAX_AUC_DROP}")
    if per_row[1] > per_row[0] * MAX_SLOWDOWN:
        problems.append(f"slower per row ({per_row[1] / per_row[0]:.2f}x the parent's time)")
    reason = (
        f"AUC {auc[1]:.4f} vs parent {auc[0]:.4f} (drop {figures['auc_drop']:+.4f}), "
        f"{figures['row_us']:.2f} vs {figures['parent_row_us']:.2f} us/row on {len(rows)} rows"
    )
    verdict = "failed: " + "; ".join(problems) if problems else "passed"
    return not problems, f"{verdict}; {reason}", figures


def _artifact_bytes(model_uri: str) -> int:
    """Bytes of the logged model's files that are not code or metadata (weights, mostly)."""
    import mlflow

    root = mlflow.artifacts.download_artifacts(model_uri)
    skip = (".py", ".yaml", ".txt", ".json", "MLmodel")
    return sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(root)
        for f in files
        if not f.endswith(skip)
    )


def _log_variant(parent, cfg: CompressConfig, rows: pd.DataFrame):
    """Log the variant's model; returns (ModelInfo, the variant loaded back, its arrays)."""
    import mlflow

    arrays = model_code.encode_layers(parent.layers, cfg.method, cfg.sparsity)
    columns = preprocess.input_columns(parent.spec)
    with tempfile.TemporaryDirectory() as tmp:
        info = pipeline.log_network_arrays(parent.spec, arrays, rows[columns].head(5), Path(tmp))
    variant = mlflow.pyfunc.load_model(info.model_uri).unwrap_python_model()
    return info, variant, arrays


def compress(cfg: CompressConfig) -> CompressResult:
    """Compress a registered version, register the variant, gate it against its parent.

    Args:
        cfg: the options.

    Returns:
        The run, the new version, the gate's outcome and the sizes.

    Raises:
        DataError: for an unknown or non-network parent, or rows that cannot be had.
        ValueError: for an unknown method or a bad sparsity.
    """
    import mlflow

    from pipelines.finetune import load_parent, resolve_parent
    from pipelines.register import add_version

    client = mlflow.MlflowClient()
    name = cfg.model_name
    parent_version = resolve_parent(client, name, cfg.version)
    model_code.encode_layers([], cfg.method, cfg.sparsity)  # bad options fail before any run
    with pipeline.start_run(cfg.experiment) as active:
        run_id = active.info.run_id
        parent = load_parent(name, parent_version)
        rows, target = holdout(client, name, parent_version, cfg)
        info, variant, arrays = _log_variant(parent, cfg, rows)
        passed, reason, figures = judge(parent, variant, rows, target)
        sizes = {
            "weight_bytes": pipeline.weight_bytes(arrays),
            "parent_weight_bytes": pipeline.network_weight_bytes(parent.layers),
            "artifact_bytes": _artifact_bytes(info.model_uri),
            "parent_artifact_bytes": _artifact_bytes(f"models:/{name}/{parent_version}"),
        }
        params = {"parent_version": parent_version, "method": cfg.method, "gate_rows": len(rows)}
        if cfg.method == "prune":
            params["sparsity"] = cfg.sparsity
        pipeline.log_params(run_id, params)
        mlflow.log_metrics(figures | sizes)
        tags = {
            "mlcycle.parent_version": parent_version,
            "mlcycle.compression.method": cfg.method,
            "mlcycle.compression.sparsity": str(cfg.sparsity) if cfg.method == "prune" else "",
            **{f"mlcycle.{k}": str(v) for k, v in sizes.items()},
        }
        tags = {k: v for k, v in tags.items() if v}
        why = f"{cfg.method} variant of v{parent_version} from run {run_id}"
        version = add_version(client, info.model_uri, name, run_id, tags, why)
        promoted = _record(client, name, version, parent_version, passed, reason, figures, cfg)
        mlflow.set_tags({"mlcycle.model_version": version, "mlcycle.gate": reason})
    log.info("%s v%s (%s of v%s): %s", name, version, cfg.method, parent_version, reason)
    return CompressResult(run_id, version, parent_version, passed, promoted, reason, sizes)


def _record(client, name, version, parent_version, passed, reason, figures, cfg) -> bool:
    """Tag the gate's outcome; promote a passing variant when asked. Returns: promoted."""
    tags = {
        "mlcycle.gate": f"compression gate {reason}",
        "mlcycle.gate_decision": "passed" if passed else "kept",
        "mlcycle.gate_auc": f"{figures['auc']:.6f}",
        "mlcycle.gate_parent_auc": f"{figures['parent_auc']:.6f}",
        "mlcycle.gate_row_us": f"{figures['row_us']:.4f}",
        "mlcycle.gate_parent_row_us": f"{figures['parent_row_us']:.4f}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    details = {"decision": tags["mlcycle.gate_decision"], "auc": round(figures["auc"], 4)}
    if not passed:
        registry.promote(
            name, version, "staging", tags["mlcycle.gate"], client=client, details=details
        )
        return False
    production = registry.resolve_production(client, name).version
    if not cfg.promote or production != parent_version:
        if cfg.promote:
            log.warning("not promoting v%s: production is v%s, not its parent", version, production)
        return False
    registry.promote(
        name, version, "production", tags["mlcycle.gate"], client=client, details=details
    )
    client.set_model_version_tag(name, version, "mlcycle.gate_decision", "promoted")
    return True
