"""`mlcycle.localserver.LocalServer`, the demo's and the notebooks' server, on a real store.

In: a private copy of the trained store, a temporary home folder. Out: started, it answers with
the production version; stopped (explicitly or by leaving its `with`), the launcher and every
process below it are gone and the port is free; a server that exits before it is ready is a
`ServerError` quoting its output, and nothing is left running.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlcycle.localserver import LocalServer, ServerError
from tests.helpers import alive, descendants, port_free, serving_version, wait_until

pytestmark = pytest.mark.slow


def _env(store, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MLCYCLE_HOME": str(home),
        "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{home / 'predictions.db'}",
        "MLCYCLE_REPORTS_DIR": str(home / "reports"),
    }


def test_it_serves_production_until_stopped_and_leaves_nothing(store_copy, tmp_path) -> None:
    log = tmp_path / "server.log"
    with LocalServer(args=["--workers", "1"], env=_env(store_copy, tmp_path), log_path=log) as s:
        assert serving_version(s.url) == store_copy.version
        tree = [s.proc.pid, *descendants(s.proc.pid)]
        assert len(tree) >= 2, "the launcher and the server it supervises"
    assert not s.running
    wait_until(lambda: not any(alive(pid) for pid in tree), 10, f"{tree} gone")
    assert port_free(s.port)
    s.stop()  # a second stop is harmless


def test_a_server_that_exits_before_it_is_ready_is_an_error_with_its_output(tmp_path) -> None:
    log = tmp_path / "server.log"
    server = LocalServer(args=["--workers", "0"], log_path=log)
    with pytest.raises(ServerError, match="exited before it became ready") as caught:
        server.start(timeout_s=60)
    assert "--workers" in str(caught.value), "the message quotes the server's own output"
    assert not server.running
