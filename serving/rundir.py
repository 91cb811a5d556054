"""Signals between the launcher and its workers, as files in the run folder (`MLCYCLE_RUN_DIR`).

In: the launcher before it starts the server (`write_settings`) and on a stop signal
(`mark_draining`), `POST /admin/reload` in any worker (`request_reload`), each worker once it
serves a model (`mark_ready`). Out: small files every worker of the server reads
(microseconds): `settings.json`, the serving settings the launcher validated, its options
included (the workers read them instead of the environment: `serving.settings.launched`);
`draining`, whose text says why readiness is 503; `reload`, a fresh random token per request,
so every watcher that sees the token change re-checks the registry; `ready/<pid>`, the
version each worker serves (`ready_workers` counts the live ones). The launcher makes a fresh
run folder per launch (`mkdtemp`: this user only), so nothing is left over from a previous
server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SETTINGS = "settings.json"
DRAINING = "draining"
RELOAD = "reload"
READY = "ready"


def write_settings(run_dir: str | Path, text: str) -> None:
    """Hand the workers their settings (JSON; readable by this user only, like the folder)."""
    _replace(Path(run_dir) / SETTINGS, text)


def read_settings(run_dir: str | Path) -> str | None:
    """The settings the launcher wrote, or None (a run folder not made by the launcher)."""
    try:
        return (Path(run_dir) / SETTINGS).read_text()
    except FileNotFoundError:
        return None


def mark_draining(run_dir: str | Path, reason: str) -> None:
    """Turn every worker's readiness to 503 with `reason`."""
    _replace(Path(run_dir) / DRAINING, reason)


def draining_reason(run_dir: str | Path | None) -> str | None:
    """Why the server is draining, or None when it is not (or runs without a launcher)."""
    if not run_dir:
        return None
    try:
        return (Path(run_dir) / DRAINING).read_text() or "draining"
    except FileNotFoundError:
        return None


def request_reload(run_dir: str | Path) -> str:
    """Ask every worker to re-check the registry; returns the new `reload_token`."""
    token = os.urandom(8).hex()
    _replace(Path(run_dir) / RELOAD, token)
    return token


def reload_token(run_dir: str | Path) -> str | None:
    """The token of the last `request_reload` (None before the first): a few microseconds."""
    try:
        return (Path(run_dir) / RELOAD).read_text()
    except FileNotFoundError:
        return None


def mark_ready(run_dir: str | Path, version: str) -> None:
    """Record that this worker process serves `version`."""
    _replace(Path(run_dir) / READY / str(os.getpid()), version)


def ready_workers(run_dir: str | Path) -> int:
    """How many live worker processes have marked themselves ready."""
    alive = 0
    for marker in (Path(run_dir) / READY).glob("[0-9]*"):
        try:
            os.kill(int(marker.name), 0)
            alive += 1
        except (ValueError, ProcessLookupError):
            continue
        except PermissionError:  # alive, owned by another user
            alive += 1
    return alive


def _replace(path: Path, text: str) -> None:
    """Write `text` to a new file and rename it over `path`: readers never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
