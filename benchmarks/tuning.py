"""Tuning benchmark: the best settings `mlcycle tune` finds against the default settings.

In: a fresh temporary MLflow store and the bundled data. Out: a table on stdout and the
`tuning` section of docs/benchmarks.md: the default training run (the anchor) and the tuned
version, each with its validation and test AUC, the trials and wall time; measured one after
the other in one run, on the same rows and split.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.harness import cli, docs
from benchmarks.harness.store import EXPERIMENT, empty_store

HEADING = "## Tuning (`python -m benchmarks.tuning`)"


def main() -> None:
    parser = cli.parser(__doc__, tracking_uri=False)
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=20, help="most epochs (both sides)")
    parser.add_argument("--trials", type=int, default=8, help="Optuna trials")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    import mlflow

    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig
    from pipelines.tune import TuneConfig, tune

    base = TrainConfig(rows=args.rows, epochs=args.epochs, experiment=EXPERIMENT)
    with tempfile.TemporaryDirectory() as tmp:
        empty_store(Path(tmp))
        started = time.perf_counter()
        default = run(base)
        default_s = time.perf_counter() - started
        started = time.perf_counter()
        tuned = tune(base, TuneConfig(trials=args.trials))
        tuned_s = time.perf_counter() - started
        metrics = mlflow.MlflowClient().get_run(tuned.parent_run_id).data.metrics
    rows = [
        ("default settings (anchor)", default.metrics, 1, default_s),
        (f"tuned ({tuned.best})", metrics, tuned.trials, tuned_s),
    ]
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one run on a shared, noisy "
        f"machine. {args.rows:,} rows, at most {args.epochs} epochs; the tuned version is the "
        "best trial retrained; the gate compares both on the same test rows.",
        "",
        "| settings | val AUC | test AUC | vs default | trials | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for label, m, trials, seconds in rows:
        delta = m["test_auc"] - default.metrics["test_auc"]
        lines.append(
            f"| {label} | {m['val_auc']:.4f} | {m['test_auc']:.4f} | {delta:+.4f} | {trials} "
            f"| {seconds:.0f} |"
        )
    lines += ["", f"Gate on the tuned version: {tuned.reason}"]
    docs.publish("tuning", lines, HEADING, write=not args.no_write)


if __name__ == "__main__":
    main()
