"""Batch-scoring benchmark: `mlcycle score` rows/s and peak memory at two input sizes.

In: a small trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`), synthetic CSVs of the bundled data's width. Out: a table on stdout
and the `scoring` section of docs/benchmarks.md. The anchor, measured in the same run, is a
plain numpy forward pass of the same weights over an already-built feature matrix (no CSV, no
preprocessing): the ceiling for the model call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
from serving.scoring import score_file
def peak_mb():  # VmHWM: this process's peak RSS (ru_maxrss would include the parent's, via exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
t = time.perf_counter()
rows, seconds, label = score_file(sys.argv[1], sys.argv[2])
print(json.dumps({"rows": rows, "seconds": seconds, "wall": time.perf_counter() - t,
                  "peak_mb": peak_mb()}))
"""


def _serving_bench():
    """benchmarks/serving.py as a module (its store and docs helpers are shared)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "benchmarks/serving.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numpy_anchor(n: int) -> float:
    """Rows/s of the model's bare numpy forward pass on a prepared feature matrix."""
    import mlflow
    import numpy as np

    model = mlflow.pyfunc.load_model("models:/credit-risk@production").unwrap_python_model()
    layers = model._layers  # the same float64 weights the fast path uses
    x = np.random.default_rng(0).normal(size=(n, layers[0][0].shape[0]))
    started = time.perf_counter()
    for i in range(0, n, 16_384):  # same slicing as `mlcycle score`: cache-sized matrices
        h = x[i : i + 16_384]
        for w, b in layers[:-1]:
            h = np.maximum(h @ w + b, 0.0)
        w, b = layers[-1]
        _ = 1.0 / (1.0 + np.exp(-(h @ w + b)))
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000", help="rows per input, comma list")
    parser.add_argument("--tracking-uri", default="", help="use this store (no training)")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = Path(tempfile.mkdtemp(prefix="mlcycle-score-bench-"))
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    else:
        _serving_bench().train_store(root)
    from pipelines import data

    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. `mlcycle score IN.csv -o "
        "OUT.parquet` in a fresh process (model load excluded from rows/s, included in "
        "peak RSS); anchor = numpy forward pass of the same weights on a ready matrix.",
        "",
        "| input rows | CSV MB | rows/s | peak RSS MB | numpy forward rows/s | numpy / score |",
        "|---|---|---|---|---|---|",
    ]
    for n in (int(x) for x in args.sizes.split(",")):
        csv = root / f"in-{n}.csv"
        data.generate(n, seed=3).drop(columns=["default"]).to_csv(csv, index=False)
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(csv), str(root / f"o-{n}.pq")],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=dict(os.environ, TQDM_DISABLE="1"),
        )
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rate = res["rows"] / res["seconds"]
        anchor = numpy_anchor(n)
        row = (
            f"| {n:,} | {csv.stat().st_size / 1e6:.0f} | {rate:,.0f} | {res['peak_mb']:.0f} "
            f"| {anchor:,.0f} | {anchor / rate:.1f}x |"
        )
        print(row, flush=True)
        lines.append(row)
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        _serving_bench().write_section(ROOT / "docs" / "benchmarks.md", "scoring", report)


if __name__ == "__main__":
    main()
