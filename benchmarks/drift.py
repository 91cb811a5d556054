"""Benchmark: the `mlcycle drift` job against a plain full Evidently run on the same data.

In: window sizes (default 10k, 100k, 1M logged rows), a reference size (default 200k rows) and
the bundled drift scenarios. Out: a table of wall time, peak RSS, verdict and drifted columns per
(scenario, size) for both the job and the anchor, the time/memory ratios, and (unless
`--no-write`) the `drift` section of docs/benchmarks.md.

Set-up, all in a temporary folder: an MLflow SQLite store with one registered model version
(a stand-in pyfunc whose signature has the bundled data's 13 input columns; a logistic score as
`prediction`) and its reference sample (`generate(200_000, seed=1)`); one prediction log per
scenario holding max(sizes) rows written in the Contract 2 schema. Scenarios:
- `clean`: `generate(seed=11, drift=0.0)`, the training distribution (expect no drift);
- `drift-0.5`: `generate(seed=12, drift=0.5)`, the generator's knob half-way (expect drift);
- `shift`: training distribution with 4 numeric columns shifted by 2 std, like the acceptance
  test (expect drift, exactly those columns).

Each measurement runs in a fresh Python process (imports included, as a user would run it):
the job is `mlcycle drift --last N --json`; the anchor reads the same N rows (all of them) and
the full reference and runs `DataDriftPreset` on them, then saves the HTML. Peak RSS is the
child's own `VmHWM` plus, for the job, its Evidently worker process's; CPU seconds include the
child's children (the worker).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

from benchmarks.harness import ROOT
from benchmarks.harness.docs import write_section
from benchmarks.harness.processes import children, own_peak_mb, status_kb
from mlcycle.core.prediction_log import ROWS, decode_inputs

HEADING = "## Drift job (`python -m benchmarks.drift`)"
MODEL = "credit-risk-bench"
SHIFTED = ["age", "income", "employment_years", "loan_amount"]
SCENARIOS = {"clean": (11, 0.0), "drift-0.5": (12, 0.5), "shift": (13, 0.0)}
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _score(frame):
    """A deterministic stand-in for the model's probability (monotone in the risk drivers)."""
    import numpy as np

    z = (
        -2.0
        + 2.0 * frame["credit_utilization"].to_numpy()
        + 0.4 * np.minimum(frame["num_late_payments_12m"].to_numpy(), 6)
        + 1.5 * frame["debt_to_income"].to_numpy()
        - 0.3 * np.log(frame["income"].to_numpy() / 52_000)
    )
    return 1 / (1 + np.exp(-z))


def _inputs(frame):
    return frame.drop(columns=["default"])


def _scenario_frame(name: str, n: int):
    from mlcycle.core.synthetic import generate

    seed, drift = SCENARIOS[name]
    frame = _inputs(generate(n, seed=seed, drift=drift))
    if name == "shift":
        for col in SHIFTED:
            frame[col] = frame[col] + 2.0 * frame[col].std()
    return frame


def _setup_store(work: Path, ref_rows: int) -> tuple[str, str]:
    """Register the stand-in model with its reference sample; returns (tracking URI, run id)."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from mlcycle.core.synthetic import generate

    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("bench", artifact_location=(work / "artifacts").as_uri())
    reference = _inputs(generate(ref_rows, seed=1, drift=0.0))
    reference["prediction"] = _score(reference)
    path = work / "reference.parquet"
    reference.to_parquet(path, index=False)

    class StandIn(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return _score(model_input)

    example = reference.drop(columns=["prediction"]).head(5)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifact(str(path), artifact_path="reference")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=StandIn(),
            signature=infer_signature(example, pd.Series(_score(example))),
        )
    mv = mlflow.register_model(info.model_uri, MODEL)
    client.set_model_version_tag(
        MODEL,
        mv.version,
        "mlcycle.reference_uri",
        f"runs:/{run.info.run_id}/reference/reference.parquet",
    )
    client.set_registered_model_alias(MODEL, "production", mv.version)
    return uri, run.info.run_id


def _write_logs(work: Path, sizes: list[int], scenarios: list[str], run_id: str) -> None:
    from monitoring.synthlog import append_rows

    n = max(sizes)
    for name in scenarios:
        frame = _scenario_frame(name, n)
        started = time.time()
        append_rows(
            work / f"log-{name}.db", frame, _score(frame), MODEL, "1", run_id, ts=time.time()
        )
        typer.echo(f"  log {name}: {n} rows written in {time.time() - started:.1f}s", err=True)


def _child(args: list[str], env: dict[str, str]) -> dict:
    """Run `python -m benchmarks.drift <args>` and return its JSON result line."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.drift", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["inner_s"], result["wall_s"] = result["wall_s"], wall
    return result


class _JobRss:
    """Peak RSS of the drift job: its own peak plus its Evidently worker's.

    Its own peak is `VmHWM` (see `own_peak_mb`). The worker (a child whose command line names
    `serve_worker`; not the `git` MLflow forks, whose RSS right after the fork is a copy of the
    job's) is polled every 20 ms for its own `VmHWM` (a cheap read). The sum of the two peaks
    is an upper bound of the two processes' peak together.
    """

    def __init__(self) -> None:
        import threading

        self.worker_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.02):
            for pid in children(me):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if b"serve_worker" in cmdline:
                    self.worker_kb = max(self.worker_kb, status_kb(pid, "VmHWM"))

    def __enter__(self) -> _JobRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self) -> float:
        return own_peak_mb() + self.worker_kb / 1024


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the Evidently worker): on a
    shared machine a steadier figure than wall time."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@app.command("job", hidden=True)
def child_job(last: int = typer.Option(...)) -> None:
    """Child: the real CLI in-process (`mlcycle drift --last N --json`)."""
    from typer.testing import CliRunner

    from mlcycle.cli import app as cli

    started = time.perf_counter()
    with _JobRss() as rss:
        result = CliRunner().invoke(cli, ["drift", "--last", str(last), "--json"])
    wall = time.perf_counter() - started
    if result.exit_code not in (0, 1):
        raise SystemExit(f"drift exited {result.exit_code}: {result.output[-2000:]}")
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    print(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": _cpu_s(),
                "rss_mb": rss.peak_mb(),
                "dataset_drift": summary["dataset_drift"],
                "drift_share": summary["drift_share"],
                "drifted": summary["drifted_columns"],
                "rows_current": summary["rows"]["current"],
                "rows_reference": summary["rows"]["reference"],
            }
        )
    )


@app.command("full", hidden=True)
def child_full(
    log_path: Path = typer.Option(...),
    reference: Path = typer.Option(...),
    last: int = typer.Option(...),
    drift_share: float = typer.Option(0.25),
    html: Path = typer.Option(...),
) -> None:
    """Child: plain full Evidently run on the same last N rows and the whole reference."""
    import sqlite3

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    with sqlite3.connect(log_path) as conn:
        rows = conn.execute(
            f"SELECT inputs FROM {ROWS} ORDER BY id DESC LIMIT ?", (last,)
        ).fetchall()
    current = pd.DataFrame([decode_inputs(r[0]) for r in rows])
    ref = pd.read_parquet(reference).drop(columns=["prediction"])
    cat = [c for c in ref.columns if ref[c].dtype == object]
    num = [c for c in ref.columns if c not in cat]
    definition = DataDefinition(numerical_columns=num, categorical_columns=cat)
    preset = DataDriftPreset(columns=num + cat, drift_share=drift_share)
    snapshot = Report([preset], include_tests=True).run(
        current_data=Dataset.from_pandas(current[num + cat], data_definition=definition),
        reference_data=Dataset.from_pandas(ref[num + cat], data_definition=definition),
    )
    snapshot.save_html(str(html))
    data = snapshot.dict()
    failed = {t["metric_config"]["metric_id"] for t in data["tests"] if t["status"] == "FAIL"}
    drifted, share = [], 0.0
    for metric in data["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share = metric["value"]["share"]
        elif kind == "ValueDrift" and metric["id"] in failed:
            drifted.append(metric["config"]["column"])
    order = {c: i for i, c in enumerate(num + cat)}
    print(
        json.dumps(
            {
                "wall_s": time.perf_counter() - started,
                "cpu_s": _cpu_s(),
                "rss_mb": own_peak_mb(),
                "dataset_drift": share >= drift_share,
                "drift_share": share,
                "drifted": sorted(drifted, key=order.get),
            }
        )
    )


def _fmt_row(r: dict) -> str:
    full = r.get("full")
    job = r["job"]
    same = (
        "-"
        if not full
        else (
            "yes"
            if full["dataset_drift"] == job["dataset_drift"]
            and sorted(full["drifted"]) == sorted(job["drifted"])
            else "**NO**"
        )
    )
    full_t = f"{full['wall_s']:.1f} / {full['cpu_s']:.1f}" if full else "skipped"
    full_m = f"{full['rss_mb']:.0f}" if full else "-"
    ratio_t = f"{full['cpu_s'] / job['cpu_s']:.1f}x" if full else "-"
    ratio_m = f"{full['rss_mb'] / job['rss_mb']:.1f}x" if full else "-"
    verdict = "drift" if job["dataset_drift"] else "no drift"
    cols = ", ".join(job["drifted"]) or "none"
    return (
        f"| {r['scenario']} | {r['rows']:,} | {job['wall_s']:.1f} / {job['cpu_s']:.1f} | "
        f"{job['rss_mb']:.0f} | "
        f"{full_t} | {full_m} | {ratio_t} | {ratio_m} | {verdict} ({job['drift_share']:.2f}) | "
        f"{cols} | {same} |"
    )


def _largest(results: list[dict]) -> str:
    """A clause on the largest window: job vs plain run, or that the plain run was skipped."""
    top = max(r["rows"] for r in results)
    rows = [r for r in results if r["rows"] == top]
    job_wall = [r["job"]["wall_s"] for r in rows]
    job_mb = [r["job"]["rss_mb"] for r in rows]
    clause = (
        f"; at {top:,} rows the job took {min(job_wall):.1f}-{max(job_wall):.1f} s wall and "
        f"at most {max(job_mb):,.0f} MB"
    )
    full = [r["full"] for r in rows if r.get("full")]
    if not full:
        return clause + ", the plain run was skipped (`--full-max`)"
    full_wall = [f["wall_s"] for f in full]
    full_mb = [f["rss_mb"] for f in full]
    return clause + (
        f", the plain run {min(full_wall):.1f}-{max(full_wall):.1f} s and up to "
        f"{max(full_mb):,.0f} MB"
    )


def _table(results: list[dict], ref_rows: int, machine: str, full_max: int) -> str:
    head = (
        f"Machine: {machine}. Reference: {ref_rows:,} rows x 13 input columns; job samples at most "
        f"`MLCYCLE_DRIFT_SAMPLE_ROWS` = 20,000 rows per side. Anchor: plain `DataDriftPreset` on "
        f"all N rows vs the whole reference (run up to {full_max:,} rows). Times are wall / CPU "
        "seconds of a fresh process (start-up and imports included; on a shared, busy machine "
        "the CPU seconds are the steadier figure, and the time ratio uses them; the job's "
        "include its Evidently worker process); RSS is the peak of the process (for the job: "
        "its own plus its worker's, an upper bound of the two together).\n\n"
        "| scenario | logged rows | job s (wall / CPU) | job MB | full s (wall / CPU) | full MB | "
        "time ratio | "
        "memory ratio | job verdict (share) | job drifted columns | same as full |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    note = (
        "\nThe job's cost is flat in the window size (it reads and compares at most 20k rows "
        "per side; the rest is fixed start-up: importing MLflow and Evidently, the registry, "
        f"the MLflow run), while the plain run grows with the rows{_largest(results)}. "
        '"same as full" compares the dataset verdict and the set of drifted columns; the '
        "method and its error bound are in docs/monitoring.md.\n"
    )
    return head + "\n".join(_fmt_row(r) for r in results) + "\n" + note


@app.command("run")
def main(
    sizes: str = typer.Option("10000,100000,1000000", help="Comma-separated window sizes."),
    reference_rows: int = typer.Option(200_000, help="Rows in the reference sample."),
    full_max: int = typer.Option(100_000, help="Run the full Evidently anchor up to this size."),
    scenarios: str = typer.Option(",".join(SCENARIOS), help="Comma-separated scenarios."),
    write: bool = typer.Option(
        True, "--write/--no-write", help="Rewrite the drift section of docs/benchmarks.md."
    ),
    workdir: Path | None = typer.Option(None, help="Keep the store and logs here."),
) -> None:
    """Time the drift job against a full Evidently run at each size and scenario."""
    import platform

    size_list = [int(s) for s in sizes.split(",")]
    names = [s for s in scenarios.split(",") if s]
    work = Path(workdir or tempfile.mkdtemp(prefix="mlcycle-drift-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    typer.echo(f"set-up in {work}", err=True)
    setup = work / "setup.json"
    if setup.exists():  # reuse a kept --workdir: same store, same logs
        uri, run_id = json.loads(setup.read_text())
    else:
        uri, run_id = _setup_store(work, reference_rows)
        setup.write_text(json.dumps([uri, run_id]))
    _write_logs(work, size_list, [n for n in names if not (work / f"log-{n}.db").exists()], run_id)
    env_base = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLCYCLE_MODEL_NAME": MODEL,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    results = []
    for name in names:
        log_path = work / f"log-{name}.db"
        for n in size_list:
            env = {
                **env_base,
                "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{log_path}",
                "MLCYCLE_REPORTS_DIR": str(work / f"reports-{name}-{n}"),
            }
            job = _child(["job", "--last", str(n)], env)
            full = None
            if n <= full_max:
                full = _child(
                    [
                        "full",
                        "--log-path",
                        str(log_path),
                        "--reference",
                        str(work / "reference.parquet"),
                        "--last",
                        str(n),
                        "--html",
                        str(work / f"full-{name}-{n}.html"),
                    ],
                    env,
                )
            results.append({"scenario": name, "rows": n, "job": job, "full": full})
            typer.echo(_fmt_row(results[-1]), err=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average at the end {load} (shared machine)"
    )
    text = _table(results, reference_rows, machine, full_max)
    typer.echo(text)
    (work / "results.json").write_text(json.dumps(results, indent=2))
    if write:
        write_section("drift", text, HEADING)


if __name__ == "__main__":
    if len(sys.argv) == 1 or sys.argv[1].startswith("-"):
        sys.argv.insert(1, "run")
    app()
