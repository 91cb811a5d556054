"""Hyper-parameter search: Optuna trials as nested MLflow runs, then the best one retrained.

In: a `TrainConfig` (the data, split seed, most epochs and patience; its network options are
what the search replaces) and a `TuneConfig` (trials, Optuna storage, study, parent run). Out:
one parent MLflow run (the one `mlflow run` started, the active one or a new one) holding one
nested run per trial (its params, per-epoch metrics and `val_auc`); then, in the parent run, the
best trial's settings retrained by the training pipeline (`pipeline.train_in_run`: the model,
its reference sample, a registered version and the champion/challenger gate on the test split,
which no trial ever scores).

Trials maximise the validation AUC over hidden sizes (1 to 3 layers), learning rate, batch size,
L2, dropout and epochs (early stopping on the validation AUC ends them sooner). Several processes
or machines share one search by giving the same storage (a PostgreSQL URL) and parent run: the
first process (no `parent_run_id`) creates the parent run and, after its trials, retrains and
gates the best trial in the whole study; workers (`parent_run_id` given) only add trials.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipelines import data as data_step
from pipelines import evaluate, pipeline, preprocess
from pipelines.settings import TrainConfig

log = logging.getLogger(__name__)

HIDDEN_SIZES = (16, 32, 64, 128, 256)
BATCH_SIZES = (64, 128, 256, 512)


@dataclass(frozen=True)
class TuneConfig:
    """Options of the search (see `mlcycle tune --help`).

    Attributes:
        trials: trials this process runs.
        storage: Optuna storage URL (`postgresql://...`, `sqlite:///...`); empty: in memory.
        study_name: the Optuna study; empty: `tune-<parent run id>`.
        parent_run_id: join this parent run as a worker (trials only); empty: be the parent.
    """

    trials: int = 20
    storage: str = ""
    study_name: str = ""
    parent_run_id: str = ""


@dataclass(frozen=True)
class TuneResult:
    """The search's outcome: the parent run, the study, its finished trials and best trial;
    `version`, `promoted` and `reason` from the retrained best trial's gate (empty for a
    worker)."""

    parent_run_id: str
    study_name: str
    trials: int
    best: dict | None
    best_value: float
    version: str = ""
    promoted: bool = False
    reason: str = ""


def suggest(trial, base: TrainConfig) -> TrainConfig:
    """The training options one trial tries (`trial` may be an `optuna.trial.FixedTrial`)."""
    layers = trial.suggest_int("layers", 1, 3)
    hidden = tuple(trial.suggest_categorical(f"hidden_{i}", HIDDEN_SIZES) for i in range(layers))
    return replace(
        base,
        hidden=hidden,
        learning_rate=trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
        l2=trial.suggest_float("l2", 1e-5, 1e-2, log=True),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        epochs=trial.suggest_int("epochs", max(1, base.epochs // 4), base.epochs),
    )


def _study(cfg: TuneConfig, name: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.create_study(
            storage=cfg.storage or None,
            study_name=name,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(),
        )
    except (ImportError, ValueError) as exc:  # a bad URL, a missing database driver
        raise ValueError(f"cannot open Optuna storage: {exc}") from exc


def _objective(base: TrainConfig, splits: preprocess.Splits, spec: dict, parent) -> Callable:
    """The trial function: train one nested run, return its validation AUC."""
    import mlflow

    worker = f"{socket.gethostname()}:{os.getpid()}"  # which process ran a trial

    def objective(trial) -> float:
        cfg = suggest(trial, base)
        with mlflow.start_run(
            experiment_id=parent.info.experiment_id,
            parent_run_id=parent.info.run_id,
            nested=True,
            run_name=f"trial-{trial.number}",
        ) as run:
            params = cfg.params()
            mlflow.log_params(params | {"trial": trial.number, "study": trial.study.study_name})
            net = pipeline.fit_network_on(spec, splits, base.target, cfg, hidden=cfg.hidden)
            y = splits.val[base.target].to_numpy()
            auc = evaluate.metrics(y, net.predict(None, splits.val))["auc"]
            mlflow.log_metric("val_auc", auc)
            mlflow.set_tag("mlcycle.tune_worker", worker)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            trial.set_user_attr("worker", worker)
        return auc

    return objective


def _prepare(base: TrainConfig) -> tuple[preprocess.Splits, dict]:
    """The split and preprocessing spec every trial shares (training's, same seed)."""
    df = pipeline.load_data(base)
    splits = preprocess.split(df, base.target, base.seed)
    spec = preprocess.fit_spec(
        splits.train, data_step.column_roles(df, base.target), df.attrs.get("positive_label", 1)
    )
    return splits, spec


def _search(base: TrainConfig, cfg: TuneConfig, parent) -> object:
    """Run this process's trials under `parent` with a progress bar; returns the study."""
    from tqdm import tqdm

    study = _study(cfg, cfg.study_name or f"tune-{parent.info.run_id}")
    splits, spec = _prepare(base)
    objective = _objective(base, splits, spec, parent)
    with tqdm(total=cfg.trials, desc="trials", unit="trial") as bar:

        def advance(study, trial) -> None:
            bar.update()
            if study.best_trials:
                bar.set_postfix(best_val_auc=f"{study.best_value:.4f}")

        study.optimize(objective, n_trials=cfg.trials, callbacks=[advance], catch=(ValueError,))
    return study


def tune(base: TrainConfig, cfg: TuneConfig) -> TuneResult:
    """Search, then (unless a worker) retrain the best trial, register it and gate it.

    Args:
        base: the data and training options the trials start from.
        cfg: the search's options.

    Returns:
        The parent run, the study, the best trial and the gate's outcome.

    Raises:
        DataError: for unusable input data.
        ValueError: for a storage that cannot be opened, a worker without a shared storage, or
            a parent run that is not running.
    """
    import mlflow
    import optuna

    if cfg.parent_run_id:
        if not cfg.storage:
            raise ValueError("a worker (--parent-run-id) needs the search's shared --storage")
        parent = mlflow.MlflowClient().get_run(cfg.parent_run_id)
        study = _search(base, cfg, parent)
        return _result(study, parent.info.run_id)
    with pipeline.start_run(base.experiment) as parent:
        study = _search(base, cfg, parent)
        mlflow.set_tags({"mlcycle.study": study.study_name})
        if not _finished(study):
            raise ValueError(f"no trial of study {study.study_name!r} finished")
        best = suggest(optuna.trial.FixedTrial(study.best_params), base)
        mlflow.log_metric("best_trial_val_auc", study.best_value)
        mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
        log.info("retraining the best of %d trials: %s", len(_finished(study)), study.best_params)
        trained = pipeline.train_in_run(best, parent.info.run_id)
    return replace(
        _result(study, parent.info.run_id),
        version=trained.version or "",
        promoted=trained.promoted,
        reason=trained.reason,
    )


def _finished(study) -> list:
    import optuna

    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def _result(study, parent_run_id: str) -> TuneResult:
    done = _finished(study)
    best = study.best_params if done else None
    return TuneResult(
        parent_run_id, study.study_name, len(done), best, study.best_value if done else float("nan")
    )
