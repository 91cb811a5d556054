"""`mlcycle demo`: the whole lifecycle on the embedded default, one step after another.

In: the project folder (MLproject) and the embedded stores in it (or `MLFLOW_TRACKING_URI`).
Out: a trained, registered and promoted model; a running server; simulated clean and drifted
traffic in the prediction log; two drift reports; then the lifecycle loop: concept-shifted
traffic with its true labels, live AUC falling, `retrain-on-drift` fine-tuning and promoting v2,
serving following it, live AUC recovering; and the URLs to open. Every step runs the same
public command a user would type, so the demo doubles as living documentation.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import typer

from mlcycle.core import config
from mlcycle.core.settings import SettingsError, SharedSettings
from mlcycle.localserver import LocalServer, ServerError

log = logging.getLogger(__name__)


def _step(title: str) -> None:
    typer.secho(f"\n== {title}", fg=typer.colors.CYAN, bold=True)


def _run(args: list[str], env: dict[str, str], check: bool = True) -> int:
    typer.echo(f"$ {shlex.join(args)}")
    code = subprocess.call(args, env=env)
    if check and code != 0:
        raise typer.Exit(code)
    return code


def _sample_request(url: str) -> None:
    import requests

    row = _example_row()
    typer.echo(f"$ curl -s -X POST {url}/predict -H 'Content-Type: application/json' -d '{row}'")
    answer = requests.post(
        f"{url}/predict", data=row, timeout=5, headers={"Content-Type": "application/json"}
    )
    typer.echo(answer.text)


def _example_row() -> str:
    import json

    from mlcycle.core.synthetic import generate

    frame = generate(n_rows=1, seed=7).drop(columns=["default"])
    return json.dumps(json.loads(frame.to_json(orient="records"))[0])


def demo(
    port: int = typer.Option(5001, help="Loopback port for the model server."),
    epochs: int = typer.Option(
        60, help="Most training epochs for the demo model (early stopping usually ends sooner)."
    ),
    duration: float = typer.Option(20.0, help="Seconds of simulated traffic per phase."),
    rate: float = typer.Option(50.0, help="Simulated requests per second."),
    batch: int = typer.Option(10, help="Rows per simulated request."),
    keep_serving: bool = typer.Option(
        True, help="Keep the server running in the foreground at the end (Ctrl-C stops it)."
    ),
) -> None:
    """Run the whole platform on the embedded default: train → register → serve → drift →
    labels → live AUC → retrain-on-drift → v2 served."""
    try:
        shared = SharedSettings.load()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": config.tracking_uri(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # `mlflow run` starts `python -m pipelines`: it must find this environment's python.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    mlcycle = [sys.executable, "-m", "mlcycle"]
    url = f"http://127.0.0.1:{port}"
    _step("1. Train and register (mlflow run .) — champion/challenger gate decides production")
    _run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "run",
            ".",
            "--env-manager",
            "local",
            "-P",
            f"epochs={epochs}",
        ],
        env,
    )
    _run([*mlcycle, "history", shared.model_name], env)
    _step(f"2. Serve the production model on {url}")
    server = LocalServer(port, env=env)
    try:
        server.start()
        _sample_request(url)
        _step("3. Simulated traffic without drift, then a drift run (expect exit 0)")
        traffic = [
            *mlcycle,
            "simulate",
            "--traffic",
            "--url",
            url,
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--batch",
            str(batch),
        ]
        # Each phase's drift run judges exactly the rows that phase sent.
        rows = int(rate * duration * batch)
        _run([*traffic, "--drift", "0.0"], env)
        _run([*mlcycle, "drift", "--last", str(rows)], env, check=False)
        _step("4. Drifted traffic, then a drift run (expect exit 1: drift)")
        _run([*traffic, "--drift", "0.8"], env)
        _run([*mlcycle, "drift", "--last", str(rows)], env, check=False)
        _loop(mlcycle, traffic, url, env)
        reports = shared.reports_dir
        _step("Done. Open:")
        typer.echo(f"  web app:       {url}/")
        typer.echo(f"  drift report:  {reports / 'latest.html'}")
        typer.echo("  MLflow UI:     make ui  → http://127.0.0.1:5000")
        if keep_serving:
            typer.echo("Serving until Ctrl-C …")
            server.proc.wait()
    except ServerError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _loop(mlcycle: list[str], traffic: list[str], url: str, env: dict) -> None:
    """Steps 5-7: the outcome rule changes, labels come back, the loop retrains, AUC recovers."""
    labelled = [*traffic, "--concept", "1.0", "--labels-after", "1s"]
    since = ["--since", "1h"]
    _step("5. The rule behind the outcome changes; true labels come back (expect ALERT, exit 1)")
    _run([*labelled, "--seed", "11"], env)
    _run([*mlcycle, "performance", *since], env, check=False)
    _step("6. retrain-on-drift: fine-tune on the labelled rows, gate, promote (expect exit 0)")
    before = _serving_version(url)
    _run([*mlcycle, "retrain-on-drift", *since], env, check=False)
    after = _wait_version_change(url, before)
    typer.echo(f"serving v{after} (was v{before})")
    _step(f"7. The same new rule, now served by v{after}: live AUC per version (recovered)")
    _run([*labelled, "--seed", "12"], env)
    _run([*mlcycle, "performance", *since], env, check=False)


def _serving_version(url: str) -> str:
    import requests

    return requests.get(f"{url}/version", timeout=5).json().get("model_version") or ""


def _wait_version_change(url: str, before: str, timeout_s: float = 30.0) -> str:
    """The version serving answers with once it differs from `before` (or `before` again)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = _serving_version(url)
        if now != before:
            return now
        time.sleep(0.5)
    return before
