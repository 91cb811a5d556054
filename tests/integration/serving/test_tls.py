"""`mlcycle serve --tls-cert/--tls-key`: granian answers HTTPS with a certificate made here."""

from __future__ import annotations

import datetime
import ipaddress
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import MLCYCLE_SERVE, free_port, start, stop, wait_http

pytestmark = pytest.mark.slow


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its PKCS#8 key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_answers_https_with_the_given_certificate(trained_store, tmp_path, monkeypatch):
    import os

    cert, key = _self_signed(tmp_path)
    port = free_port()
    env = dict(os.environ) | {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MLCYCLE_HOME": str(tmp_path),
        "MLCYCLE_LOG_PREDICTIONS": "false",
    }
    cmd = [sys.executable, "-m", *MLCYCLE_SERVE, "--port", str(port), "--workers", "1"]
    cmd += ["--tls-cert", str(cert), "--tls-key", str(key)]
    proc = start(cmd, env, tmp_path / "server.log")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # trust exactly this certificate
    try:
        wait_http(f"https://127.0.0.1:{port}/v2/health/ready", proc, tmp_path / "server.log")
        version = requests.get(f"https://127.0.0.1:{port}/version", timeout=5).json()
        assert version["model_version"] == trained_store.version
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/version", timeout=5)
    finally:
        stop(proc)
    assert "serving on https://" in (tmp_path / "server.log").read_text()
