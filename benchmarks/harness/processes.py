"""A process and everything below it (Linux /proc): its pids, memory and CPU time.

In: a pid. Out: the pids of its tree, the sum of a /proc/PID/status field over them (VmRSS, or
VmHWM: each process's peak), their CPU seconds, and a reset of their peaks. Servers such as
`mlcycle serve` run their workers in a process group of their own, so a process group alone
would miss them: the tree is followed through /proc/PID/task/TID/children. Standard library
only, so that a measured child process can import it without growing.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path


def children(pid: int | str) -> list[int]:
    """The pids of the processes whose parent is `pid` (any of its threads); [] once it is gone.

    Cheap enough to poll every few milliseconds: it reads one small file per thread of `pid`.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found = []
    for task in tasks:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree(pid: int) -> list[int]:
    """`pid` and every process below it, parents before their children."""
    found, i = [pid], 0
    while i < len(found):
        found += children(found[i])
        i += 1
    return found


def status_kb(pid: int | str, key: str) -> int:
    """The value of `key` (e.g. VmHWM) in /proc/PID/status in kB; 0 if absent or gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def tree_memory_mb(pid: int, key: str = "VmRSS") -> float:
    """Sum of `key` (VmRSS, or VmHWM: each process's peak) over `pid` and its descendants, MB."""
    return sum(status_kb(p, key) for p in tree(pid)) / 1024


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by the live processes of `pid`'s tree."""
    ticks = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":  # a zombie's time moves to its parent's children's time
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def reset_peaks(pid: int) -> None:
    """Reset the VmHWM of every process of `pid`'s tree to its current RSS, where allowed."""
    for p in tree(pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{p}/clear_refs").write_text("5")


def own_peak_mb() -> float:
    """This process's own peak RSS in MB.

    `VmHWM`, not `ru_maxrss`: Linux carries `ru_maxrss` over from the forked parent across
    exec, so a child of a benchmark that has just built a large frame would report the
    parent's peak.
    """
    kb = status_kb("self", "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024
