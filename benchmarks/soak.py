"""Soak: `mlcycle serve` held at its measured capacity for a bounded time, minute by minute.

In: a fresh tiny trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`); `wrk` on PATH. Out: per minute, req/s, p50/p99, errors (non-2xx and
socket errors) and the server's resident memory (every process of its tree), then the rows in
the prediction log against the requests answered, on stdout and in the `soak` section of
docs/benchmarks.md. Loopback only; `--minutes` bounds it (default 5).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from benchmarks.harness import cli, docs, wrk
from benchmarks.harness.server import Server, server_env, venv_script
from benchmarks.harness.store import one_row_body, use_store
from mlcycle.core.prediction_log import ROWS

HEADING = "## Soak (`python -m benchmarks.soak`)"


def _logged_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {ROWS}").fetchone()[0]


def soak(root: Path, minutes: int, conns: int) -> tuple[list[dict], dict]:
    """Run the soak; returns the per-minute figures and the totals."""
    body = one_row_body(root)
    cmd = [venv_script("mlcycle"), "serve", "--port", "{port}"]
    with Server("mlcycle", cmd, server_env(root), root / "server.log", root) as server:
        server.wait_ready("/v2/health/ready", 180)
        server.warm(body, 50)  # every worker
        start_mb, minutes_out = server.memory_mb("VmRSS"), []
        for minute in range(1, minutes + 1):
            r = wrk.run(server.url + "/invocations", body, conns, 60)
            r.update(minute=minute, rss_mb=server.memory_mb("VmRSS"))
            print(
                f"minute {minute}: {r['rps']:,.0f} req/s  p50 {r['p50']:.2f} ms  "
                f"p99 {r['p99']:.2f} ms  errors {r['errors']}  RSS {r['rss_mb']:.0f} MB",
                flush=True,
            )
            minutes_out.append(r)
        time.sleep(1)
        totals = {"start_mb": start_mb, "rows": _logged_rows(root / "pred.db")}
    return minutes_out, totals


def summarize(runs: list[dict], totals: dict, conns: int) -> str:
    """The `soak` section of docs/benchmarks.md."""
    lines = [
        f"{len(runs)} minutes at {conns} connections (the serving benchmark's capacity point), "
        "one-row `/invocations`, default layout; run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| minute | req/s | p50 ms | p99 ms | errors | server RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['minute']} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | "
        f"{r['rss_mb']:.0f} |"
        for r in runs
    ]
    served = sum(r["requests"] - r["errors"] for r in runs)
    lines += [
        "",
        f"- Server RSS at the start {totals['start_mb']:.0f} MB, at the end "
        f"{runs[-1]['rss_mb']:.0f} MB.",
        f"- Errors: {sum(r['errors'] for r in runs)}. Rows in the prediction log "
        f"{totals['rows']:,} for {served:,} answered requests counted by wrk (plus the warm-up's "
        "50 and those in flight when each minute's wrk stopped, which it does not count).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--minutes", type=int, default=5, help="minutes of load (bounded)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mlcycle-soak-"))
    use_store(root, args.tracking_uri)
    runs, totals = soak(root, args.minutes, args.connections)
    text = summarize(runs, totals, args.connections)
    print(text)
    if not args.no_write:
        docs.write_section("soak", text, HEADING)


if __name__ == "__main__":
    main()
