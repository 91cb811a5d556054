"""`python -m pipelines train|finetune ...`: the pipeline CLI (used by the MLproject)."""

from pipelines.cli import main

main()
