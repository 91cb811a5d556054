"""The overload benchmark's second anchor: no HTTP server at all, only sockets.

Run as `python -m benchmarks.raw_drain --port N`. A thread per connection reads the request
head, then `recv_into`s the announced body into one reused buffer (no Python object per
chunk, the GIL released while the kernel copies) and answers a constant 503. It is the floor
of a refusal on this machine for any server written on sockets: what receiving the bytes
costs the kernel and the clients, with no framework in the way. GET answers 200 (readiness).
"""

from __future__ import annotations

import argparse
import socket
import threading

REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{}"
)
READY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def _head(conn: socket.socket) -> tuple[bytes, bytes]:
    """The request head and the body bytes that came with it ("" head: the peer left)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def handle(conn: socket.socket) -> None:
    """Read one request whole, answer it, close."""
    buf = memoryview(bytearray(1 << 20))
    with conn:
        head, rest = _head(conn)
        if not head:
            return
        left = _length(head) - len(rest)
        while left > 0:
            n = conn.recv_into(buf, min(left, len(buf)))
            if not n:
                return
            left -= n
        conn.sendall(READY if head.startswith(b"GET ") else REFUSAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="loopback port to listen on")
    args = parser.parse_args()
    with socket.create_server(("127.0.0.1", args.port), backlog=1024) as server:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
