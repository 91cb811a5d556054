"""Batch-scoring benchmark: `mlcycle score` and large `/invocations` batches, rows/s and memory.

In: a small trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`), synthetic data of the bundled data's width. Out: two tables on
stdout and in the `scoring` section of docs/benchmarks.md, and a summary line against the
issue-5 target (500k rows/s). Measured in one run:
  1. `mlcycle score IN.csv -o OUT.parquet` in a fresh process at two input sizes; anchor: a
     plain numpy forward pass of the same weights over an already-built feature matrix.
  2. `/invocations` of `mlcycle serve` (default layout; validation, prediction log and metrics
     on) with large batches in each MLflow scoring format (`dataframe_split`,
     `dataframe_records`, columnar `inputs`, `text/csv`); bodies are serialized once before
     timing and sent over keep-alive connections from a few client threads; the server's peak
     RSS per point; afterwards the prediction log must hold every acknowledged row. Anchor:
     `mlflow models serve -w <workers>` on the same registered model with the same bodies.
Loopback only; every load is bounded by a duration and a request cap; servers are stopped in
`finally`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import ROOT, cli, docs
from benchmarks.harness.server import (
    Server,
    mlcycle_serve_command,
    mlflow_serve_command,
    server_env,
)
from benchmarks.harness.store import MODEL_URI, use_store
from mlcycle.core.prediction_log import BATCHES, ROWS

TARGET = 500_000  # rows/s, issue 5
HEADING = "## Batch scoring (`python -m benchmarks.scoring`)"
# MLflow scoring-protocol formats: name -> Content-Type. `mlflow models serve` accepts all four.
FORMATS = {
    "dataframe_split": "application/json",
    "dataframe_records": "application/json",
    "inputs": "application/json",
    "csv": "text/csv",
}
FULL = {
    "sizes": "200000,1000000",
    "batch_rows": "10000,50000",
    "formats": ",".join(FORMATS),
    "seconds": 6.0,
    "mlflow_requests": 4,
}
QUICK = {
    "sizes": "200000",
    "batch_rows": "10000,50000",
    "formats": "dataframe_split,csv",
    "seconds": 2.0,
    "mlflow_requests": 2,
}
SERVER_BODY_LIMIT = 16 * 1024 * 1024  # serving's default MLCYCLE_MAX_BODY_BYTES


# ---------------------------------------------------------------------------------------------
# Part 1: `mlcycle score`


def numpy_anchor(n: int) -> float:
    """Rows/s of the model's bare numpy forward pass on a prepared feature matrix."""
    import mlflow
    import numpy as np

    model = mlflow.pyfunc.load_model(MODEL_URI).unwrap_python_model()
    layers = model.layers  # the same float64 weights the fast path uses
    x = np.random.default_rng(0).normal(size=(n, layers[0][0].shape[0]))
    started = time.perf_counter()
    for i in range(0, n, 16_384):  # same slicing as `mlcycle score`: cache-sized matrices
        h = x[i : i + 16_384]
        for w, b in layers[:-1]:
            h = np.maximum(h @ w + b, 0.0)
        w, b = layers[-1]
        _ = 1.0 / (1.0 + np.exp(-(h @ w + b)))
    return n / (time.perf_counter() - started)


def score_table(root: Path, sizes: list[int]) -> tuple[list[str], float]:
    """Run `mlcycle score` on CSVs of `sizes` rows; returns the table lines and the best rows/s."""
    from mlcycle.core import synthetic

    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. `mlcycle score IN.csv -o "
        "OUT.parquet` in a fresh process (model load excluded from rows/s, included in "
        "peak RSS); anchor = numpy forward pass of the same weights on a ready matrix.",
        "",
        "| input rows | CSV MB | rows/s | peak RSS MB | numpy forward rows/s | numpy / score |",
        "|---|---|---|---|---|---|",
    ]
    best = 0.0
    for n in sizes:
        csv = root / f"in-{n}.csv"
        synthetic.generate(n, seed=3).drop(columns=["default"]).to_csv(csv, index=False)
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.score_process", str(csv), str(root / f"o-{n}.pq")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=dict(os.environ, TQDM_DISABLE="1"),
            timeout=900,
        )
        if out.returncode != 0:
            raise RuntimeError(f"mlcycle score on {n:,} rows failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rate = res["rows"] / res["seconds"]
        best = max(best, rate)
        anchor = numpy_anchor(n)
        row = (
            f"| {n:,} | {csv.stat().st_size / 1e6:.0f} | {rate:,.0f} | {res['peak_mb']:.0f} "
            f"| {anchor:,.0f} | {anchor / rate:.1f}x |"
        )
        print(row, flush=True)
        lines.append(row)
        csv.unlink()
        (root / f"o-{n}.pq").unlink(missing_ok=True)
    return lines, best


# ---------------------------------------------------------------------------------------------
# Part 2: `/invocations` with large batches


def input_frame(n: int):
    """`n` rows of the bundled data: only the served model's input columns, in schema order."""
    import mlflow

    from mlcycle.core import synthetic

    info = mlflow.models.get_model_info(MODEL_URI)
    names = info.signature.inputs.input_names()
    return synthetic.generate(n, seed=7)[names]


def build_body(fmt: str, frame) -> bytes:
    """One request body of `frame` in MLflow scoring format `fmt`, serialized with orjson."""
    import orjson

    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    cols = {c: frame[c].tolist() for c in frame.columns}  # native Python values
    if fmt == "inputs":
        return orjson.dumps({"inputs": cols})
    rows = zip(*cols.values(), strict=True)
    if fmt == "dataframe_split":
        return orjson.dumps(
            {"dataframe_split": {"columns": list(cols), "data": [list(r) for r in rows]}}
        )
    if fmt == "dataframe_records":
        names = list(cols)
        return orjson.dumps({"dataframe_records": [dict(zip(names, r, strict=True)) for r in rows]})
    raise ValueError(f"unknown format {fmt!r}: choose from {', '.join(FORMATS)}")


@dataclass
class Load:
    """Bounds and results of one load point (one server, one body)."""

    seconds: float
    min_requests: int
    max_requests: int
    max_errors: int = 3
    issued: int = 0
    ok_rows: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0
    deadline: float = 0.0
    sample: list | None = None  # the predictions answered to the first body
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        """The number of the next request a client thread may send, or None to stop."""
        with self.lock:
            if self.issued >= self.max_requests or len(self.errors) >= self.max_errors:
                return None
            if self.issued >= self.min_requests and time.perf_counter() >= self.deadline:
                return None
            self.issued += 1
            return self.issued - 1

    def record(self, latency: float, rows: int, error: str | None, preds=None) -> None:
        with self.lock:
            if error is None:
                self.ok_rows += rows
                self.latencies.append(latency)
                if preds is not None and self.sample is None:
                    self.sample = preds
            else:
                self.errors.append(error)

    @property
    def rate(self) -> float:
        return self.ok_rows / self.wall if self.wall else 0.0

    def pct(self, q: float) -> float:
        """Request latency percentile in ms (NaN without answers)."""
        import numpy as np

        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")


def _check(status: int, data: bytes, n_rows: int) -> tuple[str | None, list | None]:
    """`(None, predictions)` for a 200 with `n_rows` predictions, else `(what was wrong, None)`."""
    import orjson

    if status != 200:
        return f"HTTP {status}: {data[:300].decode('utf-8', 'replace')}", None
    try:
        preds = orjson.loads(data)["predictions"]
        got = len(preds)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        return f"HTTP 200 without a predictions list ({exc}): {data[:200]!r}", None
    if got != n_rows:
        return f"HTTP 200 with {got} predictions for {n_rows} rows", None
    return None, preds


def _client(port: int, bodies: list, ctype: str, n_rows: int, timeout: float, load: Load) -> None:
    """Send `bodies` in turn over one keep-alive connection while `load` allows; record answers."""
    conn: http.client.HTTPConnection | None = None
    headers = {"Content-Type": ctype}
    try:
        while (i := load.take()) is not None:
            body = bodies[i % len(bodies)]
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            started = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                load.record(0.0, 0, f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = None
                continue
            latency = time.perf_counter() - started
            error, preds = _check(resp.status, data, n_rows)
            load.record(latency, n_rows, error, preds if i % len(bodies) == 0 else None)
            if resp.will_close:
                conn.close()
                conn = None
    finally:
        if conn is not None:
            conn.close()


def run_load(port: int, bodies: list, ctype: str, n_rows: int, threads: int, load: Load, timeout):
    """Drive `load` with `threads` client threads sending `bodies` in turn; sets its wall time."""
    workers = [
        threading.Thread(target=_client, args=(port, bodies, ctype, n_rows, timeout, load))
        for _ in range(threads)
    ]
    started = time.perf_counter()
    load.deadline = started + load.seconds
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    load.wall = time.perf_counter() - started
    return load


def measure_server(
    server: Server, bodies: dict, args, min_requests: int, max_requests: int
) -> tuple[dict, int]:
    """Warm `server` up, then load it with every body.

    Returns:
        `({(fmt, rows): {"load", "before_mb", "peak_mb", "after_mb"}}, rows acknowledged
        during warm-up)`; memory is summed over the server's processes: RSS right before the
        point, VmHWM during it, RSS right after it.
    """
    results, warm_rows = {}, 0
    smallest = min(n for _, n in bodies)
    threads = args.client_threads
    for fmt, n in bodies:  # warm-up: every format once per client thread, smallest batch
        if n == smallest:
            warm = Load(seconds=0, min_requests=threads, max_requests=threads)
            run_load(server.port, bodies[fmt, n], FORMATS[fmt], n, threads, warm, args.timeout)
            warm_rows += warm.ok_rows
            if warm.errors:
                print(f"{server.name} warm-up {fmt}: {warm.errors[0]}", flush=True)
    for (fmt, n), body in bodies.items():
        server.reset_peaks()
        before = server.memory_mb("VmRSS")
        load = Load(seconds=args.seconds, min_requests=min_requests, max_requests=max_requests)
        cpu, client_cpu = server.cpu_seconds(), time.process_time()
        run_load(server.port, body, FORMATS[fmt], n, args.client_threads, load, args.timeout)
        cpu, client_cpu = server.cpu_seconds() - cpu, time.process_time() - client_cpu
        peak, after = server.memory_mb("VmHWM"), server.memory_mb("VmRSS")
        results[fmt, n] = {
            "load": load,
            "before_mb": before,
            "peak_mb": peak,
            "after_mb": after,
            "rows_per_cpu": load.ok_rows / cpu if cpu > 0 else float("nan"),
            "client_cpu": client_cpu / load.wall if load.wall else 0.0,
        }
        r = results[fmt, n]
        print(
            f"{server.name:24s} {fmt:18s} {n:>7,} rows/req {load.rate:>11,.0f} rows/s  "
            f"p50 {load.pct(50):8.1f} ms  p99 {load.pct(99):8.1f} ms  "
            f"{len(load.latencies)}/{load.issued} ok  RSS MB before {before:,.0f} "
            f"peak {peak:,.0f} after {after:,.0f}  {r['rows_per_cpu']:,.0f} rows/server CPU-s "
            f"client CPU {r['client_cpu']:.0%}"
            + (f"  ERRORS {len(load.errors)}: {load.errors[0]}" if load.errors else ""),
            flush=True,
        )
    return results, warm_rows


def logged_rows(db: Path) -> tuple[int, str]:
    """Rows in the SQLite prediction log: `predictions` rows + `prediction_batches.n_rows`."""
    if not db.exists():
        return 0, "no prediction log file"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        single = con.execute(f"SELECT COUNT(*) FROM {ROWS}").fetchone()[0]
        parts = f"{single:,} in `predictions`"
        batched = 0
        if BATCHES in tables:
            batched = con.execute(f"SELECT COALESCE(SUM(n_rows), 0) FROM {BATCHES}").fetchone()[0]
            parts += f" + {batched:,} in `prediction_batches`"
        return single + batched, parts
    finally:
        con.close()


def invocations(root: Path, args) -> tuple[list[str], dict]:
    """Measure `/invocations` on mlcycle and on `mlflow models serve`; returns lines + figures."""
    batch_rows = sorted(int(x) for x in args.batch_rows.split(","))
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise SystemExit(f"unknown format(s) {unknown}: choose from {', '.join(FORMATS)}")
    frame = input_frame(max(batch_rows) * args.distinct)
    top = max(batch_rows)
    bodies = {  # `--distinct` bodies per point, of different rows, sent in turn
        (f, n): [build_body(f, frame.iloc[k * top : k * top + n]) for k in range(args.distinct)]
        for n in batch_rows
        for f in formats
    }
    del frame
    largest = max(len(b) for group in bodies.values() for b in group)
    env = server_env(root)
    limit_note = ""
    if largest > int(env.get("MLCYCLE_MAX_BODY_BYTES", SERVER_BODY_LIMIT)):
        env["MLCYCLE_MAX_BODY_BYTES"] = str(largest + (1 << 20))
        limit_note = f" `MLCYCLE_MAX_BODY_BYTES` raised to {largest + (1 << 20):,} for this run."
    from serving.settings import get_settings

    s = get_settings()
    serve = mlcycle_serve_command(args.workers)
    with Server("mlcycle serve", serve, env, root / "mlcycle-serve.log", ROOT) as mlcycle:
        mlcycle.wait_ready("/v2/health/ready", args.start_timeout)
        ours, acked = measure_server(
            mlcycle, bodies, args, 2 * args.client_threads, args.max_requests
        )
    acked += sum(r["load"].ok_rows for r in ours.values())
    logged, parts = logged_rows(root / "pred.db")
    log_ok = logged >= acked
    log_line = (
        f"Prediction log after the mlcycle run: {logged:,} rows ({parts}) for {acked:,} "
        f"acknowledged rows: {'every acknowledged row is logged' if log_ok else 'ROWS MISSING'}."
    )
    print(log_line, flush=True)
    theirs = {}
    if not args.skip_mlflow:
        name = f"mlflow serve -w {args.workers}"
        cmd = [*mlflow_serve_command(MODEL_URI), "-w", str(args.workers)]
        with Server(name, cmd, env, root / "mlflow-serve.log", root) as anchor:
            anchor.wait_ready("/ping", args.start_timeout)
            theirs, _ = measure_server(anchor, bodies, args, 2, max(args.mlflow_requests, 2))
    lines = invocations_table(bodies, ours, theirs, args, s, limit_note) + ["", log_line]
    if theirs:
        agree = compare_answers(ours, theirs)
        print(agree, flush=True)
        lines += ["", agree]
    best = max(bodies, key=lambda k: ours[k]["load"].rate)
    figures = {"best": ours[best]["load"].rate, "best_at": best, "log_ok": log_ok}
    if theirs:
        figures["ratio"] = _ratio(ours[best]["load"].rate, theirs[best]["load"].rate)
    figures["errors"] = sum(len(r["load"].errors) for r in ours.values())
    return lines, figures


def compare_answers(ours: dict, theirs: dict) -> str:
    """One sentence: do mlcycle and mlflow give the same predictions for the same bodies?"""
    import numpy as np

    diffs, missing = [], []
    for key, r in ours.items():
        a, b = r["load"].sample, theirs[key]["load"].sample
        if a is None or b is None:
            missing.append(f"{key[0]} x {key[1]:,}")
            continue
        diffs.append(float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float)))))
    text = (
        f"Same body, same answers: over {len(diffs)} points the largest |mlcycle - mlflow| "
        f"prediction difference is {max(diffs):.2g}."
        if diffs
        else "No answers to compare."
    )
    return text + (f" Not compared (no 200 answer): {', '.join(missing)}." if missing else "")


def _ratio(ours: float, theirs: float) -> str:
    """`ours / theirs` as `12x` or `0.45x`; n/a without a figure for theirs."""
    if not theirs:
        return "n/a"
    r = ours / theirs
    return f"{r:.0f}x" if r >= 10 else f"{r:.2g}x"


def _cell(load: Load) -> str:
    err = f" ({len(load.errors)} err)" if load.errors else ""
    return f"{load.rate:,.0f}{err}"


def invocations_table(bodies, ours, theirs, args, s, limit_note: str) -> list[str]:
    """The `/invocations` table (markdown lines) with its method sentence and error notes."""
    anchor = f"`mlflow models serve -w {args.workers}`" if theirs else "(mlflow anchor skipped)"
    lines = [
        f"`/invocations` with large batches: `mlcycle serve` ({s.server}, {args.workers} workers "
        f"x {s.threads} threads; validation, prediction log (SQLite, temp dir) and metrics on) "
        f"vs {anchor} on the same registered model, one after the other. Bodies of the bundled "
        f"data (model input columns, schema order; {args.distinct} bodies of different rows per "
        "point, sent in turn) serialized once with orjson before timing; "
        f"{args.client_threads} client threads (`http.client`, keep-alive) on the same 2 cores "
        f"send them for {args.seconds:g} s per point (at least {2 * args.client_threads}, at "
        f"most {args.max_requests} requests; mlflow: at most {max(args.mlflow_requests, 2)}); "
        "every answer must be a 200 with one prediction per row. rows/s = acknowledged rows / "
        "wall time; latency per request; peak RSS = sum of VmHWM over the server's processes "
        "(reset before each point), with their summed RSS right before and after the point; "
        "rows / server CPU-s = acknowledged rows / CPU seconds of the server's processes during "
        "the point (steadier than rows/s on a shared machine); client CPU = the client "
        f"process's CPU time / wall time. Load average at the start: {args.load_at_start}."
        f"{limit_note}",
        "",
        "| format | rows / request | body MB | mlcycle rows/s | p50 / p99 ms | requests "
        "| rows / server CPU-s | client CPU | RSS MB before / peak / after | mlflow rows/s "
        "| mlflow p50 ms | mlflow requests | mlflow rows / server CPU-s | mlflow peak RSS MB "
        "| mlcycle / mlflow rows/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    errors = []
    for (fmt, n), body in bodies.items():
        r = ours[fmt, n]
        ld = r["load"]
        cells = [
            f"`{fmt}`",
            f"{n:,}",
            f"{len(body[0]) / 1e6:.1f}",
            _cell(ld),
            f"{ld.pct(50):.0f} / {ld.pct(99):.0f}",
            f"{len(ld.latencies)}",
            f"{r['rows_per_cpu']:,.0f}",
            f"{r['client_cpu']:.0%}",
            f"{r['before_mb']:,.0f} / {r['peak_mb']:,.0f} / {r['after_mb']:,.0f}",
        ]
        errors += [f"mlcycle {fmt} x {n:,}: {e}" for e in ld.errors[:2]]
        if theirs:
            t = theirs[fmt, n]
            tl = t["load"]
            cells += [
                _cell(tl),
                f"{tl.pct(50):.0f}",
                f"{len(tl.latencies)}",
                f"{t['rows_per_cpu']:,.0f}",
                f"{t['peak_mb']:,.0f}",
                _ratio(ld.rate, tl.rate),
            ]
            errors += [f"mlflow {fmt} x {n:,}: {e}" for e in tl.errors[:2]]
        else:
            cells += ["-"] * 6
        lines.append("| " + " | ".join(cells) + " |")
    if errors:
        lines += ["", "Errors (first two per point):", *[f"- {e[:300]}" for e in errors]]
    return lines


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = cli.parser(__doc__)
    parser.add_argument("--sizes", help=f"`mlcycle score` input rows, comma list [{FULL['sizes']}]")
    parser.add_argument(
        "--batch-rows", help=f"/invocations rows per request, comma list [{FULL['batch_rows']}]"
    )
    parser.add_argument("--formats", help=f"/invocations formats, comma list [{FULL['formats']}]")
    parser.add_argument("--seconds", type=float, help=f"seconds per point [{FULL['seconds']}]")
    parser.add_argument(
        "--mlflow-requests",
        type=int,
        help=f"request cap per point for mlflow models serve [{FULL['mlflow_requests']}]",
    )
    parser.add_argument("--max-requests", type=int, default=400, help="mlcycle cap per point")
    parser.add_argument("--client-threads", type=int, default=2, help="client threads")
    parser.add_argument(
        "--distinct", type=int, default=2, help="bodies of different rows per point, sent in turn"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes, both servers")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--start-timeout", type=float, default=180, help="server start seconds")
    parser.add_argument("--quick", action="store_true", help="small run: " + json.dumps(QUICK))
    parser.add_argument("--skip-score", action="store_true", help="no `mlcycle score` part")
    parser.add_argument("--skip-invocations", action="store_true", help="no /invocations part")
    parser.add_argument("--skip-mlflow", action="store_true", help="no mlflow anchor")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.distinct < 1 or args.client_threads < 1 or args.max_requests < 1:
        parser.error("--distinct, --client-threads and --max-requests must be at least 1")
    for key, full in FULL.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK[key] if args.quick else full)
    return args


def main() -> None:
    args = parse_args()
    args.load_at_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = Path(tempfile.mkdtemp(prefix="mlcycle-score-bench-"))
    try:
        use_store(root, args.tracking_uri)
        lines, summary = [], []
        if not args.skip_score:
            score_lines, best_score = score_table(root, [int(x) for x in args.sizes.split(",")])
            lines += score_lines
            summary.append(
                f"`mlcycle score` best {best_score:,.0f} rows/s = {best_score / TARGET:.0%} "
                f"of the {TARGET:,} rows/s target"
            )
        if not args.skip_invocations:
            inv_lines, fig = invocations(root, args)
            lines += ([""] if lines else []) + inv_lines
            fmt, n = fig["best_at"]
            part = (
                f"`/invocations` best {fig['best']:,.0f} rows/s ({fmt}, {n:,} rows/request) = "
                f"{fig['best'] / TARGET:.0%} of the target"
            )
            if "ratio" in fig:
                part += f", {fig['ratio']} `mlflow models serve` (same body)"
            if fig["errors"] or not fig["log_ok"]:
                part += f" ({fig['errors']} errors; log complete: {fig['log_ok']})"
            summary.append(part)
        lines += ["", "Summary: " + "; ".join(summary) + "."]
        report = "\n".join(lines)
        print(report)
        if args.no_write:
            return
        if args.skip_score or args.skip_invocations:
            print("partial run (--skip-*): docs/benchmarks.md not written", file=sys.stderr)
            return
        docs.write_section("scoring", report, HEADING)
    finally:
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
