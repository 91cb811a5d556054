"""Overload benchmark: 64 connections sending ~4 MB bodies, mlcycle vs a refuse-only anchor.

In: a fresh tiny trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`). Out: a table on stdout and the `overload` section of
docs/benchmarks.md. Each client loops for `--seconds`: connect, send a 40,000-row
`dataframe_split` body (what `../shared/acceptance/serving-core` sends), read the answer.
Measured one after the other on the same machine, with the same clients:
  mlcycle on its defaults (it admits what it can score in time and refuses the rest), and the
  same server layout running `benchmarks.drain_app` (reads each body, answers 503): the floor
  of a refusal under granian, and `benchmarks.raw_drain` (sockets alone, no HTTP server): the
  floor any server that lets the client read its refusal pays on this machine. Loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT, cli, docs
from benchmarks.harness.server import Server, mlcycle_serve_command, server_env
from benchmarks.harness.store import MODEL_URI, use_store

HEADING = "## Overload (`python -m benchmarks.overload`)"


def big_body(rows: int) -> bytes:
    """A `dataframe_split` body of the model's first input example row, `rows` times."""
    import mlflow
    import pandas as pd

    local = mlflow.artifacts.download_artifacts(MODEL_URI)
    ex = pd.DataFrame(mlflow.models.Model.load(local).load_input_example(local)).head(1)
    big = pd.concat([ex] * rows, ignore_index=True)
    split = json.loads(big.to_json(orient="split", index=False))
    return json.dumps({"dataframe_split": split}).encode()


@dataclass
class Outcome:
    """What the clients saw: answers by status (or exception name) and latencies in ms."""

    codes: dict = field(default_factory=dict)
    refused_ms: list = field(default_factory=list)
    answered_ms: list = field(default_factory=list)


def hammer(port: int, body: bytes, connections: int, seconds: float) -> Outcome:
    """`connections` client threads, each POSTing `body` on a new connection until time is up."""
    out, lock, stop = Outcome(), threading.Lock(), time.time() + seconds

    def client() -> None:
        while time.time() < stop:
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request(
                    "POST", "/invocations", body=body, headers={"Content-Type": "application/json"}
                )
                status = conn.getresponse().status
                conn.close()
            except OSError as exc:
                status = type(exc).__name__
            ms = (time.perf_counter() - started) * 1000
            with lock:
                out.codes[status] = out.codes.get(status, 0) + 1
                if status in (429, 503):
                    out.refused_ms.append(ms)
                elif status == 200:
                    out.answered_ms.append(ms)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _pct(values: list, q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _ms(value: float) -> str:
    return "—" if value != value else f"{value:.0f}"  # NaN: nothing answered that way


def measure(name: str, cmd: list[str], root: Path, body: bytes, args) -> dict:
    """Start one server, wait for it, hammer it, stop it; its figures."""
    env = dict(server_env(root), PYTHONPATH=str(ROOT))
    with Server(name, cmd, env, root / f"{name}.log", cwd=ROOT) as server:
        server.wait_ready("/v2/health/ready" if name == "mlcycle" else "/", timeout=180)
        out = hammer(server.port, body, args.connections, args.seconds)
    return {
        "server": name,
        "codes": dict(sorted(out.codes.items(), key=str)),
        "refused_p50": _pct(out.refused_ms, 50),
        "refused_p99": _pct(out.refused_ms, 99),
        "answered_p50": _pct(out.answered_ms, 50),
        "answered_p99": _pct(out.answered_ms, 99),
        "refused_per_s": len(out.refused_ms) / args.seconds,
    }


def anchor_command(workers: int, threads: int) -> list[str]:
    """`benchmarks.drain_app:app` under granian, laid out as `mlcycle serve` lays out its own."""
    from serving.cli import server_command

    cmd = server_command(
        "granian", "benchmarks.drain_app:app", "127.0.0.1", 0, workers, threads, factory=False
    )
    cmd[cmd.index("--port") + 1] = "{port}"
    return cmd


SOCKET_ANCHOR = [sys.executable, "-m", "benchmarks.raw_drain", "--port", "{port}"]


def table(results: list[dict]) -> str:
    """The results as a markdown table, with the ratio of each refusal p99 to the anchor's."""
    anchor = next(r for r in results if r["server"] == "drain-only anchor")["refused_p99"]
    lines = [
        "| server | answers | refusals/s | refusal p50 / p99 (ms) | p99 vs anchor "
        "| answered p50 / p99 (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        codes = ", ".join(f"{v:,} × {k}" for k, v in r["codes"].items())
        lines.append(
            f"| {r['server']} | {codes} | {r['refused_per_s']:.0f} "
            f"| {_ms(r['refused_p50'])} / {_ms(r['refused_p99'])} "
            f"| {r['refused_p99'] / anchor:.2f}x "
            f"| {_ms(r['answered_p50'])} / {_ms(r['answered_p99'])} |"
        )
    return "\n".join(lines)


def section(results: list[dict], args) -> str:
    """The `overload` section of docs/benchmarks.md."""
    when = time.strftime("%Y-%m-%d", time.gmtime())
    return (
        f"{args.connections} connections for {args.seconds:.0f} s each sending a {args.rows:,}-row "
        f"`dataframe_split` body ({args.body_mb:.1f} MB) on a new connection per request; "
        f"{os.cpu_count()} cores shared by clients and server ({platform.machine()}, {when}). "
        "The anchor is the same granian layout running `benchmarks/drain_app.py`: it reads each "
        "body and answers 503, nothing else, so its latency is the cost of receiving 64 bodies "
        "at once under granian. The socket anchor (`benchmarks/raw_drain.py`) does the same on "
        "bare sockets, a thread per connection: the floor for any server on this machine. An "
        "HTTP/1.1 client sends its whole body before it reads any answer; a refusal can reach it "
        "no sooner than its last byte is read, so with 64 clients always sending, a refusal "
        "takes about 64 bodies' worth of receiving (Little's law).\n\n"
        f"{table(results)}\n"
    )


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=15, help="load duration per server")
    parser.add_argument("--connections", type=int, default=64, help="client threads")
    parser.add_argument("--rows", type=int, default=40_000, help="rows per request body")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of both")
    parser.add_argument("--threads", type=int, default=32, help="threads per worker of both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlcycle-overload-") as tmp:
        root = Path(tmp)
        use_store(root, args.tracking_uri)
        body = big_body(args.rows)
        args.body_mb = len(body) / 1e6
        results = [
            measure("mlcycle", mlcycle_serve_command(args.workers), root, body, args),
            measure(
                "drain-only anchor", anchor_command(args.workers, args.threads), root, body, args
            ),
            measure("socket anchor", SOCKET_ANCHOR, root, body, args),
        ]
    text = section(results, args)
    print(text)
    if not args.no_write:
        docs.write_section("overload", text, HEADING)


if __name__ == "__main__":
    main()
