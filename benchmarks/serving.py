"""Serving benchmark: req/s and p50/p99 at 1, 8 and 32 connections, mlcycle vs its anchors.

In: a fresh tiny trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`); `wrk` on PATH. Out: a table on stdout and the `serving` section of
docs/benchmarks.md. Measured one after the other on the same machine, in one run:
  mlcycle (default layout; batching/cache on and off), the same layout answering a constant
  (the ceiling of the stack), `mlflow models serve -w <workers>` on the same registered model,
  and `mlflow models serve` on the same-sized network logged with `mlflow.keras.log_model`
  (tensor signature: what users run today). Loopback only; every run is bounded.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import tempfile
import time
from pathlib import Path

from benchmarks.harness import ROOT, cli, docs, wrk
from benchmarks.harness.server import (
    Server,
    bare_app_command,
    mlcycle_serve_command,
    mlflow_serve_command,
    server_env,
)
from benchmarks.harness.store import MODEL_URI, one_row_body, use_store

HEADING = "## Serving (`python -m benchmarks.serving`)"


def prepare_bodies(root: Path) -> tuple[Path, Path, str]:
    """The one-row request body, the Keras anchor's body and the anchor's model URI.

    The anchor is registered as a new version of `keras-anchor`, so a reused store (see
    `--tracking-uri`) serves this run's network, not an older one of another width.
    """
    import mlflow
    import numpy as np

    body = one_row_body(root)
    model = mlflow.pyfunc.load_model(MODEL_URI).unwrap_python_model()
    width = len(model.spec["feature_order"])
    import tensorflow as tf
    from mlflow.models import infer_signature

    net = tf.keras.Sequential(
        [
            tf.keras.layers.Input((width,)),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    net.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(0).normal(size=(256, width)).astype("float32")
    net.fit(x, (x[:, 0] > 0).astype("float32"), epochs=1, verbose=0)
    mlflow.set_experiment("keras-anchor")
    with mlflow.start_run():
        info = mlflow.keras.log_model(
            net,
            name="model",
            registered_model_name="keras-anchor",
            signature=infer_signature(x[:2], net(x[:2]).numpy()),
        )
    kbody = root / "kbody.json"
    kbody.write_text(json.dumps({"inputs": x[:1].tolist()}))
    return body, kbody, f"models:/keras-anchor/{info.registered_model_version}"


# mlcycle's own layouts, each measured with the same body and connection counts:
# (key, label, environment overrides).
MLCYCLE_VARIANTS = (
    ("mlcycle", "mlcycle serve (default: cache on, batching off)", {}),
    ("mlcycle_batching", "mlcycle, batching on", {"MLCYCLE_BATCHING": "true"}),
    (
        "mlcycle_nocache",
        "mlcycle, cache off (every request runs the model)",
        {"MLCYCLE_CACHE": "false"},
    ),
    (
        "mlcycle_nocache_batching",
        "mlcycle, cache off, batching on",
        {"MLCYCLE_CACHE": "false", "MLCYCLE_BATCHING": "true"},
    ),
)


def measure(
    name: str,
    cmd: list[str],
    ready_path: str,
    body: Path,
    conns: list[int],
    seconds: int,
    env: dict,
    cwd: Path | None = None,
) -> dict:
    """Start `cmd`, warm it up, run wrk at each connection count, stop it; prints and returns
    `{connections: wrk figures}`."""
    logname = body.parent / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.log"
    with Server(name, cmd, env, logname, cwd) as server:
        server.wait_ready(ready_path)
        server.warm(body, 20)  # every worker
        results = {c: wrk.run(server.url + "/invocations", body, c, seconds) for c in conns}
    for c, r in results.items():
        print(
            f"{name:44s} c={c:<3d} {r['rps']:9.0f} req/s  p50 {r['p50']:8.2f} ms  "
            f"p99 {r['p99']:8.2f} ms  errors {r['errors']}",
            flush=True,
        )
    return results


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=6, help="wrk duration per point")
    parser.add_argument("--connections", default="1,8,32", help="comma list")
    parser.add_argument("--workers", type=int, default=2, help="worker processes everywhere")
    parser.add_argument("--skip-keras", action="store_true", help="skip the Keras anchor")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    conns = [int(c) for c in args.connections.split(",")]
    root = Path(tempfile.mkdtemp(prefix="mlcycle-bench-"))
    use_store(root, args.tracking_uri)
    body, kbody, keras_uri = prepare_bodies(root)
    env = server_env(root)
    from serving.settings import get_settings

    s = get_settings()
    serve = mlcycle_serve_command(args.workers)
    runs = {
        key: measure(
            label, serve, "/v2/health/ready", body, conns, args.seconds, {**env, **extra}, ROOT
        )
        for key, label, extra in MLCYCLE_VARIANTS
    }
    runs["bare"] = measure(
        f"bare constant Flask, same stack ({s.server})",
        bare_app_command(s.server, args.workers, s.threads),
        "/ping",
        body,
        conns,
        args.seconds,
        {**env, "PYTHONPATH": str(ROOT)},
        ROOT,
    )
    runs["mlflow"] = measure(
        f"mlflow models serve -w {args.workers}, same model",
        [*mlflow_serve_command(MODEL_URI), "-w", str(args.workers)],
        "/ping",
        body,
        conns,
        args.seconds,
        env,
    )
    if not args.skip_keras:
        runs["keras"] = measure(
            "mlflow models serve, Keras flavour (defaults)",
            mlflow_serve_command(keras_uri),
            "/ping",
            kbody,
            conns,
            args.seconds,
            env,
        )
    report = summarize(runs, conns, args, s)
    print(report)
    if not args.no_write:
        docs.write_section("serving", report, HEADING)


def summarize(runs: dict, conns: list[int], args, s) -> str:
    labels = {
        **{key: label for key, label, _ in MLCYCLE_VARIANTS},
        "bare": f"bare constant Flask endpoint, same stack ({s.server})",
        "mlflow": f"`mlflow models serve -w {args.workers}`, same registered model",
        "keras": "`mlflow models serve`, same network via `mlflow.keras` (anchor)",
    }
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
        f" Layout: {s.server}, {args.workers} workers x {s.threads} threads; validation, "
        "prediction log (SQLite WAL) and metrics on; one-row `dataframe_records` body; "
        f"wrk {args.seconds} s per point; other jobs may share the machine.",
        "",
        *docs.rate_table(runs, labels, conns),
    ]
    lines.append("")
    for c in conns:
        a = runs["mlcycle"][c]["rps"]
        nocache = runs["mlcycle_nocache"][c]["rps"]
        parts = [
            f"vs bare stack {a / runs['bare'][c]['rps']:.0%}",
            f"vs mlflow serve same model {a / runs['mlflow'][c]['rps']:.1f}x",
            f"cache off vs mlflow {nocache / runs['mlflow'][c]['rps']:.1f}x",
        ]
        if "keras" in runs:
            parts.append(f"vs Keras anchor {a / max(runs['keras'][c]['rps'], 1e-9):.0f}x")
        lines.append(f"- c={c}: mlcycle " + ", ".join(parts) + ".")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
