"""Explanation benchmark: milliseconds per explained row, `serving.explain` vs shap's Exact.

In: a fresh tiny trained model in a temporary MLflow store (or `--tracking-uri` holding
`credit-risk@production`) and its training reference sample. Out: a table on stdout and the
`explain` section of docs/benchmarks.md. Both compute the same exact Shapley values over the
model's input columns against the same background (8 and 32 reference rows): ours as one
vectorised forward pass of 2^k x B rows through the served `ModelService`, the anchor as
`shap.explainers.Exact` with an `Independent` masker on the same model function (categories
given to shap as codes, decoded inside). The largest difference between the two is printed
too. Median over several rows, each explained alone after a warm-up; one core; other jobs
share this machine.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import cli, docs
from benchmarks.harness.store import use_store

HEADING = "## Explanations (`python -m benchmarks.explain`)"


def _shap_model(service, names: list[str], levels: dict):
    """shap's view of the model: a float matrix, categories as codes into `levels`."""

    def model(matrix: np.ndarray) -> np.ndarray:
        columns = {}
        for j, c in enumerate(names):
            if c in levels:
                cats = np.array([*levels[c], None], dtype=object)
                columns[c] = cats[matrix[:, j].astype(np.int64)]
            else:
                columns[c] = matrix[:, j].astype(np.float64)
        return service.predict_arrays(columns)

    return model


def _encode(frame, names: list[str], levels: dict) -> np.ndarray:
    out = frame[names].copy()
    for c, cats in levels.items():
        out[c] = [cats.index(v) if v in cats else len(cats) for v in frame[c]]
    return out.to_numpy(dtype=np.float64)


def measure(service, reference, background_rows: int, rows: int) -> dict:
    """ms per explained row for both, and their largest disagreement."""
    import shap

    from serving.explain import Explainer

    names = list(service.schema.names)
    background = reference.iloc[:background_rows]
    explained = reference.iloc[background_rows : background_rows + rows]

    def validated(frame):
        return service.schema.validate({c: frame[c].tolist() for c in names}, len(frame))

    ours = Explainer(service, validated(background))
    ours.explain(validated(explained.iloc[:1]), 1)  # warm-up, not timed
    mine, ours_ms = [], []
    for i in range(rows):
        started = time.perf_counter()
        mine += ours.explain(validated(explained.iloc[i : i + 1]), 1)
        ours_ms.append((time.perf_counter() - started) * 1000)
    levels = {c.name: sorted(set(reference[c.name].dropna())) for c in service.schema.columns}
    levels = {c: v for c, v in levels.items() if not service.schema.by_name[c].numeric}
    masker = shap.maskers.Independent(_encode(background, names, levels), background_rows)
    explainer = shap.explainers.Exact(_shap_model(service, names, levels), masker)
    matrix = _encode(explained, names, levels)
    explainer(matrix[:1], silent=True)  # warm-up, not timed
    theirs, shap_ms = [], []
    for i in range(rows):
        started = time.perf_counter()
        theirs.append(explainer(matrix[i : i + 1], silent=True).values[0])
        shap_ms.append((time.perf_counter() - started) * 1000)
    diff = max(
        float(np.max(np.abs(np.array([m["attributions"][c] for c in names]) - values)))
        for m, values in zip(mine, theirs, strict=True)
    )
    return {
        "ours": statistics.median(ours_ms),
        "shap": statistics.median(shap_ms),
        "diff": diff,
        "model_rows": ours.cost_rows,
    }


def main() -> None:
    parser = cli.parser(__doc__)
    parser.add_argument("--rows", type=int, default=4, help="rows explained per setting")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    root = Path(tempfile.mkdtemp(prefix="mlcycle-bench-explain-"))
    use_store(root, args.tracking_uri)
    import mlflow

    from serving.explain import reference_background
    from serving.settings import Settings
    from serving.watcher import mlflow_loader

    version = mlflow.MlflowClient().get_model_version_by_alias("credit-risk", "production")
    service = mlflow_loader(Settings(start_watcher=False))(str(version.version))
    reference = reference_background(service, rows=32 + args.rows, seed=1)
    k = len(service.schema.names)
    results = {b: measure(service, reference, b, args.rows) for b in (8, 32)}
    lines = [
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"{k} input columns (2^{k} = {2**k} coalitions); median of {args.rows} rows per "
        "setting, each explained alone after one warm-up row, one core; other jobs share "
        "this machine.",
        "",
        "| background rows | model rows per explained row | ours ms/row | shap Exact ms/row "
        "| shap / ours | max abs difference |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for b, r in results.items():
        lines.append(
            f"| {b} | {r['model_rows']} | {r['ours']:.0f} | {r['shap']:.0f} "
            f"| {r['shap'] / r['ours']:.1f}x | {r['diff']:.1e} |"
        )
        print(f"background {b}: ours {r['ours']:.0f} ms/row, shap {r['shap']:.0f} ms/row")
    report = "\n".join(lines)
    print(report)
    if not args.no_write:
        docs.write_section("explain", report, HEADING)


if __name__ == "__main__":
    main()
