"""The bare anchor of the serving benchmark: a constant Flask endpoint, nothing else.

Run under the same WSGI server and layout as `mlcycle serve` (`benchmarks.harness.server.
bare_app_command`), it measures the ceiling of the stack: what mlcycle's own work costs is
the gap between the two.
"""

from flask import Flask, Response

app = Flask(__name__)


@app.post("/invocations")
def invocations() -> Response:
    """The same answer to every request."""
    return Response(b'{"predictions":[0.5]}', mimetype="application/json")


@app.get("/ping")
def ping() -> str:
    """Readiness."""
    return "ok"
