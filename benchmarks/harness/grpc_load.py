"""A gRPC load generator: N streams sending one prebuilt ModelInfer request back to back.

In: a `host:port`, the serialized `ModelInferRequest`, the number of streams and seconds. Each
stream has a channel (an HTTP/2 connection) of its own, as each wrk connection is one TCP
connection, and keeps one call in flight; the request is sent as prebuilt bytes and the answer
is not decoded, so the client costs little beside the server on a small machine. The streams
are shared by up to two client processes (as wrk runs up to two threads): one asyncio loop
alone held mlcycle's gRPC to ~75% of what two reach at 8 streams.
Out: the figures `benchmarks.harness.wrk.run` gives: req/s, p50/p99 in ms, errors (calls that
ended with a status other than OK) and the calls answered. Every run is bounded in time.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import grpc
import numpy as np

INFER = "/inference.GRPCInferenceService/ModelInfer"
_START_S = 3.0  # time for the client processes to start and connect before they send


def call_once(target: str, request: bytes, timeout: float = 30) -> bytes:
    """One ModelInfer call; the serialized answer (raises `grpc.RpcError` on a refusal)."""
    with grpc.insecure_channel(target) as channel:
        return channel.unary_unary(INFER)(request, timeout=timeout)


def run(target: str, request: bytes, streams: int, seconds: float) -> dict:
    """Send `request` over `streams` streams for `seconds` seconds.

    Returns:
        `{"rps", "p50", "p99", "errors", "requests"}`.
    """
    shares = [streams // 2 + streams % 2, streams // 2] if streams > 1 else [streams]
    start_at = time.time() + _START_S  # every client process sends from then on
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(shares)) as pool:
        parts = pool.starmap(_client, [(target, request, n, start_at, seconds) for n in shares])
    latencies = [x for lat, _ in parts for x in lat]
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "rps": len(latencies) / seconds,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "errors": sum(err for _, err in parts),
        "requests": len(latencies),
    }


def _client(target: str, request: bytes, streams: int, start_at: float, seconds: float):
    """One client process: (latencies in s, errors) of the calls it sent from `start_at`
    (wall clock) for `seconds` seconds."""
    return asyncio.run(_streams(target, request, streams, start_at, seconds))


async def _streams(target: str, request: bytes, streams: int, start_at: float, seconds: float):
    channels = [grpc.aio.insecure_channel(target) for _ in range(streams)]
    latencies: list[float] = []
    errors = 0
    try:
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in channels)), 30)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.perf_counter() + seconds - max(0.0, time.time() - start_at)

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

        await asyncio.gather(*(stream(c) for c in channels))
    finally:
        await asyncio.gather(*(c.close() for c in channels))
    return latencies, errors
