"""gRPC benchmark: OIP v2 ModelInfer req/s and p50/p99, mlcycle beside its REST and MLServer.

In: a fresh tiny trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`); `wrk` on PATH; MLServer 1.7.1 with mlserver-mlflow in a virtualenv
of its own (`--mlserver-venv`; its pins clash with ours: `--setup-mlserver` creates it with
pip). Out: a table on stdout and the `grpc` section of docs/benchmarks.md.
Measured one after the other on the same machine, in one run, with the same rows:
`mlcycle serve --grpc-port` over gRPC (`benchmarks.harness.grpc_load`) and, on the same
server, over REST (wrk: OIP v2 JSON and `/invocations`); then MLServer serving the same
registered model (`mlserver_mlflow.MLflowRuntime`, `parallel_workers: 0`, as its inference
pool crashes on this machine) over gRPC and its REST v2. Both servers' answers are checked
against each other first. Loopback only; every run is bounded.
(Not named `grpc.py`: run as a file, it would shadow the grpc package.)
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import ROOT, cli, docs, grpc_load, wrk
from benchmarks.harness.server import Server, free_port, mlcycle_serve_command, server_env
from benchmarks.harness.store import MODEL_URI, use_store

HEADING = "## gRPC (`python -m benchmarks.grpc_serving`)"
MLSERVER = ("mlserver==1.7.1", "mlserver-mlflow==1.7.1")
MODEL = "credit-risk"


def example_rows(rows: int):
    """`rows` rows repeated from the production model's input example (a DataFrame)."""
    import mlflow
    import pandas as pd

    local = mlflow.artifacts.download_artifacts(MODEL_URI)
    ex = pd.DataFrame(mlflow.models.Model.load(local).load_input_example(local))
    return pd.concat([ex] * (rows // len(ex) + 1), ignore_index=True).head(rows)


def infer_request(frame) -> bytes:
    """A serialized ModelInferRequest with the frame's columns as raw tensors (BYTES with the
    `content_type: str` parameter MLServer needs to decode text, INT64, FP64)."""
    from serving.oip.contract import contract

    request = contract().messages["ModelInferRequest"](model_name=MODEL)
    for name in frame.columns:
        col = frame[name].to_numpy()
        tensor = request.inputs.add(name=name, shape=[len(col)])
        if col.dtype.kind in "OUS":
            tensor.datatype = "BYTES"
            tensor.parameters["content_type"].string_param = "str"
            data = [str(v).encode() for v in col]
            raw = b"".join(len(v).to_bytes(4, "little") + v for v in data)
        elif col.dtype.kind in "iu":
            tensor.datatype, raw = "INT64", col.astype("<i8").tobytes()
        else:
            tensor.datatype, raw = "FP64", col.astype("<f8").tobytes()
        request.raw_input_contents.append(raw)
    return request.SerializeToString()


def v2_json(frame) -> dict:
    """The same rows as an OIP v2 REST body."""
    inputs = []
    for name in frame.columns:
        col = frame[name]
        kind = col.dtype.kind
        dtype = "BYTES" if kind in "OUS" else "INT64" if kind in "iu" else "FP64"
        tensor = {"name": name, "datatype": dtype, "shape": [len(col)], "data": col.tolist()}
        if dtype == "BYTES":
            tensor["parameters"] = {"content_type": "str"}
        inputs.append(tensor)
    return {"inputs": inputs}


def probabilities(answer: bytes) -> np.ndarray:
    """The positive-class probability of each row of a serialized ModelInferResponse."""
    from serving.oip.contract import contract

    resp = contract().messages["ModelInferResponse"].FromString(answer)
    out = resp.outputs[0]
    dtype = {"FP64": "<f8", "FP32": "<f4"}[out.datatype]
    if resp.raw_output_contents:
        values = np.frombuffer(resp.raw_output_contents[0], dtype)
    else:
        values = np.array(out.contents.fp64_contents or out.contents.fp32_contents)
    shape = list(out.shape)
    return values.reshape(shape[0], -1)[:, -1] if len(shape) > 1 else values


def setup_mlserver(venv: Path) -> None:
    """Create `venv` with MLServer and its MLflow runtime (pip from the configured index)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "pip"), "install", "-q", *MLSERVER]
    subprocess.run(pip, check=True, timeout=1800)


def mlserver_folder(root: Path) -> Path:
    """A model repository for MLServer: the production version's artifacts and its
    model-settings.json (MLflow runtime)."""
    import mlflow

    folder = root / "mlserver"
    local = mlflow.artifacts.download_artifacts(MODEL_URI, dst_path=str(root / "mlserver-model"))
    folder.mkdir()
    settings = {
        "name": MODEL,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": local},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    return folder


def measure_grpc(name: str, target: str, request: bytes, streams: list[int], seconds: int):
    """Warm `target` up, then one bounded gRPC run per stream count; printed and returned."""
    for _ in range(50):
        grpc_load.call_once(target, request)
    results = {c: grpc_load.run(target, request, c, seconds) for c in streams}
    report(name, results)
    return results


def measure_rest(name: str, url: str, body: Path, conns: list[int], seconds: int) -> dict:
    """One bounded wrk run per connection count; printed and returned."""
    results = {c: wrk.run(url, body, c, seconds) for c in conns}
    report(name, results)
    return results


def report(name: str, results: dict) -> None:
    for c, r in results.items():
        print(
            f"{name:40s} c={c:<3d} {r['rps']:9.0f} req/s  p50 {r['p50']:8.2f} ms  "
            f"p99 {r['p99']:8.2f} ms  errors {r['errors']}",
            flush=True,
        )


def run_mlcycle(root: Path, env: dict, request: bytes, bodies: dict, args, conns) -> dict:
    """mlcycle over gRPC and REST, one server; also its answer for the agreement check."""
    gport = free_port()
    cmd = [*mlcycle_serve_command(args.workers), "--grpc-port", str(gport)]
    with Server("mlcycle", cmd, env, root / "mlcycle.log", ROOT) as server:
        server.wait_ready("/v2/health/ready")
        target = f"127.0.0.1:{gport}"
        answer = grpc_load.call_once(target, request)
        runs = {"mlcycle_grpc": measure_grpc("mlcycle gRPC", target, request, conns, args.seconds)}
        v2 = f"{server.url}/v2/models/{MODEL}/infer"
        runs["mlcycle_v2"] = measure_rest("mlcycle REST v2", v2, bodies["v2"], conns, args.seconds)
        runs["mlcycle_inv"] = measure_rest(
            "mlcycle REST /invocations",
            server.url + "/invocations",
            bodies["invocations"],
            conns,
            args.seconds,
        )
    return {"runs": runs, "answer": answer}


def run_mlserver(root: Path, request: bytes, bodies: dict, args, conns) -> dict:
    """MLServer over gRPC and REST v2 on the same model; also its answer."""
    folder = mlserver_folder(root)
    gport, mport = free_port(), free_port()
    env = dict(
        os.environ,
        MLSERVER_HTTP_PORT="{port}",
        MLSERVER_GRPC_PORT=str(gport),
        MLSERVER_METRICS_PORT=str(mport),
        MLSERVER_HOST="127.0.0.1",
        MLSERVER_PARALLEL_WORKERS="0",
        MLFLOW_TRACKING_URI=os.environ.get("MLFLOW_TRACKING_URI", ""),
    )
    cmd = [str(args.mlserver_venv / "bin" / "mlserver"), "start", str(folder)]
    with Server("MLServer", cmd, env, root / "mlserver.log", root) as server:
        server.wait_ready(f"/v2/models/{MODEL}/ready")
        target = f"127.0.0.1:{gport}"
        answer = grpc_load.call_once(target, request)
        runs = {
            "mlserver_grpc": measure_grpc("MLServer gRPC", target, request, conns, args.seconds)
        }
        v2 = f"{server.url}/v2/models/{MODEL}/infer"
        runs["mlserver_v2"] = measure_rest(
            "MLServer REST v2", v2, bodies["v2"], conns, args.seconds
        )
    return {"runs": runs, "answer": answer}


LABELS = {
    "mlcycle_grpc": "mlcycle, gRPC (OIP v2 ModelInfer, raw tensors)",
    "mlcycle_v2": "mlcycle, REST OIP v2 (`/v2/models/credit-risk/infer`)",
    "mlcycle_inv": "mlcycle, REST `/invocations` (`dataframe_records`)",
    "mlserver_grpc": "MLServer 1.7.1 + mlserver-mlflow, gRPC, same model",
    "mlserver_v2": "MLServer 1.7.1 + mlserver-mlflow, REST v2, same model",
}


def summarize(runs: dict, conns: list[int], args, agreement: float) -> str:
    from serving.settings import get_settings

    s = get_settings()
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"{args.rows}-row requests; c = concurrent gRPC streams (each on its own channel, "
        "from up to two client processes) or wrk connections (up to two threads), "
        f"{args.seconds} s per point, clients on the same machine. mlcycle: "
        f"{s.server}, {args.workers} workers x {s.threads} threads, gRPC in every worker; "
        "validation, prediction log (SQLite WAL) and metrics on. MLServer: one process "
        "(`parallel_workers: 0`: its inference pool crashes here). The machine is shared "
        "with other jobs: figures are noisy, ratios from one run.",
        "",
        *docs.rate_table(runs, LABELS, conns),
    ]
    lines.append("")
    lines.append(f"- Answers: mlcycle and MLServer agree to {agreement:.1e} (max |Δp|).")
    for c in conns:
        g = runs["mlcycle_grpc"][c]["rps"]
        parts = [f"vs its REST v2 {g / runs['mlcycle_v2'][c]['rps']:.2f}x"]
        if "mlserver_grpc" in runs:
            parts.append(f"vs MLServer gRPC {g / runs['mlserver_grpc'][c]['rps']:.1f}x")
        lines.append(f"- c={c}: mlcycle gRPC " + ", ".join(parts) + ".")
    return "\n".join(lines)


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--seconds", type=int, default=6, help="duration per point")
    parser.add_argument("--connections", default="1,8", help="comma list of streams")
    parser.add_argument("--workers", type=int, default=2, help="mlcycle worker processes")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument(
        "--mlserver-venv", type=Path, default=Path("/tmp/mlserver-venv"), help="MLServer's venv"
    )
    parser.add_argument("--setup-mlserver", action="store_true", help="create that venv")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.setup_mlserver and not (args.mlserver_venv / "bin" / "mlserver").exists():
        setup_mlserver(args.mlserver_venv)
    conns = [int(c) for c in args.connections.split(",")]
    root = Path(tempfile.mkdtemp(prefix="mlcycle-grpc-bench-"))
    use_store(root, args.tracking_uri)
    frame = example_rows(args.rows)
    request = infer_request(frame)
    bodies = {"v2": root / "v2.json", "invocations": root / "invocations.json"}
    bodies["v2"].write_text(json.dumps(v2_json(frame)))
    records = json.loads(frame.to_json(orient="records"))
    bodies["invocations"].write_text(json.dumps({"dataframe_records": records}))
    ours = run_mlcycle(root, server_env(root), request, bodies, args, conns)
    theirs = run_mlserver(root, request, bodies, args, conns)
    agreement = float(
        np.max(np.abs(probabilities(ours["answer"]) - probabilities(theirs["answer"])))
    )
    text = summarize({**ours["runs"], **theirs["runs"]}, conns, args, agreement)
    print(text)
    if not args.no_write:
        docs.write_section("grpc", text, HEADING)


if __name__ == "__main__":
    main()
