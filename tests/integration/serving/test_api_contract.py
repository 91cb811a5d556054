"""The served `/openapi.json` is exact: schemathesis fuzzes a real server against it.

A `python -m serving` process (2 workers, API keys and the admin token set) serves the session's
tiny trained model on a loopback port. Schemathesis (Python API: `schemathesis.engine`) takes
the document that server serves (as a dict: loaded from its URL, schemathesis would skip the
operation serving the document itself) and runs every phase its version has: examples (the request
examples the document carries), coverage (boundary and negative values of every schema,
unexpected methods), fuzzing (positive and negative generation) and stateful (links it infers
between operations). Checks: `not_a_server_error`, `status_code_conformance`,
`content_type_conformance`, `response_schema_conformance`, and `negative_data_rejection`, which
fails when a body the document calls invalid is answered 2xx, i.e. when the document is
stricter than the validator. No operation is excluded; the web pages under `/ui` are not in the
document (they are not part of the API) and so are not fuzzed. Fixed seed, no example database
or cache: a run depends on the seed and the code only. About 2,600 cases, ~70 s on 2 cores.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from tests.helpers import ADMIN

log = logging.getLogger(__name__)
API_KEY = "contract-key-0123456789abcdef"
SEED = 20240610
MAX_EXAMPLES = 50  # per operation and phase; with coverage's cases ~2,600 in all
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
PHASES = ("examples", "coverage", "fuzzing", "stateful")


@dataclass
class Run:
    """What a schemathesis run did: cases per phase, statuses per operation, what went wrong."""

    cases: Counter = field(default_factory=Counter)
    statuses: dict[str, Counter] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def record(self, event) -> None:
        """Count one finished scenario's cases, responses and failed checks."""
        recorder = event.recorder
        self.cases[event.phase.value] += len(recorder.cases)
        for case_id, node in recorder.cases.items():
            case = node.value
            label = f"{case.method.upper()} {case.path}"
            interaction = recorder.interactions.get(case_id)
            if interaction is not None and interaction.response is not None:
                status = interaction.response.status_code
                self.statuses.setdefault(label, Counter())[status] += 1
            for check in recorder.checks.get(case_id, []):
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    self.failures.append(
                        f"[{event.phase.value}] {check.name} on {label}: {failure.title}: "
                        f"{failure.message[:400]}\n{check.failure_info.code_sample[:600]}"
                    )


def _config(url: str, api_key: str):
    import schemathesis

    return schemathesis.Config.from_dict(
        {
            "base-url": url,
            "seed": SEED,
            "workers": 1,
            "request-timeout": 30,
            "cache": {"enabled": False},
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none"},
            "phases": {phase: {"enabled": True} for phase in PHASES},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "auth": {
                "openapi": {
                    "ApiKey": {"api_key": api_key},
                    "ApiKeyBearer": {"bearer": api_key},
                    "AdminToken": {"api_key": ADMIN},
                    "AdminBearer": {"bearer": ADMIN},
                }
            },
        }
    )


def fuzz(url: str) -> tuple[Run, dict]:
    """Run every phase against the server at `url`; returns the run and the document."""
    import schemathesis
    from schemathesis.engine import Status, events, from_schema

    # A CSV body is text: send it for application/csv as schemathesis does for text/csv.
    schemathesis.serializer.alias("application/csv", "text/plain")
    doc = requests.get(f"{url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc, config=_config(url, API_KEY))
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.record(event)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.title}: {event.info.message[:400]}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.PhaseFinished) and event.status == Status.SKIP:
            run.skipped[event.phase.name.value] = str(event.phase.skip_reason)
    return run, doc


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_openapi_document_is_exact_under_fuzzing(start_server):
    server = start_server(MLCYCLE_API_KEYS=f"other-key-0123456789abcdef,{API_KEY}")
    run, doc = fuzz(server.url)
    table = "\n".join(
        f"  {op}: {dict(sorted(c.items()))}" for op, c in sorted(run.statuses.items())
    )
    log.info("schemathesis cases per phase: %s\nstatuses:\n%s", dict(run.cases), table)

    assert not run.errors, run.errors
    assert not run.failures, "\n\n".join(run.failures[:10])
    assert not {p: r for p, r in run.skipped.items() if p in PHASES}, run.skipped
    assert all(run.cases[phase] > 0 for phase in PHASES), run.cases
    assert sum(run.cases.values()) >= 1000, run.cases
    documented = {
        f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops if m != "parameters"
    }
    assert documented <= set(run.statuses), documented - set(run.statuses)
    for op in documented:  # the fuzzer got past validation to the model (or the action) itself
        if "200" in doc["paths"][op.split(" ", 1)[1]][op.split(" ")[0].lower()]["responses"]:
            assert run.statuses[op][200] > 0, (op, run.statuses[op])
    predictions = [op for op in documented if op.startswith("POST /") and "admin" not in op]
    for op in predictions:
        assert {200, 400, 415} <= set(run.statuses[op]), (op, run.statuses[op])
    seen = set().union(*(run.statuses[op] for op in predictions))
    assert {401, 403, 404} <= seen, seen  # the coverage phase drops and spoils the credentials
