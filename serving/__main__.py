"""`python -m serving` runs `mlcycle serve` (same options)."""

import logging

import typer

from serving.cli import serve

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
typer.run(serve)
