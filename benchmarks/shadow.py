"""Shadow-scoring benchmark: production's p99 at 8 connections with shadow scoring off and on.

In: a fresh tiny trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`), a second version of it under the `challenger` alias; `wrk` on PATH.
Out: a table on stdout and the `shadow` section of docs/benchmarks.md. Two servers of the same
layout (default settings) run side by side, one with `MLCYCLE_SHADOW=true`; wrk drives them in
alternating rounds (off, on, off, on, ...) so both see the same machine noise, and the MEDIAN
of the rounds is reported with the on/off ratio (the anchor is shadow off, same run). The
shadow server's rows scored in shadow and requests dropped (full queue) come from its
`/metrics`. Loopback only; every run is bounded.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.harness import ROOT, cli, docs, wrk
from benchmarks.harness.server import Server, mlcycle_serve_command, server_env
from benchmarks.harness.store import one_row_body, use_store

HEADING = "## Shadow scoring (`python -m benchmarks.shadow`)"
CONNECTIONS = 8


def add_challenger() -> str:
    """Register the production version's model again and point `challenger` at it."""
    import mlflow

    client = mlflow.MlflowClient()
    prod = client.get_model_version_by_alias("credit-risk", "production")
    new = client.create_model_version("credit-risk", prod.source, run_id=prod.run_id)
    client.set_registered_model_alias("credit-risk", "challenger", new.version)
    return str(new.version)


def _metric(text: str, name: str) -> float:
    """The sum of a metric's samples in a Prometheus text page."""
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per setting")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    root = Path(tempfile.mkdtemp(prefix="mlcycle-bench-shadow-"))
    use_store(root, args.tracking_uri)
    challenger = add_challenger()
    body = one_row_body(root)
    serve = mlcycle_serve_command(args.workers)
    base = server_env(root)
    rounds: dict[str, list[dict]] = {"off": [], "on": []}
    with (
        Server(
            "shadow off", serve, {**base, "MLCYCLE_SHADOW": "false"}, root / "off.log", ROOT
        ) as off,
        Server(
            "shadow on",
            serve,
            {
                **base,
                "MLCYCLE_SHADOW": "true",
                "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{root / 'pred-on.db'}",
            },
            root / "on.log",
            ROOT,
        ) as on,
    ):
        for server in (off, on):
            server.wait_ready("/v2/health/ready")
            server.warm(body, 20)
        time.sleep(3)  # the shadow server's workers load the challenger beside production
        for i in range(args.rounds):
            for key, server in (("off", off), ("on", on)):
                r = wrk.run(server.url + "/invocations", body, CONNECTIONS, args.seconds)
                rounds[key].append(r)
                print(
                    f"round {i + 1} shadow {key:3s} {r['rps']:8.0f} req/s  p50 {r['p50']:7.2f} ms"
                    f"  p99 {r['p99']:7.2f} ms  errors {r['errors']}",
                    flush=True,
                )
        text = requests.get(on.url + "/metrics", timeout=10).text
    shadowed = _metric(text, "mlcycle_shadow_rows_total")
    dropped = _metric(text, "mlcycle_shadow_dropped_total")
    report = summarize(rounds, args, challenger, shadowed, dropped)
    print(report)
    if not args.no_write:
        docs.write_section("shadow", report, HEADING)


def summarize(rounds: dict, args, challenger: str, shadowed: float, dropped: float) -> str:
    med = {
        key: {m: statistics.median(r[m] for r in runs) for m in ("rps", "p50", "p99")}
        for key, runs in rounds.items()
    }
    served = sum(r["requests"] for r in rounds["on"])
    ratio = med["on"]["p99"] / med["off"]["p99"]
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Default layout, {args.workers} workers; one-row `dataframe_records` body; "
        f"{args.rounds} alternating rounds of wrk {args.seconds} s at c={CONNECTIONS} per "
        "setting, median of rounds; other jobs share this machine, so single rounds are noisy.",
        "",
        "| production server | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (("off", "shadow off (anchor)"), ("on", f"shadow on (v{challenger})")):
        m = med[key]
        lines.append(f"| {label} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} |")
    lines += [
        "",
        f"- p99 on/off: {ratio:.2f} (target <= 1.10); req/s on/off: "
        f"{med['on']['rps'] / med['off']['rps']:.2f}.",
        f"- Shadow server: {served} requests answered, {shadowed:.0f} rows scored in shadow, "
        f"{dropped:.0f} requests dropped by the full shadow queue (counted, never waited for).",
        "- The challenger is the production model registered again (same size, so the cost is a "
        "real candidate's). The req/s given up is its second, uncached forward pass per row on a "
        "CPU-bound 2-core machine; `MLCYCLE_SHADOW_SAMPLE` scales it down.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
