"""Synthetic data for users and tests: a CSV file, or live traffic to a running server.

In: row count, seed and the generator's drift knob (0 = training distribution, 1 = strongly
shifted) and, for a CSV, its concept knob (0 = today's rule for `default`, 1 = the shifted rule:
same inputs, new labels), plus, for traffic, a server URL, a request rate, a duration and a
batch size.
Out: a CSV of `mlcycle.core.synthetic.generate` rows (target included), or POSTs of
`dataframe_records` (inputs only) to `<url>/invocations` with a progress bar and a `TrafficSummary`.

Traffic is bounded in count (rate x duration) and in time (duration), goes to loopback addresses
unless `allow_remote` is set, and never retries: a failure is counted and the run moves on.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

log = logging.getLogger(__name__)

TARGET = "default"


class SimulateError(ValueError):
    """The simulation cannot run as asked (the message says why)."""


@dataclass
class TrafficSummary:
    """What a traffic run did.

    Attributes:
        sent: requests sent.
        ok: requests answered 2xx.
        failed: requests answered otherwise or not at all.
        rows: input rows in the 2xx requests.
        versions: model versions named in the answers (`X-Model-Version`), with counts.
        errors: a few distinct error messages.
        elapsed_s: wall time of the run.
        labels_sent: true outcomes sent to `<url>/labels` (with `labels_after_s`).
        labels_stored: of those, stored or updated by the server.
    """

    sent: int = 0
    ok: int = 0
    failed: int = 0
    rows: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    labels_sent: int = 0
    labels_stored: int = 0

    def line(self) -> str:
        """One line for people."""
        versions = ", ".join(f"v{v}: {n}" for v, n in sorted(self.versions.items())) or "none"
        rate = self.sent / self.elapsed_s if self.elapsed_s else 0.0
        return (
            f"sent {self.sent} requests ({self.rows} rows ok) in {self.elapsed_s:.1f}s "
            f"({rate:.1f} req/s): ok {self.ok}, failed {self.failed}; versions seen: {versions}"
            + (
                f"; labels {self.labels_stored}/{self.labels_sent} stored"
                if self.labels_sent
                else ""
            )
        )


class Labeller:
    """Sends the true outcomes of answered requests to `<base>/labels` once `delay_s` has
    passed (outcomes arrive later than predictions), in one POST per flush."""

    def __init__(self, session, base: str, headers: dict, delay_s: float) -> None:
        self._session, self._url, self._headers = session, f"{base}/labels", headers
        self.delay_s = delay_s
        self._pending: list[tuple[float, str, list[int]]] = []

    def add(self, request_id: str, labels: list[int]) -> None:
        """Queue the outcomes of one answered request."""
        self._pending.append((time.monotonic() + self.delay_s, request_id, labels))

    def flush(self, summary: TrafficSummary, everything: bool = False) -> None:
        """POST the queued outcomes that are due (all of them with `everything`)."""
        import orjson
        import requests

        now = time.monotonic()
        due = [p for p in self._pending if everything or p[0] <= now]
        if not due:
            return
        self._pending = self._pending[len(due) :]
        entries = [
            {"request_id": r, "row": i, "label": y} for _, r, ys in due for i, y in enumerate(ys)
        ]
        summary.labels_sent += len(entries)
        try:
            resp = self._session.post(
                self._url, data=orjson.dumps(entries), headers=self._headers, timeout=30
            )
        except requests.RequestException as exc:
            _fail(summary, f"labels: {exc.__class__.__name__}")
            return
        if resp.status_code != 200:
            _fail(summary, f"labels: HTTP {resp.status_code}: {resp.text[:120]}")
            return
        receipt = resp.json()
        summary.labels_stored += receipt.get("stored", 0) + receipt.get("updated", 0)

    def finish(self, summary: TrafficSummary) -> None:
        """Wait (at most `delay_s`) until the last outcomes are due, then send them all."""
        if self._pending:
            time.sleep(max(0.0, min(self.delay_s, self._pending[-1][0] - time.monotonic())))
        self.flush(summary, everything=True)


def write_csv(path: Path, rows: int, seed: int, drift: float, concept: float = 0.0) -> Path:
    """Write `rows` synthetic rows (inputs + target `default`) to a CSV file.

    Args:
        path: output file (parent folders are created).
        rows: number of rows.
        seed: generator seed.
        drift: the generator's drift knob, 0..1.
        concept: the generator's concept knob, 0..1 (changes only the target column).

    Returns:
        The path written.

    Raises:
        SimulateError: for a bad row count, drift or concept level.
    """
    from mlcycle.core.synthetic import generate

    frame = _generate(generate, rows, seed, drift, concept)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def _generate(generate, rows: int, seed: int, drift: float, concept: float = 0.0):
    try:
        return generate(n_rows=rows, seed=seed, drift=drift, concept=concept)
    except ValueError as exc:
        raise SimulateError(str(exc)) from None


def check_url(url: str, allow_remote: bool) -> str:
    """The base URL without a trailing slash, after refusing non-loopback hosts.

    Args:
        url: e.g. `http://127.0.0.1:5001`.
        allow_remote: permit hosts other than loopback.

    Returns:
        The normalised base URL.

    Raises:
        SimulateError: for a malformed or (without `allow_remote`) non-loopback URL.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SimulateError(f"not an http(s) URL: {url!r}")
    if not allow_remote and not _is_loopback(parsed.hostname):
        raise SimulateError(
            f"refusing to send traffic to {parsed.hostname}: only loopback hosts by default "
            "(pass --allow-remote if you mean it)"
        )
    return url.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def send_traffic(
    url: str,
    drift: float,
    rate: float,
    duration_s: float,
    batch: int = 10,
    seed: int = 7,
    api_key: str | None = None,
    allow_remote: bool = False,
    progress: bool = True,
    labels_after_s: float | None = None,
    concept: float = 0.0,
) -> TrafficSummary:
    """Send about `rate * duration_s` requests of `batch` rows to `<url>/invocations`.

    Args:
        url: server base URL.
        drift: the generator's drift knob, 0..1.
        rate: requests per second (upper bound; a slow server lowers it).
        duration_s: stop sending after this many seconds.
        batch: rows per request.
        seed: generator seed.
        api_key: sent as `X-API-Key` when given.
        allow_remote: permit non-loopback hosts.
        progress: show a tqdm progress bar.
        labels_after_s: also send each answered request's true outcomes (the generator knows
            them) to `<url>/labels` this many seconds after its answer; None: no labels.
        concept: the generator's concept knob, 0..1: which rule the sent labels follow.

    Returns:
        The summary.

    Raises:
        SimulateError: bad URL or parameters.
    """
    import orjson
    import requests
    from tqdm import tqdm

    from mlcycle.core.synthetic import generate

    base = check_url(url, allow_remote)
    if rate <= 0 or duration_s <= 0 or batch < 1:
        raise SimulateError("--rate and --duration must be positive and --batch at least 1")
    n_requests = max(1, math.ceil(rate * duration_s))
    frame = _generate(generate, n_requests * batch, seed, drift, concept)
    outcomes = frame.pop(TARGET).astype(int).tolist()
    records = orjson.loads(frame.to_json(orient="records"))
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    summary, session = TrafficSummary(), requests.Session()
    labeller = None if labels_after_s is None else Labeller(session, base, headers, labels_after_s)
    started = time.monotonic()
    deadline = started + duration_s
    with tqdm(total=n_requests, unit="req", disable=not progress, desc="traffic") as bar:
        for i in range(n_requests):
            now = time.monotonic()
            if now >= deadline:
                break
            time.sleep(max(0.0, started + i / rate - now))
            body = orjson.dumps({"dataframe_records": records[i * batch : (i + 1) * batch]})
            rid = uuid.uuid4().hex
            sent = dict(headers, **{"X-Request-ID": rid})
            ok = _send_one(session, base, body, sent, batch, summary, max(0.5, deadline - now))
            if labeller is not None:
                if ok:
                    labeller.add(rid, outcomes[i * batch : (i + 1) * batch])
                labeller.flush(summary)
            bar.update(1)
    if labeller is not None:
        labeller.finish(summary)
    summary.elapsed_s = time.monotonic() - started
    return summary


def _send_one(
    session,
    base: str,
    body: bytes,
    headers: dict,
    batch: int,
    summary: TrafficSummary,
    timeout: float,
) -> bool:
    """POST one request; True when it was answered 2xx."""
    import requests

    summary.sent += 1
    try:
        resp = session.post(f"{base}/invocations", data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        _fail(summary, f"{exc.__class__.__name__}")
        return False
    version = resp.headers.get("X-Model-Version")
    if version:
        summary.versions[version] = summary.versions.get(version, 0) + 1
    if 200 <= resp.status_code < 300:
        summary.ok += 1
        summary.rows += batch
        return True
    _fail(summary, f"HTTP {resp.status_code}: {resp.text[:120]}")
    return False


def _fail(summary: TrafficSummary, message: str) -> None:
    summary.failed += 1
    if message not in summary.errors and len(summary.errors) < 5:
        summary.errors.append(message)
