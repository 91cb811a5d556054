"""The command-line options every benchmark script shares.

In: the script's module docstring (its first line describes the command). Out: an
`argparse.ArgumentParser` holding `--no-write` (leave docs/benchmarks.md alone) and, for the
scripts that measure a trained model, `--tracking-uri` (measure that store's
`credit-risk@production` instead of training a fresh one). Each script adds its own options.
"""

from __future__ import annotations

import argparse


def parser(doc: str, tracking_uri: bool = True) -> argparse.ArgumentParser:
    """A benchmark's parser with the shared options already on it."""
    made = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    if tracking_uri:
        made.add_argument("--tracking-uri", default="", help="use this store (no training)")
    made.add_argument("--no-write", action="store_true", help="do not touch docs/benchmarks.md")
    return made
