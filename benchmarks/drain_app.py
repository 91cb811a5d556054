"""The overload benchmark's anchor: a WSGI app that reads every body and answers 503.

Run under the same WSGI server and layout as `mlcycle serve`, it is the fastest refusal that
still lets an HTTP/1.1 client read its answer (the client sends its whole body first): the
time to receive the bytes and nothing else.
"""


def app(environ, start_response):
    """Read and drop the body, then a constant 503 (GET: 200, for the readiness wait)."""
    if environ["REQUEST_METHOD"] == "GET":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    environ["wsgi.input"].read()
    start_response(
        "503 Service Unavailable",
        [("Content-Type", "application/json"), ("Content-Length", "2"), ("Retry-After", "1")],
    )
    return [b"{}"]
