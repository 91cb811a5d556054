"""Every notebook under `notebooks/` runs top to bottom, as a user runs it, at small sizes.

In: each `notebooks/*.ipynb` (a glob: a new notebook is picked up without editing this file), a
private copy of the suite's trained store (`store_copy`: a registered `credit-risk` in
Production, what notebook 01 leaves a user with) and a temporary home folder for the prediction
log, the reports and the server's output. Out: the notebook executed by nbclient in an IPython
kernel of this interpreter, started in `notebooks/` as Jupyter starts it, with
`MLCYCLE_NOTEBOOK_QUICK=1` (the notebooks' small sizes). A cell that raises fails the test with
its source, its printed output and the error; and no process the notebook started outlives its
kernel: a server it left running fails the test and is killed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import alive, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300
ANSI = re.compile(r"\x1b\[[0-9;]*m")
MARKER = "MLCYCLE_NOTEBOOK_TEST_RUN"  # in the environment of every process a notebook starts


def _this_python_kernel() -> type:
    """A kernel manager class whose every kernel name means an IPython kernel of this
    interpreter, whatever kernelspecs the machine has installed (a user's `python3` could be
    another Python, without this project's packages)."""
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from traitlets import default

    class ThisPython(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
            return KernelSpec(argv=argv, display_name=Path(sys.executable).name, language="python")

    class ThisPythonKernel(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            return ThisPython()

    return ThisPythonKernel


def _environment(store, home: Path, run_id: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("MLCYCLE_API_KEYS", "MLCYCLE_API_KEY", "MLCYCLE_ADMIN_TOKEN"):
        env.pop(name, None)
    state = home / ".mlcycle"
    env.update(
        {
            "MLFLOW_TRACKING_URI": store.tracking_uri,
            # `mlflow run` logs into this experiment, whose artifacts are in the store's
            # folder (the store's Default experiment points at the working folder of the
            # session that created it).
            "MLFLOW_EXPERIMENT_NAME": "tests",
            "MLCYCLE_MODEL_NAME": store.model_name,
            "MLCYCLE_HOME": str(home),
            "MLCYCLE_PREDICTION_LOG_URL": f"sqlite:///{state / 'predictions.db'}",
            "MLCYCLE_REPORTS_DIR": str(state / "reports"),
            "MLCYCLE_NOTEBOOK_QUICK": "1",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # This checkout's packages, whichever checkout the environment was installed from.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            MARKER: run_id,
        }
    )
    return env


def _started_by(run_id: str) -> list[int]:
    """The pids of living processes whose environment carries this run's marker."""
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # exited meanwhile, or not ours
            continue
        if needle in environ.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _kill_leftovers(run_id: str, grace_s: float = 30) -> list[str]:
    """Wait up to `grace_s` for the notebook's processes to end; SIGKILL those that do not and
    return their command lines."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not _started_by(run_id), grace_s, "the notebook's processes end", 0.5)
    left = []
    for pid in _started_by(run_id):
        with contextlib.suppress(OSError):
            left.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path: Path, store_copy, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    home = tmp_path / "home"
    home.mkdir()
    run_id = uuid.uuid4().hex
    client = NotebookClient(
        nb,
        kernel_manager_class=_this_python_kernel(),
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(path.parent)}},
    )
    failure = ""
    try:
        client.execute(env=_environment(store_copy, home, run_id))
    except (CellExecutionError, CellTimeoutError) as exc:
        # nbclient's message: the cell's source, what it printed and the traceback (coloured
        # by the kernel: the colour codes are taken out).
        failure = ANSI.sub("", str(exc))[-12_000:]
    finally:
        left = _kill_leftovers(run_id)
        nbformat.write(nb, tmp_path / path.name)  # the executed notebook, to read after
    if left:
        failure += f"\nIt left processes running (killed now): {left}"
    if failure:
        pytest.fail(f"{path.name}: {failure}\n(executed notebook: {tmp_path / path.name})")
