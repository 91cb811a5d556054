"""The core every stage may import: nothing here imports a stage or the top (CLI, demo).

- `mlcycle.core.config`: MLflow connection defaults and the embedded stores' folder.
- `mlcycle.core.registry`: registry operations that keep stages and aliases in sync.
- `mlcycle.core.prediction_log`: the prediction-log contract (tables, columns, encodings).
- `mlcycle.core.synthetic`: the bundled synthetic credit-risk table.

Importing it does no I/O and imports neither TensorFlow nor any stage.
"""

__version__ = "0.1.0"
