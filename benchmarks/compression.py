"""Compression benchmark: each variant against its parent, and the runtimes it was chosen over.

In: a fresh temporary MLflow store; the default network (64 hidden) and a wide one (3 x 256),
each trained on the bundled data and compressed by `mlcycle compress` (int8, float16, prune at
50%). Out: a table on stdout and the `compression` section of docs/benchmarks.md: per version
its weight bytes, artifact bytes (non-code model files), holdout AUC (the compression gate's, on
the parent's test split), `mlcycle score` rows/s (`serving.scoring.score_file` in this process,
model load excluded) and `/invocations` req/s at 8 connections (`mlcycle serve`, 2 workers, wrk,
one-row bodies), each with its ratio to the parent measured in the same run. A second table
measures the candidate runtimes on the same network's feature matrix: the numpy int8 path,
LiteRT (TensorFlow converter, dynamic-range int8) and ONNX Runtime dynamic quantisation
(tf2onnx): max |dp| vs the float parent and rows/s of the forward pass alone. Loopback only;
every load is bounded; servers are stopped on exit.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

from benchmarks.harness import cli, docs, wrk
from benchmarks.harness.server import Server, mlcycle_serve_command, server_env
from benchmarks.harness.store import EXPERIMENT, empty_store

HEADING = "## Compression (`python -m benchmarks.compression`)"
NETWORKS = {"default": (64,), "wide": (256, 256, 256)}
METHODS = ("int8", "float16", "prune")


def train(label: str, hidden: tuple[int, ...], args) -> str:
    """Train `bench-<label>` and return its version (the parent)."""
    from pipelines.pipeline import run
    from pipelines.settings import TrainConfig

    cfg = TrainConfig(
        rows=args.rows, epochs=args.epochs, hidden=hidden, model_name=f"bench-{label}",
        experiment=EXPERIMENT,
    )  # fmt: skip
    return str(run(cfg).version)


def score_rate(name: str, version: str, csv: Path, root: Path) -> float:
    """`mlcycle score` rows/s of one version (model load excluded)."""
    from serving.scoring import score_file

    rows, seconds, _ = score_file(csv, root / "out.parquet", model_name=name, version=version)
    return rows / seconds


def serve_rate(name: str, version: str, root: Path, args) -> float:
    """`/invocations` req/s of `mlcycle serve` on one version at 8 connections."""
    body = root / "body.json"
    env = server_env(root) | {"MLCYCLE_MODEL_NAME": name,
                              "MLCYCLE_MODEL_URI": f"models:/{name}/{version}"}  # fmt: skip
    with Server(f"v{version}", mlcycle_serve_command(2), env, root / f"serve-{version}.log") as s:
        s.wait_ready("/v2/health/ready")
        s.warm(body, 20)
        return wrk.run(s.url + "/invocations", body, 8, args.seconds)["rps"]


def measure(label: str, args, root: Path) -> list[dict]:
    """Every row of the first table for one network: the parent, then each variant."""
    import mlflow

    from mlcycle.core import synthetic
    from pipelines.compress import CompressConfig, compress

    name = f"bench-{label}"
    parent = train(label, NETWORKS[label], args)
    csv = root / "score.csv"
    frame = synthetic.generate(args.score_rows, seed=3).drop(columns=["default"])
    frame.to_csv(csv, index=False)
    one = json.loads(frame.head(1).to_json(orient="records"))
    (root / "body.json").write_text(json.dumps({"dataframe_records": one}))
    client = mlflow.MlflowClient()
    out = []
    for method in METHODS:
        result = compress(CompressConfig(model_name=name, version=parent, method=method,
                                         experiment=EXPERIMENT))  # fmt: skip
        tags = client.get_model_version(name, result.version).tags
        if not out:
            out.append({"version": parent, "method": "parent (float64)",
                        "weight_bytes": result.sizes["parent_weight_bytes"],
                        "artifact_bytes": result.sizes["parent_artifact_bytes"],
                        "auc": float(tags["mlcycle.gate_parent_auc"])})  # fmt: skip
        out.append({"version": result.version, "method": method,
                    "weight_bytes": result.sizes["weight_bytes"],
                    "artifact_bytes": result.sizes["artifact_bytes"],
                    "auc": float(tags["mlcycle.gate_auc"]),
                    "gate": tags["mlcycle.gate_decision"]})  # fmt: skip
    score_rate(name, parent, csv, root)  # warm-up: the first score_file call pays for imports
    for row in out:
        row["score"] = score_rate(name, row["version"], csv, root)
        row["serve"] = serve_rate(name, row["version"], root, args)
        print(label, row, flush=True)
    return out


def runtimes(label: str, args) -> list[str]:
    """The candidate runtimes on the parent's features: max |dp| and forward rows/s."""
    import mlflow
    import numpy as np

    from mlcycle.core import synthetic
    from pipelines.model_code import decode_layers, encode_layers
    from pipelines.preprocess import transform

    # v1 of each benchmark model is its trained parent
    parent = mlflow.pyfunc.load_model(f"models:/bench-{label}/1").unwrap_python_model()
    x = transform(parent.spec, synthetic.generate(args.score_rows, seed=4)).astype(np.float32)
    reference = _forward(parent.layers, x.astype(np.float64))
    int8, _ = decode_layers(encode_layers(parent.layers, "int8"))
    candidates = {"numpy int8 (per-channel, dequantised at load)": lambda a: _forward(int8, a)}
    candidates |= _litert(parent.layers, x)
    candidates |= _onnx(parent.layers, x)
    lines = []
    for key, fn in candidates.items():
        if isinstance(fn, str):
            lines.append(f"| {label} | {key} | {fn} | | |")
            continue
        dp = float(np.abs(np.asarray(fn(x)).ravel() - reference).max())
        rate = _rate(fn, x)
        lines.append(f"| {label} | {key} | {dp:.4f} | {rate:,.0f} | |")
    anchor = _rate(lambda a: _forward(parent.layers, a.astype(np.float64)), x)
    lines.append(f"| {label} | numpy float64 parent (anchor) | 0 | {anchor:,.0f} | |")
    return lines


def _forward(layers, x):
    import numpy as np

    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.astype(x.dtype) + b.astype(x.dtype)
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return 1 / (1 + np.exp(-h.ravel().astype(np.float64)))


def _rate(fn, x, repeats: int = 5) -> float:
    import statistics

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def _keras(layers):
    import keras

    model = keras.Sequential([keras.Input((layers[0][0].shape[0],))])
    for i, (w, _) in enumerate(layers):
        last = i == len(layers) - 1
        model.add(keras.layers.Dense(w.shape[1], activation="sigmoid" if last else "relu"))
    model.set_weights([a.astype("float32") for pair in layers for a in pair])
    return model


def _litert(layers, x) -> dict:
    try:
        import tensorflow as tf
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        return {"LiteRT dynamic-range int8": f"not installed ({exc})"}
    converter = tf.lite.TFLiteConverter.from_keras_model(_keras(layers))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    interpreter = Interpreter(model_content=converter.convert())
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(a):
        interpreter.resize_tensor_input(inp, a.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp, a)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return {"LiteRT dynamic-range int8": run}


def _onnx(layers, x) -> dict:
    try:
        import onnxruntime as ort
        import tensorflow as tf
        import tf2onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        return {"ONNX Runtime dynamic int8": f"not installed ({exc})"}
    model = _keras(layers)

    @tf.autograph.experimental.do_not_convert
    def forward(a):
        return model(a)

    with tempfile.TemporaryDirectory() as tmp:
        spec = (tf.TensorSpec((None, x.shape[1]), tf.float32, name="x"),)
        # from_function: tf2onnx's from_keras cannot read Keras 3 models' output names
        tf2onnx.convert.from_function(tf.function(forward), input_signature=spec,
                                      output_path=f"{tmp}/m")  # fmt: skip
        quantize_dynamic(f"{tmp}/m", f"{tmp}/q", weight_type=QuantType.QInt8)
        session = ort.InferenceSession(f"{tmp}/q", providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return {"ONNX Runtime dynamic int8": lambda a: session.run(None, {name: a})[0]}


def table(label: str, rows: list[dict]) -> list[str]:
    parent = rows[0]
    lines = []
    for r in rows:
        lines.append(
            f"| {label} | v{r['version']} {r['method']} | {r['weight_bytes']:,} "
            f"({parent['weight_bytes'] / r['weight_bytes']:.1f}x) | {r['artifact_bytes']:,} | "
            f"{r['auc']:.4f} ({r['auc'] - parent['auc']:+.4f}) | {r.get('gate', '')} | "
            f"{r['score']:,.0f} ({r['score'] / parent['score']:.2f}x) | "
            f"{r['serve']:,.0f} ({r['serve'] / parent['serve']:.2f}x) |"
        )
    return lines


def main() -> None:
    parser = cli.parser(__doc__, tracking_uri=False)
    parser.add_argument("--rows", type=int, default=20_000, help="training rows")
    parser.add_argument("--epochs", type=int, default=10, help="most training epochs")
    parser.add_argument("--score-rows", type=int, default=200_000, help="rows to score")
    parser.add_argument("--seconds", type=int, default=4, help="wrk seconds per server")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        empty_store(root)
        results = {label: measure(label, args, root) for label in NETWORKS}
        rt = [line for label in NETWORKS for line in runtimes(label, args)]
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; one run, a shared and noisy "
        f"machine (ratios within ~10% are noise). {args.rows:,} training rows, at most "
        f"{args.epochs} epochs; `mlcycle score` on {args.score_rows:,} rows; `/invocations` "
        f"one-row bodies, 8 connections, {args.seconds} s, 2 workers. Ratios: vs the parent.",
        "",
        "| network | version | weight bytes | artifact bytes | holdout AUC | gate "
        "| score rows/s | /invocations req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, rows in results.items():
        lines += table(label, rows)
    lines += [
        "",
        "Runtimes considered, on the same feature matrix (forward pass only, no preprocessing):",
        "",
        "| network | runtime | max abs dp vs float parent | rows/s | |",
        "|---|---|---|---|---|",
        *rt,
    ]
    docs.publish("compression", lines, HEADING, write=not args.no_write)


if __name__ == "__main__":
    main()
