"""Batch-scoring engines: `mlcycle score` locally and `--engine spark`, rows/s on the same rows.

In: a small trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`), synthetic CSVs of `--sizes` rows. Out: a table on stdout and in the
`batch` section of docs/benchmarks.md. Each point runs `mlcycle score IN.csv` in a fresh
process with each engine: the local engine (the anchor: the fast path streaming one file) and
Spark (`mlflow.pyfunc.spark_udf` on `--master`, default `local[*]`, writing a Parquet folder).
rows/s is the command's own figure (local: reading, scoring and writing after the model is
loaded; Spark: session start, model distribution, scoring, writing and counting the output,
so small inputs mostly measure Spark's fixed cost); wall s is the whole process. Both outputs
must hold every row with the same mean probability (to 1e-9), or the run fails.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, cli, docs
from benchmarks.harness.store import use_store

HEADING = "## Batch scoring engines (`python -m benchmarks.batch`)"
_SCORED = re.compile(r"scored ([\d,]+) rows .* in ([\d.]+)s")


def run_engine(csv: Path, out: Path, engine: str, master: str) -> dict:
    """One `mlcycle score` process: rows, its own seconds, wall seconds."""
    cmd = [sys.executable, "-m", "mlcycle", "score", str(csv), "-o", str(out)]
    if engine == "spark":
        cmd += ["--engine", "spark", "--master", master]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env=dict(os.environ, TQDM_DISABLE="1"))  # fmt: skip
    wall = time.perf_counter() - started
    found = _SCORED.search(proc.stdout)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"mlcycle score --engine {engine} failed:\n{proc.stderr[-3000:]}")
    return {"rows": int(found[1].replace(",", "")), "seconds": float(found[2]), "wall": wall}


def mean_probability(path: Path) -> tuple[int, float]:
    """Rows and mean `probability` of a Parquet file or folder."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pq.read_table(str(path), columns=["probability"])["probability"]
    return len(column), pc.mean(column).as_py()


def point(root: Path, n: int, master: str) -> str:
    """Both engines on one CSV of `n` rows; the table row."""
    from mlcycle.core import synthetic

    csv = root / f"in-{n}.csv"
    synthetic.generate(n, seed=3).drop(columns=["default"]).to_csv(csv, index=False)
    local = run_engine(csv, root / "local.parquet", "local", master)
    spark = run_engine(csv, root / "spark.parquet", "spark", master)
    (rows_a, mean_a), (rows_b, mean_b) = (
        mean_probability(root / "local.parquet"),
        mean_probability(root / "spark.parquet"),
    )
    if rows_a != rows_b or rows_a != n or abs(mean_a - mean_b) > 1e-9:
        raise RuntimeError(f"engines disagree: {rows_a} / {rows_b} rows, means {mean_a} {mean_b}")
    rate_l, rate_s = local["rows"] / local["seconds"], spark["rows"] / spark["seconds"]
    csv.unlink()
    shutil.rmtree(root / "spark.parquet", ignore_errors=True)
    return (
        f"| {n:,} | {rate_l:,.0f} | {local['wall']:.1f} | {rate_s:,.0f} | {spark['wall']:.1f} "
        f"| {rate_l / rate_s:.1f}x | {abs(mean_a - mean_b):.1e} |"
    )


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="input rows, comma list")
    parser.add_argument("--master", default="local[*]", help="Spark master URL")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    root = Path(tempfile.mkdtemp(prefix="mlcycle-batch-bench-"))
    try:
        use_store(root, args.tracking_uri)
        lines = [
            f"Machine: {os.cpu_count()} cores, {platform.platform()}; load average at start "
            f"{load}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One fresh "
            f"`mlcycle score IN.csv` process per engine and size; Spark on `{args.master}`. "
            "rows/s as each command reports it (Spark's includes its session start and model "
            "distribution); wall s = the whole process, model loading included. A shared "
            "machine makes these noisy (see the load average): read the ratio within a row.",
            "",
            "| input rows | local rows/s | local wall s | spark rows/s | spark wall s "
            "| local / spark | mean diff |",
            "|---|---|---|---|---|---|---|",
        ]
        for n in (int(x) for x in args.sizes.split(",")):
            row = point(root, n, args.master)
            print(row, flush=True)
            lines.append(row)
        report = "\n".join(lines)
        print(report)
        if not args.no_write:
            docs.write_section("batch", report, HEADING)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
