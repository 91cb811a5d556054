"""mlcycle: shared pieces of the lifecycle platform.

Holds what every stage needs and nothing heavy: MLflow connection defaults (`mlcycle.config`),
registry operations that keep stages and aliases in sync (`mlcycle.registry`) and the `mlcycle`
command line (`mlcycle.cli`). Importing this package does no I/O and imports neither TensorFlow
nor the training code.
"""

__version__ = "0.1.0"
