"""`python -m pipelines train ...` runs the training pipeline (used by the MLproject)."""

from pipelines.cli import main

main()
