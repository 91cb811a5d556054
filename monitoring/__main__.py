"""`python -m monitoring`: the drift check and the traffic simulator without the full CLI.

In: the same options as `mlcycle drift` / `mlcycle simulate`. Out: see `monitoring.cli`.
"""

from __future__ import annotations

import logging

import typer

from monitoring import cli

app = typer.Typer(
    help="mlcycle monitoring: drift checks and traffic simulation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("drift")(cli.drift)
app.command("simulate")(cli.simulate)


def main() -> None:
    """Entry point of `python -m monitoring`."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()
