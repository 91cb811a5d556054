"""Admission control: the in-flight bound, the large-body gate, server-wide slots, the drain."""

from __future__ import annotations

import io
import multiprocessing
import threading
import time

import pytest

from serving.admission import Admission, ServerSlots, drain
from serving.errors import Unavailable
from tests.unit.serving.stub import ROW, make_service


def test_requests_past_the_bound_are_refused_at_once_with_retry_after():
    gate = Admission(max_in_flight=2)
    with gate.enter(), gate.enter():
        # Refused while this thread holds both places: it cannot have waited for one.
        with pytest.raises(Unavailable) as err, gate.enter():
            pass
        assert err.value.status == 503 and err.value.headers == {"Retry-After": "1"}
        assert "MLCYCLE_MAX_IN_FLIGHT" in err.value.message
    with gate.enter():  # places are given back
        assert gate.in_flight == 1
    assert gate.refused == 1 and gate.in_flight == 0


def _hold_large(gate: Admission, entered: threading.Event, release: threading.Event) -> None:
    with gate.large():
        entered.set()
        release.wait(5)


def test_a_second_large_body_is_refused_while_one_is_scored_and_none_may_wait():
    gate = Admission(max_in_flight=8, large_queue=0)
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_large, args=(gate, entered, release))
    holder.start()
    assert entered.wait(5)
    with pytest.raises(Unavailable, match="large request"), gate.large():
        pass
    release.set()
    holder.join(5)
    with gate.large():  # free again
        pass


def test_a_queued_large_body_waits_its_turn_within_the_wait():
    gate = Admission(max_in_flight=8, large_queue=1, large_wait_s=5)
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_large, args=(gate, entered, release))
    holder.start()
    assert entered.wait(5)
    threading.Timer(0.1, release.set).start()
    with gate.large():  # no Unavailable: it got its turn within the 5 s wait
        assert release.is_set(), "in only once the holder let go"
    holder.join(5)


def test_a_queued_large_body_gives_up_after_the_wait():
    gate = Admission(max_in_flight=8, large_queue=1, large_wait_s=0.1)
    entered, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_large, args=(gate, entered, release))
    holder.start()
    assert entered.wait(5)
    with pytest.raises(Unavailable, match="no turn"), gate.large():
        pass
    release.set()
    holder.join(5)


def _hold_slot(folder, ready, release) -> None:
    slots = ServerSlots(folder, 1)
    fd = slots.acquire(time.monotonic() + 5)
    ready.set()
    release.wait(10)
    slots.release(fd)


def test_server_slots_are_shared_by_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold_slot, args=(tmp_path, ready, release))
    other.start()
    assert ready.wait(30)
    gate = Admission(max_in_flight=8, large_wait_s=0.1, slots=ServerSlots(tmp_path, 1))
    with pytest.raises(Unavailable), gate.large():
        pass
    release.set()
    other.join(10)
    with gate.large():  # the other process let go of it
        pass


def test_drain_reads_up_to_the_cap_and_says_whether_the_connection_can_stay():
    body = io.BytesIO(b"x" * 1000)
    assert drain(body, 1000, cap=4096) is True and body.read() == b""
    body = io.BytesIO(b"x" * 10_000)
    assert drain(body, 10_000, cap=4096) is False and len(body.read()) == 10_000 - 4096
    assert drain(io.BytesIO(b""), None, cap=10) is False


def _app(settings, **changes):

    from serving.app import create_app

    return create_app(settings.model_copy(update=changes), make_service())


def test_too_many_rows_is_a_413_naming_the_limit(settings):
    app = _app(settings, max_rows=3)
    resp = app.test_client().post("/invocations", json={"dataframe_records": [ROW] * 4})
    assert resp.status_code == 413
    message = resp.get_json()["message"]
    assert "MLCYCLE_MAX_ROWS" in message and "limit of 3 rows" in message
    ok = app.test_client().post("/invocations", json={"dataframe_records": [ROW] * 3})
    assert ok.status_code == 200
    app.extensions["mlcycle"].close()


def test_the_server_answers_503_while_its_log_is_down_and_readiness_says_why(settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    app = _app(settings, prediction_log_url=f"sqlite:///{blocker / 'p.db'}")
    client = app.test_client()
    first = client.post("/invocations", json={"dataframe_records": [ROW]})
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert "nothing was recorded" in first.get_json()["message"]
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503
    assert ready.get_json()["prediction_log"]["available"] is False
    assert client.get("/v2/health/live").status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "mlcycle_prediction_log_store_unavailable 1.0" in metrics
    app.extensions["mlcycle"].close()


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "flask"])
@pytest.mark.parametrize("length", ["abc", "-5"])
def test_a_bad_content_length_is_a_400_that_closes_the_connection(settings, fast_path, length):
    app = _app(settings, fast_path=fast_path)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/invocations",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(b"{}"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5001",
        "wsgi.url_scheme": "http",
    }
    answer: dict = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=status, headers=dict(headers))

    body = b"".join(app.wsgi_app(environ, start_response))
    assert answer["status"].startswith("400"), (answer, body)
    assert b"Content-Length" in body and answer["headers"].get("Connection") == "close"
    app.extensions["mlcycle"].close()
