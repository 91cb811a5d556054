"""Micro-batching and the prediction cache change speed, never results."""

from __future__ import annotations

import threading

import numpy as np

from serving.batching import MicroBatcher
from serving.cache import PredictionCache
from tests.helpers import returns_within
from tests.unit.serving.stub import ROW, StubModel, make_service


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    homes = np.array(["OWN", "RENT", None], dtype=object)
    return {
        "age": [float(v) for v in rng.integers(18, 80, n)],
        "income": [float(v) for v in rng.normal(5e4, 2e4, n)],
        "home": list(homes[rng.integers(0, 3, n)]),
        "purpose": list(np.array(["car", "edu"], dtype=object)[rng.integers(0, 2, n)]),
    }


def _score(svc, raw, turn=None):
    n = len(raw["age"])
    return svc.score(svc.schema.validate(raw, n), raw, n, turn)


def test_batching_and_cache_give_identical_results_under_concurrency():
    plain = make_service()
    fancy = make_service(batching=True, max_batch=64, max_wait_us=300, cache_size=50)
    requests = [_rows(1 + i % 3, seed=i % 40) for i in range(400)]
    expected = [_score(plain, r) for r in requests]
    got = [None] * len(requests)

    def worker(k):
        for i in range(k, len(requests), 8):
            turn = fancy.batcher.expect()
            try:
                got[i] = _score(fancy, requests[i], turn)
            finally:
                turn.cancel()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-12)
    assert fancy.cache.hits > 0 and fancy.cache.misses > 0
    assert fancy.batcher.rows >= fancy.batcher.batches


def test_concurrent_requests_share_forward_passes():
    calls = []
    gate = threading.Event()

    def slow_predict(cols):
        calls.append(len(cols["x"]))
        gate.wait(0.05)
        return cols["x"] * 2.0

    batcher = MicroBatcher(slow_predict, max_batch=100, max_wait_us=0)
    out = [None] * 10

    def call(i):
        out[i] = batcher.submit({"x": np.array([float(i)])}, 1)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(10)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [float(o[0]) for o in out] == [2.0 * i for i in range(10)]
    assert len(calls) < 10 and sum(calls) == 10


def test_lone_request_is_not_delayed():
    # A 10-minute window: a lone request that waited for partners would never come back here.
    batcher = MicroBatcher(lambda cols: cols["x"], max_batch=64, max_wait_us=600_000_000)
    args = ({"x": np.array([1.0])}, 1, batcher.expect())
    out = returns_within(10, "a lone request", batcher.submit, *args)
    np.testing.assert_array_equal(out, [1.0])


def test_errors_reach_every_caller_of_a_batch():
    def boom(cols):
        raise ValueError("bad")

    batcher = MicroBatcher(boom, max_batch=8, max_wait_us=0)
    try:
        batcher.submit({"x": np.array([1.0])}, 1)
    except ValueError as exc:
        assert "bad" in str(exc)
    else:
        raise AssertionError("no error")


def test_cache_is_an_lru_with_counters():
    cache = PredictionCache(2)
    cache.put_many([("a",), ("b",)], [0.1, 0.2])
    assert cache.get_many([("a",)]) == [0.1]
    cache.put_many([("c",)], [0.3])  # evicts b, the least recently used
    assert cache.get_many([("b",), ("c",)]) == [None, 0.3]
    assert (cache.hits, cache.misses) == (2, 1)


def test_cache_skips_the_model_on_hits_and_swap_invalidates():
    svc = make_service(cache_size=10)
    raw = {k: [v] for k, v in ROW.items()}
    _score(svc, raw)
    _score(svc, raw)
    assert svc.model.calls == 1 and svc.cache.hits == 1
    new = make_service("2", cache_size=10)  # a swap brings a fresh, empty cache
    assert len(new.cache) == 0


def test_partial_hits_keep_row_order():
    svc = make_service(cache_size=100)
    a, b = _rows(3, seed=1), _rows(3, seed=2)
    _score(svc, a)
    mixed = {k: [a[k][0], b[k][1], a[k][2]] for k in a}
    expected = StubModel().predict_columns(svc.schema.validate(mixed, 3))
    np.testing.assert_allclose(_score(svc, mixed), expected, atol=1e-12)
