"""mlcycle: the model lifecycle platform.

Two layers live here. `mlcycle.core` (MLflow connection defaults, registry operations, the
prediction-log contract, the synthetic data) is the foundation every stage may import and
imports no stage. The top, `mlcycle.cli` and `mlcycle.demo`, wires the stages (`pipelines`,
`serving`, `monitoring`) into one command line and imports them. `make lint` checks both
directions (import-linter contracts in `pyproject.toml`). Importing this package does no I/O.
"""

from mlcycle.core import __version__

__all__ = ["__version__"]
