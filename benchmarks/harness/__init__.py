"""What every benchmark script shares, one module per concern.

- `processes`: the process tree of a pid, its memory and CPU time (standard library only, so
  a measured child process can import it without growing).
- `server`: a server process on a free loopback port, waited for and surely stopped; the
  environment and command lines the benchmarks start servers with.
- `store`: the MLflow store a benchmark measures (trained fresh, or given) and its one-row body.
- `wrk`: one wrk run and the parsing of its output.
- `docs`: a script's own section of docs/benchmarks.md, replaced between its markers.
- `cli`: the options every script takes (`--no-write`, `--tracking-uri`).

Import the submodule you need: this package only names the repository's root.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository: where `python -m serving` and `python -m benchmarks.*` are started."""
