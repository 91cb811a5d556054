"""The benchmark harness's pure pieces: wrk's output read, a docs section replaced, a tree,
the shared options (and every script that writes a section taking them)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.harness import ROOT, cli, docs, processes, wrk

# wrk 4.2 --latency output (real run, numbers edited), with the optional error lines.
WRK_OUT = """\
Running 6s test @ http://127.0.0.1:40123/invocations
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    3.94ms  85.57ms   97.01%
    Req/Sec     2.45k   152.13     2.80k    70.00%
  Latency Distribution
     50%  812.00us
     75%    1.74ms
     90%    3.48ms
     99%    1.25s
  29312 requests in 6.00s, 5.23MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:   4885.31
Transfer/sec:    892.09KB
"""


def test_wrk_output_is_read_in_ms_with_every_error_counted():
    r = wrk.parse(WRK_OUT)
    assert r == {
        "rps": 4885.31,
        "p50": pytest.approx(0.812),  # us -> ms
        "p99": pytest.approx(1250.0),  # s -> ms
        "errors": 5 + 2 + 1 + 4,
        "requests": 29312,
    }


def test_wrk_output_without_errors_counts_none():
    lines = WRK_OUT.splitlines(keepends=True)
    r = wrk.parse("".join(x for x in lines if not x.lstrip().startswith(("Socket", "Non-2xx"))))
    assert r["errors"] == 0
    assert r["p50"] == pytest.approx(0.812)


def test_text_that_is_not_wrk_output_is_refused():
    with pytest.raises(ValueError, match="not wrk"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


DOC = """\
# Benchmarks

## Serving
<!-- serving:start -->
old serving
<!-- serving:end -->

<!-- soak:start -->
old soak
<!-- soak:end -->
"""


def test_a_section_is_replaced_and_every_other_line_kept():
    new = docs.replace_section(DOC, "serving", "new\n\ntable\n")
    assert new == DOC.replace("old serving", "new\n\ntable")
    assert docs.replace_section(new, "serving", "old serving") == DOC


def test_a_missing_section_is_appended_under_its_heading():
    new = docs.replace_section(DOC, "drift", "figures", heading="## Drift")
    assert new.startswith(DOC)
    assert new[len(DOC) :] == "\n## Drift\n<!-- drift:start -->\nfigures\n<!-- drift:end -->\n"


def test_a_start_marker_without_its_end_is_an_error():
    with pytest.raises(ValueError, match="drift:end"):
        docs.replace_section("<!-- drift:start -->\nno end\n", "drift", "x")


def test_write_section_creates_the_document(tmp_path):
    path = tmp_path / "benchmarks.md"
    docs.write_section("soak", "figures", path=path)
    assert path.read_text() == "# Benchmarks\n\n<!-- soak:start -->\nfigures\n<!-- soak:end -->\n"


def test_the_tree_holds_a_grandchild_and_sums_its_memory():
    script = "import subprocess, time; subprocess.Popen(['sleep', '30']); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script])
    tree = [child.pid]
    try:
        deadline = time.monotonic() + 10
        while len(tree) < 2 and time.monotonic() < deadline:  # until the grandchild exists
            time.sleep(0.05)
            tree = processes.tree(child.pid)
        assert tree[0] == child.pid and len(tree) == 2
        own = processes.status_kb(child.pid, "VmRSS") / 1024
        assert processes.tree_memory_mb(child.pid) > own > 0
    finally:
        for pid in reversed(tree):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        child.wait(10)


def test_the_shared_options_parse_and_the_store_is_optional():
    args = cli.parser("A benchmark.\n\nMore.").parse_args(["--no-write", "--tracking-uri", "x"])
    assert args.no_write and args.tracking_uri == "x"
    assert not cli.parser("A benchmark.").parse_args([]).no_write
    with pytest.raises(SystemExit):
        cli.parser("A benchmark.", tracking_uri=False).parse_args(["--tracking-uri", "x"])


def _writes_a_section(source: str) -> bool:
    return "docs.publish(" in source or "write_section(" in source


@pytest.mark.parametrize(
    "script", sorted(Path(ROOT, "benchmarks").glob("*.py")), ids=lambda p: p.stem
)
def test_every_script_that_writes_the_docs_takes_no_write(script: Path):
    source = script.read_text()
    if not _writes_a_section(source):
        return
    assert "cli.parser(" in source or '"--write/--no-write"' in source, script.name
