"""gunicorn hooks used by `mlcycle serve --server gunicorn`.

In: gunicorn's worker life cycle. Out: dead workers' live gauges removed from the Prometheus
multiprocess folder, so `/metrics` stays right after a worker restarts.
"""

from __future__ import annotations

import os


def child_exit(server, worker) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """Mark the exited worker dead for prometheus_client's multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
