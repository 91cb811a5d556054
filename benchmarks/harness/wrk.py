"""wrk, the load generator: one bounded run POSTing a JSON body, and its output read.

In: a URL, a body file, connections and seconds; `wrk` on PATH. Out: req/s, p50/p99 in ms, the
error count (non-2xx answers and socket errors) and the requests answered. The Lua script
that sets the method and body is written next to the body file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def script(body_file: Path) -> Path:
    """Write the Lua script that POSTs `body_file` as JSON; returns its path (`.lua`)."""
    path = body_file.with_suffix(".lua")
    path.write_text(
        'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\n'
        f'local f=io.open("{body_file}","r"); wrk.body=f:read("*a"); f:close()\n'
    )
    return path


def run(url: str, body_file: Path, connections: int, seconds: int) -> dict:
    """POST `body_file` to `url` for `seconds` over `connections` connections (2 threads at most).

    Returns:
        `{"rps", "p50", "p99", "errors", "requests"}` as `parse` reads them.
    """
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script(body_file)),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    return parse(out.stdout + out.stderr)


def parse(text: str) -> dict:
    """Read wrk's `--latency` output.

    Returns:
        req/s (`rps`), the 50th and 99th latency percentiles in ms (`p50`, `p99`), `errors`
        (non-2xx or 3xx answers plus connect, read, write and timeout socket errors) and
        `requests` (answered, as wrk counts them).

    Raises:
        ValueError: the text is not wrk output with a latency distribution.
    """
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if not (rps and total):
        raise ValueError(f"not wrk --latency output:\n{text[-2000:]}")
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(int(x) for x in sock.groups()) if sock else 0
    return {
        "rps": float(rps.group(1)),
        "p50": _ms(text, "50%"),
        "p99": _ms(text, "99%"),
        "errors": errors,
        "requests": int(total.group(1)),
    }


def _ms(text: str, label: str) -> float:
    """The latency percentile `label` (e.g. `99%`) of the distribution, in ms."""
    m = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        raise ValueError(f"no {label} latency in wrk output:\n{text[-2000:]}")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
