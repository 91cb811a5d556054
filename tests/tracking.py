"""A real remote tracking stack for tests: an S3 object store and an `mlflow server` on loopback.

In: a folder for the processes' logs, a PostgreSQL admin URL (`tests.postgres.server()`).
Out: `s3_bucket()` runs `moto_server` (S3 in server mode, PyPI `moto[server]`) on a free port
and creates a bucket, giving an `S3`; `mlflow_server()` runs `mlflow server` with a backend
store URL and an `--artifacts-destination` (proxied artifacts, `--serve-artifacts`), giving its
`http://` URL. Clients of that server need no object-store credentials: only the server talks to S3.
Skips the test, with the reason, when `moto_server` is not installed. Imported as
`tests.tracking`.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, start, stop, wait_http

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@dataclass(frozen=True)
class S3:
    """A running S3-compatible server and the bucket made on it."""

    endpoint: str
    bucket: str

    def client(self):
        """A boto3 S3 client on the server (the test's credentials)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self) -> list[str]:
        """Every object key in the bucket."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _tool(name: str) -> str:
    """The console script `name` beside this interpreter (else on PATH), or skip the test."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.is_file() else shutil.which(name)
    if not found:
        pytest.skip(f"`{name}` is not installed (pip install -e '.[dev]')")
    return found


@contextmanager
def s3_bucket(folder: Path, bucket: str = "mlflow") -> Iterator[S3]:
    """`moto_server` on a free loopback port with `bucket` created, stopped on exit."""
    pytest.importorskip("boto3", reason="boto3 is needed (pip install -e '.[dev]')")
    port = free_port()
    log = folder / "s3.log"
    proc = start([_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)], dict(os.environ), log)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/", proc, log, timeout=60)
        s3 = S3(endpoint, bucket)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        stop(proc)


@contextmanager
def mlflow_server(
    folder: Path, backend_uri: str, artifacts: str, s3: S3 | None = None
) -> Iterator[str]:
    """`mlflow server` (one worker) on a free loopback port, serving `artifacts` through
    itself (`--serve-artifacts`); with `s3`, the server alone holds the S3 endpoint and
    credentials. Yields its URL; stopped on exit."""
    port = free_port()
    log = folder / "mlflow-server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_S3_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if s3 is not None:
        env |= S3_CREDENTIALS | {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint}
    cmd = [_tool("mlflow"), "server", "--backend-store-uri", backend_uri,
           "--artifacts-destination", artifacts, "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    proc = start(cmd, env, log, cwd=folder)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc, log, timeout=180)
        yield url
    finally:
        stop(proc)
