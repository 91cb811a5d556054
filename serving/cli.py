"""`mlcycle serve` (the launcher), `mlcycle score` (streaming batch scoring), `mlcycle label`.

In: typed command-line options (each mirrors an `MLCYCLE_*` variable; see docs/settings.md).
Out: `serve` validates the settings (environment plus options), refusing a bad value with one
line naming the variable, then runs the app under granian or gunicorn with N worker processes
until stopped, then drains it (readiness 503, accepted requests answered, killed after a grace
period); the workers get the settings from the run folder, never from per-option variables;
`score` writes one probability per input row to a Parquet file; `label` stores a CSV of
observed outcomes in the log's `labels` table (`serving.predlog.labels`).
Heavy imports (mlflow, pyarrow) happen inside the functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from serving.settings import Settings

log = logging.getLogger(__name__)
APP_FACTORY = "serving.app:create_app"


def server_command(
    server: str,
    target: str,
    host: str,
    port: int,
    workers: int,
    threads: int,
    factory: bool = True,
    drain_s: int = 10,
    tls: tuple[str, str] | None = None,
) -> list[str]:
    """The command line that runs a WSGI app under the chosen server.

    Args:
        server: "granian" or "gunicorn" (sync workers when threads == 1, else gthread).
        target: "module:callable".
        host: bind address.
        port: bind port.
        workers: worker processes.
        threads: threads per worker.
        factory: whether `target` is a factory to call.
        drain_s: once stopped, seconds a worker may take to finish its requests before the
            server kills it.
        tls: (certificate, PKCS#8 private key) PEM files to serve HTTPS with (granian only).

    Returns:
        argv for `subprocess`.
    """
    bindir = Path(sys.executable).parent
    if server == "granian":
        cmd = [
            str(bindir / "granian"),
            "--interface",
            "wsgi",
            "--host",
            host,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--blocking-threads",
            str(threads),
            "--no-ws",
            "--log-level",
            "warning",
            "--respawn-failed-workers",
            "--workers-kill-timeout",
            str(drain_s),
        ]
        if tls:
            cmd += ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]]
        return [*cmd, "--factory", target] if factory else [*cmd, target]
    if server == "gunicorn":
        if tls:
            raise typer.BadParameter("TLS is served by granian: use --server granian")
        app = f"{target}()" if factory else target
        cmd = [
            str(bindir / "gunicorn"),
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--config",
            "python:serving.gunicorn_conf",
            "--log-level",
            "warning",
            "--graceful-timeout",
            str(drain_s),
        ]
        if threads > 1:
            cmd += ["--worker-class", "gthread", "--threads", str(threads)]
        return [*cmd, app]
    raise typer.BadParameter(f"unknown server {server!r}: use granian or gunicorn")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 in containers)."),
    port: int = typer.Option(5001, help="Port to listen on."),
    workers: int = typer.Option(None, min=1, help="Worker processes [env MLCYCLE_WORKERS, 2]."),
    threads: int = typer.Option(
        None, min=1, help="Request threads per worker [env MLCYCLE_THREADS, 32]."
    ),
    server: str = typer.Option(None, help="granian or gunicorn [env MLCYCLE_SERVER, granian]."),
    model_name: str = typer.Option(None, help="Registered model [env MLCYCLE_MODEL_NAME]."),
    alias: str = typer.Option(None, help="Alias to follow [env MLCYCLE_MODEL_ALIAS, production]."),
    poll_interval: float = typer.Option(None, help="Registry poll seconds [env, 2]."),
    batching: bool = typer.Option(None, "--batching/--no-batching", help="Micro-batching."),
    cache: bool = typer.Option(None, "--cache/--no-cache", help="Prediction cache."),
    prediction_log_url: str = typer.Option(None, help="SQLAlchemy URL of the prediction log."),
    grpc_port: int = typer.Option(
        None, min=1, max=65535, help="Also serve OIP v2 over gRPC on this port [env, off]."
    ),
    tls_cert: Path = typer.Option(
        None, help="PEM certificate: serve HTTPS (with --tls-key) [env MLCYCLE_TLS_CERT]."
    ),
    tls_key: Path = typer.Option(
        None, help="PEM private key (PKCS#8) of --tls-cert [env MLCYCLE_TLS_KEY]."
    ),
) -> None:
    """Serve the production model over HTTP (and gRPC with --grpc-port) until interrupted."""
    from serving.settings import Settings, SettingsError
    from serving.web.settings import get_settings as web_settings

    options = {
        "workers": workers,
        "threads": threads,
        "server": server,
        "model_name": model_name,
        "model_alias": alias,
        "poll_interval": poll_interval,
        "batching": batching,
        "cache": cache,
        "prediction_log_url": prediction_log_url,
        "grpc_port": grpc_port,
        "tls_cert": str(tls_cert) if tls_cert else None,
        "tls_key": str(tls_key) if tls_key else None,
    }
    try:
        settings = Settings.load(**{k: v for k, v in options.items() if v is not None})
        web_settings()  # the workers' web pages read it: refuse a bad value now, not per page
    except SettingsError as exc:
        for line in str(exc).splitlines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(2) from None
    if settings.grpc_port:
        settings = settings.model_copy(update={"grpc_host": settings.grpc_host or host})
        busy = _port_taken(settings.grpc_host, settings.grpc_port)
        if busy:
            typer.echo(f"error: MLCYCLE_GRPC_PORT {settings.grpc_port}: {busy}", err=True)
            raise typer.Exit(2)
    raise typer.Exit(launch(APP_FACTORY, settings, host, port))


def _port_taken(host: str, port: int) -> str | None:
    """Why `host:port` cannot be bound, or None. The workers bind it with SO_REUSEPORT, which
    would share a port another server holds the same way: refuse that here instead."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds it
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def launch(target: str, settings: Settings, host: str, port: int, factory: bool = True) -> int:
    """Run a WSGI app under a server with a fresh run folder and Prometheus multiprocess folder.

    The workers get `settings` from the run folder (`serving.rundir.write_settings`); their
    environment only names the folder (`MLCYCLE_RUN_DIR`) and the Prometheus folder.

    Args:
        target, host, port, factory: as for `server_command`.
        settings: the serving settings: server, workers, threads; `shutdown_delay_s` (after a
            stop signal, seconds to keep serving with readiness 503) and `shutdown_grace_s`
            (seconds until the server is killed, see `_supervise`).

    Returns:
        The server's exit code.
    """
    from serving.rundir import write_settings
    from serving.settings import drain_s

    run_dir = tempfile.mkdtemp(prefix="mlcycle-serve-")
    prom = Path(run_dir) / "prometheus"
    prom.mkdir()
    write_settings(run_dir, settings.model_dump_json())
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # verified loads download
    for knob in _BLAS_THREADS:  # the workers are the parallelism: one BLAS thread each
        env.setdefault(knob, "1")
    env.setdefault("MALLOC_ARENA_MAX", "2")  # request threads' freed memory is reused
    env.update({"PROMETHEUS_MULTIPROC_DIR": str(prom), "MLCYCLE_RUN_DIR": run_dir})
    server, workers, threads = settings.server, settings.workers, settings.threads
    delay_s, grace_s = settings.shutdown_delay_s, settings.shutdown_grace_s
    drain = max(1, int(drain_s(delay_s, grace_s)))
    tls = (settings.tls_cert, settings.tls_key) if settings.tls_cert and settings.tls_key else None
    cmd = server_command(server, target, host, port, workers, threads, factory, drain, tls)
    log.info(
        "serving on %s://%s:%d with %s, %d workers x %d threads",
        "https" if tls else "http",
        host,
        port,
        server,
        workers,
        threads,
    )
    if settings.grpc_port:
        log.info(
            "and OIP v2 over gRPC on %s:%d in each worker", settings.grpc_host, settings.grpc_port
        )
    # Its own session and group: a terminal's Ctrl-C or a `kill` of this launcher's group reaches
    # the server's main process once, through `_supervise`, never its workers directly (granian
    # could hang when its workers died under it mid-shutdown). It dies with this launcher.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with(os.getpid()))
    try:
        return _supervise(proc, grace_s, delay_s, partial(_mark_draining, run_dir))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _mark_draining(run_dir: str, why: str) -> None:
    from serving.rundir import mark_draining

    try:
        mark_draining(run_dir, f"shutting down ({why})")
    except OSError:  # readiness stays 200 a little longer; the stop itself must go on
        log.exception("could not mark the server draining in %s", run_dir)


def _die_with(launcher: int) -> Callable[[], None]:
    """A `preexec_fn`: the server's process gets SIGTERM when `launcher` dies, even by SIGKILL."""

    def follow() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != launcher:  # it died before the line above: nobody to follow
            os._exit(1)

    return follow


def _supervise(
    proc: subprocess.Popen,
    grace_s: float,
    delay_s: float = 0.0,
    on_stop: Callable[[str], None] | None = None,
) -> int:
    """Wait for the server; stop it on SIGINT/SIGTERM.

    The first signal calls `on_stop(signal name)` (readiness turns 503) and reaches the
    server's main process `delay_s` seconds later: meanwhile it keeps serving, so load
    balancers stop sending it requests first. The server then stops accepting, finishes the
    requests it accepted and exits. A second signal, or a server still running `grace_s`
    seconds after the first, gets SIGKILL for the server and its workers.

    Returns:
        The server's exit code.
    """
    first: list[tuple[float, int]] = []  # (when, which) of the first stop signal
    forwarded: list[bool] = []

    def forward() -> None:
        forwarded.append(True)
        log.info("stopping the server: no new connections; requests in flight finish")
        proc.send_signal(first[0][1])

    def on_signal(signum, _frame):
        if first:
            _kill_group(proc, "a second signal")
            return
        first.append((time.monotonic(), signum))
        log.info("%s: readiness 503, stopping in %.1f s", signal.Signals(signum).name, delay_s)
        if on_stop:
            on_stop(signal.Signals(signum).name)
        if delay_s <= 0:
            forward()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    while True:
        try:
            return proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if not first:
                continue
        elapsed = time.monotonic() - first[0][0]
        if not forwarded and elapsed >= delay_s:
            forward()
        if elapsed > grace_s:
            _kill_group(proc, f"still running {grace_s:.0f} s after the stop signal")


def _kill_group(proc: subprocess.Popen, why: str) -> None:
    log.warning("killing the server and its workers: %s", why)
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(proc.pid, signal.SIGKILL)


def score(
    input_csv: Path = typer.Argument(
        ..., help="CSV file with the model's input columns (--engine spark: or Parquet)."
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Parquet file to write."),
    model_name: str = typer.Option(None, help="Registered model [env MLCYCLE_MODEL_NAME]."),
    version: str = typer.Option(None, help="Version to use (default: production)."),
    chunk_rows: int = typer.Option(25_000, help="Rows per chunk (memory stays flat)."),
    keep_inputs: bool = typer.Option(False, help="Copy the input columns into the output."),
    engine: str = typer.Option(
        "local", help="local (this process, fast path) or spark (mlflow spark_udf on --master)."
    ),
    master: str = typer.Option("local[*]", help="--engine spark: the Spark master URL."),
    driver_memory: str = typer.Option("1g", help="--engine spark: the driver's JVM heap."),
) -> None:
    """Score a dataset with the registered model; write Parquet.

    `local` streams a CSV in chunks through the fast path into one file; `spark` scores a CSV
    or Parquet dataset of any size on a cluster into a Parquet folder.
    """
    from serving.scoring import ScoringError, score_file

    if engine not in ("local", "spark"):
        typer.echo(f"error: unknown engine {engine!r}: use local or spark", err=True)
        raise typer.Exit(2)
    try:
        if engine == "spark":
            from serving.sparkscore import score_dataset

            rows, seconds, label = score_dataset(
                str(input_csv), str(output), model_name, version, master, keep_inputs,
                driver_memory, batch_rows=chunk_rows,
            )  # fmt: skip
        else:
            rows, seconds, label = score_file(
                input_csv, output, model_name, version, chunk_rows, keep_inputs
            )
    except ScoringError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"scored {rows:,} rows with {label} in {seconds:.2f}s "
        f"({rows / max(seconds, 1e-9):,.0f} rows/s) -> {output}"
    )


def label(
    labels_csv: Path = typer.Argument(
        ..., help="CSV with columns request_id, label (0/1) and optionally row (default 0)."
    ),
    log_url: str = typer.Option(
        None, "--log-url", help="Prediction log URL [env MLCYCLE_PREDICTION_LOG_URL]."
    ),
) -> None:
    """Store observed outcomes of served rows in the prediction log's `labels` table.

    Idempotent on (request_id, row): a changed label replaces the old one. Unknown rows and
    invalid entries are counted and reported, never stored; they do not stop the rest.
    Exit code: 0 every entry stored or unchanged, 1 some were unknown or invalid, 2 the file or
    the log cannot be read.
    """
    from serving.predlog.labels import LabelError, load_csv
    from serving.settings import SettingsError, get_settings

    try:
        url = log_url or get_settings().prediction_log_url
        receipt = load_csv(url, labels_csv)
    except (SettingsError, LabelError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(receipt.line())
    for request_id, row in receipt.unknown[:10]:
        typer.echo(f"  unknown: request_id={request_id} row={row}", err=True)
    for bad in receipt.invalid[:10]:
        typer.echo(f"  invalid entry {bad.index}: {bad.reason}", err=True)
    raise typer.Exit(1 if receipt.unknown or receipt.invalid else 0)
