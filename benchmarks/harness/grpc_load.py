"""A gRPC load generator: N streams sending one prebuilt ModelInfer request back to back.

In: a `host:port`, the serialized `ModelInferRequest`, the number of streams and seconds. Each
stream has a channel (an HTTP/2 connection) of its own, as each wrk connection is one TCP
connection, and keeps one call in flight; the request is sent as prebuilt bytes and the answer
is not decoded, so the client costs little beside the server on a small machine.
Out: the figures `benchmarks.harness.wrk.run` gives: req/s, p50/p99 in ms, errors (calls that
ended with a status other than OK) and the calls answered. Every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

INFER = "/inference.GRPCInferenceService/ModelInfer"


def call_once(target: str, request: bytes, timeout: float = 30) -> bytes:
    """One ModelInfer call; the serialized answer (raises `grpc.RpcError` on a refusal)."""
    with grpc.insecure_channel(target) as channel:
        return channel.unary_unary(INFER)(request, timeout=timeout)


def run(target: str, request: bytes, streams: int, seconds: float) -> dict:
    """Send `request` over `streams` streams for `seconds` seconds.

    Returns:
        `{"rps", "p50", "p99", "errors", "requests"}`.
    """
    return asyncio.run(_run(target, request, streams, seconds))


async def _run(target: str, request: bytes, streams: int, seconds: float) -> dict:
    channels = [grpc.aio.insecure_channel(target) for _ in range(streams)]
    latencies: list[float] = []
    errors = 0
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 30)
        deadline = time.perf_counter() + seconds

        async def stream(channel) -> None:
            nonlocal errors
            infer = channel.unary_unary(INFER)
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    await infer(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        await asyncio.gather(*(stream(c) for c in channels))
        elapsed = time.perf_counter() - began
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "rps": len(latencies) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": errors,
        "requests": len(latencies),
    }
