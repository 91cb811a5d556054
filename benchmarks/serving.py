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

import argparse
import json
import logging
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

log = logging.getLogger("benchmarks.serving")
ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path and would shadow the `serving`
# package with this very file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
sys.path.insert(0, str(ROOT))
BARE_APP = """
from flask import Flask, Response

app = Flask(__name__)


@app.post("/invocations")
def invocations():
    return Response(b'{"predictions":[0.5]}', mimetype="application/json")


@app.get("/ping")
def ping():
    return "ok"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} never became ready")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wrk(url: str, body_file: Path, conns: int, seconds: int) -> dict:
    """Run wrk once; returns req/s, p50/p99 in ms, the error count and the requests answered."""
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\n'
        f'local f=io.open("{body_file}","r"); wrk.body=f:read("*a"); f:close()\n'
    )
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(conns, 2)}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url + "/invocations",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors += sum(int(x) for x in sock.groups()) if sock else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "rps": rps,
        "p50": _ms(out, "50%"),
        "p99": _ms(out, "99%"),
        "errors": errors,
        "requests": total,
    }


def _ms(text: str, label: str) -> float:
    m = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def server_env(root: Path) -> dict:
    """Environment for servers started by a benchmark: log, reports and state under `root`."""
    return dict(
        os.environ,
        MLCYCLE_PREDICTION_LOG_URL=f"sqlite:///{root / 'pred.db'}",
        MLCYCLE_REPORTS_DIR=str(root / "reports"),
        MLCYCLE_HOME=str(root),
        # `mlflow models serve` execs `uvicorn`: it must find this environment's scripts.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )


def train_store(root: Path) -> str:
    """Train and register a small model (bundled data) in a fresh store; returns its URI."""
    import mlflow

    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.MlflowClient(uri).create_experiment("bench", artifact_location=(root / "art").as_uri())
    run(TrainConfig(rows=5000, epochs=2, experiment="bench"))
    return uri


def prepare_bodies(root: Path) -> tuple[Path, Path, str]:
    """The one-row request body, the Keras anchor's body and the anchor's model URI.

    The anchor is registered as a new version of `keras-anchor`, so a reused store (see
    `--tracking-uri`) serves this run's network, not an older one of another width.
    """
    import mlflow
    import numpy as np
    import pandas as pd

    local = mlflow.artifacts.download_artifacts("models:/credit-risk@production")
    ex = pd.DataFrame(mlflow.models.Model.load(local).load_input_example(local)).head(1)
    body = root / "body.json"
    body.write_text(json.dumps({"dataframe_records": json.loads(ex.to_json(orient="records"))}))
    model = mlflow.pyfunc.load_model("models:/credit-risk@production").unwrap_python_model()
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


def mlflow_serve_command(model_uri: str) -> list[str]:
    """`mlflow models serve` on loopback for `model_uri`, with `{port}` left to fill in."""
    mlflow = str(Path(sys.executable).parent / "mlflow")
    return [
        mlflow,
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        "{port}",
    ]


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
    port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    url = f"http://127.0.0.1:{port}"
    logname = body.parent / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}.log"
    with open(logname, "w") as logfile:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(url + ready_path, proc)
            for _ in range(20):  # warm every worker
                requests.post(
                    url + "/invocations",
                    data=body.read_bytes(),
                    timeout=30,
                    headers={"Content-Type": "application/json"},
                )
            results = {c: wrk(url, body, c, seconds) for c in conns}
        finally:
            stop(proc)
    for c, r in results.items():
        print(
            f"{name:44s} c={c:<3d} {r['rps']:9.0f} req/s  p50 {r['p50']:8.2f} ms  "
            f"p99 {r['p99']:8.2f} ms  errors {r['errors']}",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6, help="wrk duration per point")
    parser.add_argument("--connections", default="1,8,32", help="comma list")
    parser.add_argument("--workers", type=int, default=2, help="worker processes everywhere")
    parser.add_argument("--tracking-uri", default="", help="use this store (no training)")
    parser.add_argument("--skip-keras", action="store_true", help="skip the Keras anchor")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    conns = [int(c) for c in args.connections.split(",")]
    root = Path(tempfile.mkdtemp(prefix="mlcycle-bench-"))
    if args.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    else:
        train_store(root)
    body, kbody, keras_uri = prepare_bodies(root)
    (root / "bare_app.py").write_text(BARE_APP)
    env = server_env(root)
    from serving.cli import server_command
    from serving.settings import get_settings

    s = get_settings()
    serve = [sys.executable, "-m", "serving", "--port", "{port}", "--workers", str(args.workers)]
    runs = {
        key: measure(
            label, serve, "/v2/health/ready", body, conns, args.seconds, {**env, **extra}, ROOT
        )
        for key, label, extra in MLCYCLE_VARIANTS
    }
    bare = server_command(
        s.server, "bare_app:app", "127.0.0.1", 0, args.workers, s.threads, factory=False
    )
    bare[bare.index("--port") + 1] = "{port}"
    runs["bare"] = measure(
        f"bare constant Flask, same stack ({s.server})",
        bare,
        "/ping",
        body,
        conns,
        args.seconds,
        {**env, "PYTHONPATH": str(root)},
        root,
    )
    runs["mlflow"] = measure(
        f"mlflow models serve -w {args.workers}, same model",
        [*mlflow_serve_command("models:/credit-risk@production"), "-w", str(args.workers)],
        "/ping",
        body,
        conns,
        args.seconds,
        env,
    )
    if not args.skip_keras:
        keras = mlflow_serve_command(keras_uri)
        runs["keras"] = measure(
            "mlflow models serve, Keras flavour (defaults)",
            keras,
            "/ping",
            kbody,
            conns,
            args.seconds,
            env,
        )
    report = summarize(runs, conns, args, s)
    print(report)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", "serving", report)


def summarize(runs: dict, conns: list[int], args, s) -> str:
    labels = {
        **{key: label for key, label, _ in MLCYCLE_VARIANTS},
        "bare": f"bare constant Flask endpoint, same stack ({s.server})",
        "mlflow": f"`mlflow models serve -w {args.workers}`, same registered model",
        "keras": "`mlflow models serve`, same network via `mlflow.keras` (anchor)",
    }
    head = "| server | " + " | ".join(f"c={c} req/s | c={c} p50 / p99 ms" for c in conns)
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
        f" Layout: {s.server}, {args.workers} workers x {s.threads} threads; validation, "
        "prediction log (SQLite WAL) and metrics on; one-row `dataframe_records` body; "
        f"wrk {args.seconds} s per point; other jobs may share the machine.",
        "",
        head + " |",
        "|---|" + "---|---|" * len(conns),
    ]
    for key, label in labels.items():
        if key not in runs:
            continue
        cells = " | ".join(
            f"{runs[key][c]['rps']:.0f}"
            + (f" ({runs[key][c]['errors']} err)" if runs[key][c]["errors"] else "")
            + f" | {runs[key][c]['p50']:.1f} / {runs[key][c]['p99']:.1f}"
            for c in conns
        )
        lines.append(f"| {label} | {cells} |")
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


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the text between `<!-- name:start -->` and `<!-- name:end -->`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    doc = path.read_text() if path.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start not in doc:
        doc += f"\n{start}\n{end}\n"
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


if __name__ == "__main__":
    main()
