"""Signed models end to end: training signs, a real server verifies before it loads.

In: the trained store's copy; its version signed with a key (`mlcycle sign`), a second version
trained with `MLCYCLE_SIGNING_KEY` set (so the pipeline signs it), whose `weights.npz` in the
artifact store is then rewritten with other, loadable weights; a third version registered
unsigned. Out: a
server with the key keeps serving the first version when either is promoted, says why in
`/health`, the log and `mlcycle_model_refused_total{reason}`, and the Models page shows it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from tests.helpers import records, register_copy, wait_until

pytestmark = pytest.mark.slow

KEY = "test-signing-key-0123456789abcdef"


def _artifact_dir(client, name: str, version: str) -> Path:
    import mlflow

    source = client.get_model_version(name, version).source
    if source.startswith("models:/"):
        source = mlflow.get_logged_model(source.split("/")[-1]).artifact_location
    return Path(source.removeprefix("file://"))


def _rewrite_weights(folder: Path) -> None:
    """Other weights of the same shapes: the model still loads, only the signature can tell."""
    (weights,) = folder.rglob("weights.npz")
    arrays = dict(np.load(weights))
    last = sorted(arrays)[-1]
    arrays[last] = arrays[last] + 0.5
    with weights.open("wb") as out:
        np.savez(out, **arrays)


def _refused(url: str, version: str, reason: str) -> dict:
    detail = {}

    def refused() -> bool:
        detail.update(requests.get(url + "/health", timeout=10).json())
        error = detail.get("last_load_error") or {}
        return error.get("version") == version and error.get("refused") == reason

    wait_until(refused, 60, lambda: f"v{version} refused ({reason}): {detail}", every=0.2)
    return detail


def test_tampered_and_unsigned_versions_are_refused_and_the_signed_one_keeps_serving(
    store_copy, train_another_version, start_server, example_rows, tmp_path, monkeypatch
):
    import mlflow
    from typer.testing import CliRunner

    from mlcycle.cli import app
    from mlcycle.core.registry import promote
    from mlcycle.core.signing import SIGNATURE_TAG

    name, client = store_copy.model_name, mlflow.MlflowClient()
    monkeypatch.setenv("MLCYCLE_SIGNING_KEY", KEY)
    signed = CliRunner().invoke(app, ["sign", name, store_copy.version])
    assert signed.exit_code == 0 and f"v{store_copy.version} signed" in signed.output
    trained = train_another_version(promote_margin=1.0)
    assert client.get_model_version(name, trained).tags[SIGNATURE_TAG].startswith("hmac-sha256")
    monkeypatch.delenv("MLCYCLE_SIGNING_KEY")
    unsigned = register_copy(store_copy, tmp_path / "unsigned")
    _rewrite_weights(_artifact_dir(client, name, trained))

    server = start_server(
        workers=1,
        store=store_copy,
        MLCYCLE_SIGNING_KEY=KEY,
        MLCYCLE_LOAD_RETRY_MIN_S=600,
        MLCYCLE_LOAD_RETRY_MAX_S=600,
    )
    body = {"dataframe_records": records(example_rows.head(2))}
    for version, reason in ((trained, "mismatch"), (unsigned, "unsigned")):
        promote(name, version, "production", f"test: {reason}")
        detail = _refused(server.url, version, reason)
        assert detail["model_version"] == store_copy.version, "the signed version keeps serving"
        r = requests.post(server.url + "/invocations", json=body, timeout=10)
        assert r.status_code == 200 and r.headers["X-Model-Version"] == store_copy.version
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        line = f'mlcycle_model_refused_total{{model_version="{version}",reason="{reason}"}}'
        assert line in metrics
    page = requests.get(server.url + "/ui/models", timeout=30).text
    assert "refused: unsigned" in page
    output = server.output.read_text()
    assert "do not match its signature" in output and "carries no" in output
