"""Traffic simulation: loopback-only by default, bounded, counts versions; CSV writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from monitoring.simulate import SimulateError, check_url, send_traffic, write_csv


@pytest.fixture
def server() -> Iterator[tuple[str, list]]:
    """A stand-in /invocations on a free loopback port; fails every third request."""
    app, seen = Flask("stand-in"), []
    app.config["labels"], app.config["answered"] = [], {}

    @app.post("/labels")
    def labels():
        entries = request.get_json()
        app.config["labels"].append((time.monotonic(), entries))
        return jsonify(stored=len(entries), updated=0)

    @app.post("/invocations")
    def invocations():
        body = request.get_json()
        app.config["answered"][request.headers["X-Request-ID"]] = time.monotonic()
        seen.append(len(body["dataframe_records"]))
        if len(seen) % 3 == 0:
            return jsonify(error_code="BAD_REQUEST"), 400
        resp = jsonify(predictions=[0.5] * len(body["dataframe_records"]))
        resp.headers["X-Model-Version"] = "7"
        return resp

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}", seen, app.config
    srv.shutdown()
    thread.join(5)


def test_remote_urls_are_refused_unless_allowed() -> None:
    assert check_url("http://127.0.0.1:5001/", False) == "http://127.0.0.1:5001"
    assert check_url("http://localhost:1", False) == "http://localhost:1"
    assert check_url("http://[::1]:1", False) == "http://[::1]:1"
    with pytest.raises(SimulateError, match="loopback"):
        check_url("http://example.com:5001", False)
    assert check_url("http://example.com:5001", True) == "http://example.com:5001"
    with pytest.raises(SimulateError):
        check_url("ftp://127.0.0.1", False)


def test_traffic_is_bounded_and_summarised(server) -> None:
    url, seen, _ = server
    summary = send_traffic(url, drift=0.5, rate=50, duration_s=0.2, batch=4, progress=False)
    assert summary.sent == 10 == len(seen)  # rate x duration requests, no more
    assert all(n == 4 for n in seen)
    assert summary.failed == 3 and summary.ok == 7 and summary.rows == 28
    assert summary.versions == {"7": 7}  # the stand-in names it on 2xx only
    assert "HTTP 400" in summary.errors[0]
    assert "sent 10 requests" in summary.line()


def test_true_outcomes_follow_answered_requests_after_the_delay(server) -> None:
    from mlcycle.core.synthetic import generate

    url, _, state = server
    summary = send_traffic(
        url, 0.0, rate=20, duration_s=1.0, batch=4, seed=3, progress=False, labels_after_s=0.05
    )
    posts = [(at, e) for at, entries in state["labels"] for e in entries]
    assert summary.ok > 0 and summary.failed > 0  # the stand-in fails every third request
    assert summary.labels_sent == len(posts) == summary.labels_stored == 4 * summary.ok
    assert {e["request_id"] for _, e in posts} <= set(state["answered"])
    assert all(at - state["answered"][e["request_id"]] >= 0.05 for at, e in posts)
    truth = generate(n_rows=20 * 4, seed=3)["default"].tolist()  # rate x duration x batch
    order = list(state["answered"])  # request i carried rows 4i..4i+3
    got = {(order.index(e["request_id"]), e["row"]): e["label"] for _, e in posts}
    assert got == {(i, r): truth[4 * i + r] for (i, r) in got}
    assert f"labels {len(posts)}/{len(posts)} stored" in summary.line()


def test_unreachable_server_counts_failures() -> None:
    summary = send_traffic("http://127.0.0.1:9", 0.0, rate=20, duration_s=0.1, progress=False)
    assert summary.sent == 2 and summary.failed == 2 and summary.ok == 0


def test_write_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "out" / "data.csv", rows=50, seed=1, drift=0.3)
    frame = pd.read_csv(path)
    assert len(frame) == 50 and "default" in frame.columns
    with pytest.raises(SimulateError):
        write_csv(tmp_path / "bad.csv", rows=5, seed=1, drift=2.0)


def test_csv_with_a_concept_shift_keeps_the_inputs_and_changes_labels(tmp_path: Path) -> None:
    plain = pd.read_csv(write_csv(tmp_path / "plain.csv", rows=400, seed=2, drift=0.0))
    shifted = pd.read_csv(write_csv(tmp_path / "shift.csv", rows=400, seed=2, drift=0.0, concept=1))
    pd.testing.assert_frame_equal(plain.drop(columns="default"), shifted.drop(columns="default"))
    assert (plain["default"] != shifted["default"]).any()
    with pytest.raises(SimulateError, match="concept"):
        write_csv(tmp_path / "bad.csv", rows=5, seed=1, drift=0.0, concept=2.0)
