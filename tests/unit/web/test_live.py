"""Live figures from Prometheus exposition text: parsing, differences and quantiles."""

from __future__ import annotations

import math

import pytest

from serving.web import live

TEXT = """
# TYPE mlcycle_requests_total counter
mlcycle_requests_total{route="/predict",method="POST",status="200",model_version="1"} 90
mlcycle_requests_total{route="/predict",method="POST",status="400",model_version="1"} 8
mlcycle_requests_total{route="/invocations",method="POST",status="500",model_version="1"} 2
mlcycle_requests_total{route="/metrics",method="GET",status="200",model_version="1"} 50
# TYPE mlcycle_request_duration_seconds histogram
mlcycle_request_duration_seconds_bucket{route="/predict",model_version="1",le="0.001"} 50
mlcycle_request_duration_seconds_bucket{route="/predict",model_version="1",le="0.01"} 98
mlcycle_request_duration_seconds_bucket{route="/predict",model_version="1",le="+Inf"} 100
mlcycle_request_duration_seconds_count{route="/predict",model_version="1"} 100
mlcycle_request_duration_seconds_sum{route="/predict",model_version="1"} 0.3
# TYPE mlcycle_prediction_score histogram
mlcycle_prediction_score_bucket{model_version="1",le="0.5"} 70
mlcycle_prediction_score_bucket{model_version="1",le="1.0"} 100
mlcycle_prediction_score_bucket{model_version="1",le="+Inf"} 100
mlcycle_prediction_score_count{model_version="1"} 100
mlcycle_prediction_score_sum{model_version="1"} 40
"""


def test_snapshot_counts_api_routes_only():
    snap = live.parse_snapshot(TEXT, now=10.0)
    assert snap.requests == 100
    assert (snap.client_errors, snap.server_errors) == (8, 2)
    assert snap.latency[math.inf] == 100 and snap.scores[0.5] == 70


def test_quantiles_interpolate_inside_the_bucket():
    buckets = {0.001: 50.0, 0.01: 98.0, math.inf: 100.0}
    assert live.quantile(0.5, buckets) == pytest.approx(0.001)
    assert live.quantile(0.75, buckets) == pytest.approx(0.001 + 0.009 * 25 / 48)
    assert live.quantile(0.99, buckets) == pytest.approx(0.01)  # falls in +Inf: lower bound
    assert live.quantile(0.5, {math.inf: 0.0}) is None


def test_summary_is_the_difference_between_snapshots():
    old = live.parse_snapshot(TEXT, now=0.0)
    new = live.parse_snapshot(TEXT.replace(" 90\n", " 190\n"), now=100.0)
    out = live.summarize(new, old, started=0.0)
    assert out["requests"] == 100 and out["request_rate"] == pytest.approx(1.0)
    assert out["error_rate"] == 0.0
    first = live.summarize(old, None, started=-100.0)
    assert first["error_rate"] == pytest.approx(0.10)
    assert first["server_error_rate"] == pytest.approx(0.02)
    assert [b["count"] for b in first["scores"]] == [70, 30]


def test_sampler_keeps_a_ring_and_survives_a_bad_source():
    texts = iter([TEXT, "garbage {{{", TEXT])
    sampler = live.LiveSampler(lambda: next(texts), interval=0.0, started=0.0)
    assert sampler.sample() is not None
    assert sampler.sample() is None
    out = sampler.summary()
    assert out["window"] == "last hour" and out["requests"] == 0
    assert len(out["series"]) == 1
