"""Signed model versions: an HMAC-SHA256 over a version's artifact files, kept on the version.

A registered model is code (serving runs its `model_code.py`), so serving loads only what the
holder of the signing key registered. In: a registered version's files (downloaded through
MLflow) and the key (`MLCYCLE_SIGNING_KEY`). Out: `sign_version` stores the signature as the
version tag `mlcycle.signature`; `verify` raises `SignatureError` (its `reason`: `unsigned`
or `mismatch`) for a folder whose files are not the ones that were signed.

The signed message is the manifest of the model folder: one line per file, sorted by its path
relative to the folder, `<path>\\t<sha256 of its bytes>\\n`. Adding, removing, renaming or
changing any file changes it. `registered_model_meta`, which MLflow writes into every folder
it downloads for a `models:/` URI, is not part of the model and is left out.
"""

from __future__ import annotations

import hashlib
import hmac
import tempfile
from pathlib import Path
from typing import Any

SIGNATURE_TAG = "mlcycle.signature"
SCHEME = "hmac-sha256-v1"
_DOWNLOAD_ONLY = frozenset({"registered_model_meta"})
_CHUNK = 1 << 20


class SignatureError(Exception):
    """A model folder that does not carry a valid signature.

    Attributes:
        reason: `unsigned` (no signature, or not one this version understands) or
            `mismatch` (the files differ from those signed, or another key signed them).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def manifest(root: Path) -> bytes:
    """The manifest of the files under `root` (the signed message)."""
    lines = []
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in _DOWNLOAD_ONLY:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                digest.update(chunk)
        lines.append(f"{rel}\t{digest.hexdigest()}\n")
    return "".join(lines).encode()


def signature(root: Path, key: str) -> str:
    """The signature of the files under `root`: `hmac-sha256-v1:<hex>`."""
    mac = hmac.new(key.encode(), manifest(root), hashlib.sha256).hexdigest()
    return f"{SCHEME}:{mac}"


def verify(root: Path, signed: str | None, key: str) -> None:
    """Check that the files under `root` are the ones `signed` was made over with `key`.

    Raises:
        SignatureError: `unsigned` without a signature, `mismatch` when it does not match.
    """
    if not signed or not signed.startswith(f"{SCHEME}:"):
        raise SignatureError("unsigned", f"the version carries no {SCHEME} signature")
    if not hmac.compare_digest(signature(root, key), signed):
        raise SignatureError(
            "mismatch", "the version's files do not match its signature (changed after signing)"
        )


def sign_version(client: Any, name: str, version: str, key: str) -> str:
    """Sign a registered version's files and store the signature on it.

    Every step that registers a version (training, fine-tuning, compression) calls this right
    after `register_model`, before the version can be promoted.

    Args:
        client: an `mlflow.MlflowClient` allowed to tag the version.
        name: registered model name.
        version: the version to sign.
        key: the signing key (`MLCYCLE_SIGNING_KEY`).

    Returns:
        The signature stored in the version tag `mlcycle.signature`.
    """
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlcycle-sign-") as tmp:
        local = mlflow.artifacts.download_artifacts(f"models:/{name}/{version}", dst_path=tmp)
        signed = signature(Path(local), key)
    client.set_model_version_tag(name, str(version), SIGNATURE_TAG, signed)
    return signed
