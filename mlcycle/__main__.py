"""`python -m mlcycle` runs the `mlcycle` command line."""

from mlcycle.cli import main

main()
