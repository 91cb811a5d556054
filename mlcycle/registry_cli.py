"""`mlcycle promote`, `rollback`, `history`, `sync`, `sign`: registry commands.

In: a registered model name (and a version, a target, a reason). Out: the registry change
(stage and alias together, see `mlcycle.core.registry`) and a one-line confirmation, or the history
as a table / JSON. User errors (unknown model or version) print one line on stderr and exit 1.
"""

from __future__ import annotations

import json
import warnings

import typer


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def _setup() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning)
    from mlcycle.core.config import configure_mlflow

    configure_mlflow()


def promote(
    name: str = typer.Argument(..., help="Registered model name, e.g. credit-risk."),
    version: str = typer.Argument(..., help="Model version to promote, e.g. 3."),
    to: str = typer.Option("production", "--to", help="Target: production or staging."),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the version's tags)."),
    by: str = typer.Option("", "--by", help="Who promotes (default: the OS user)."),
) -> None:
    """Promote a model version: sets the stage and the alias together, archives the old one."""
    _setup()
    from mlflow.exceptions import MlflowException

    from mlcycle.core import registry

    try:
        entry = registry.promote(name, version, to=to, reason=reason, by=by or None)
    except (registry.RegistryError, MlflowException) as exc:
        _fail(str(exc))
    previous = entry.get("previous")
    suffix = f" (was v{previous})" if previous and previous != entry["version"] else ""
    typer.echo(f"{name} v{entry['version']} is now {entry['to']}{suffix}")


def rollback(
    name: str = typer.Argument(..., help="Registered model name, e.g. credit-risk."),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the version's tags)."),
    by: str = typer.Option("", "--by", help="Who rolls back (default: the OS user)."),
) -> None:
    """Return production to the version that was in production before the current one."""
    _setup()
    from mlflow.exceptions import MlflowException

    from mlcycle.core import registry

    try:
        entry = registry.rollback(name, reason=reason, by=by or None)
    except (registry.RegistryError, MlflowException) as exc:
        _fail(str(exc))
    typer.echo(f"{name} rolled back: v{entry['version']} is now production")


def history(
    name: str = typer.Argument(..., help="Registered model name, e.g. credit-risk."),
    as_json: bool = typer.Option(False, "--json", help="Print the history as JSON."),
) -> None:
    """Print the promotion history (oldest first)."""
    _setup()
    from mlflow.exceptions import MlflowException

    from mlcycle.core import registry

    try:
        entries = registry.history(name)
    except (registry.RegistryError, MlflowException) as exc:
        _fail(str(exc))
    if as_json:
        typer.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        typer.echo(f"{name}: no promotions recorded")
        return
    rows = [("AT (UTC)", "VERSION", "TO", "BY", "REASON")]
    rows += [
        (
            e.get("at", ""),
            f"v{e.get('version', '?')}",
            e.get("to", ""),
            e.get("by", ""),
            e.get("reason", ""),
        )
        for e in entries
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)]
        typer.echo("  ".join(cells + [str(row[4])]).rstrip())


def sync(
    name: str = typer.Argument(..., help="Registered model name, e.g. credit-risk."),
    by: str = typer.Option("", "--by", help="Who syncs (default: the OS user)."),
) -> None:
    """Make the Production stage and the `production` alias agree after a change in the MLflow UI.

    Whichever of the two changed since the last promotion or sync wins; the other is written
    back (recorded in the history like any promotion).
    """
    _setup()
    from mlflow.exceptions import MlflowException

    from mlcycle.core import registry

    try:
        state = registry.sync(name, by=by or None)
    except (registry.RegistryError, MlflowException) as exc:
        _fail(str(exc))
    if state.version is None:
        typer.echo(f"{name}: no production version (neither alias nor stage set)")
        return
    typer.echo(f"{name}: production is v{state.version} (alias and stage agree)")


def sign(
    name: str = typer.Argument(..., help="Registered model name, e.g. credit-risk."),
    versions: list[str] = typer.Argument(..., help="Versions to (re-)sign, e.g. 3 4."),
) -> None:
    """Sign versions' files with MLCYCLE_SIGNING_KEY (after a key rotation, or for versions
    registered without mlcycle); check their files first: whoever signs vouches for them."""
    _setup()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlcycle.core.settings import ModelSettings, SettingsError
    from mlcycle.core.signing import sign_version

    try:
        key = ModelSettings.load().signing_key
    except SettingsError as exc:
        _fail(str(exc))
    if not key:
        _fail("MLCYCLE_SIGNING_KEY is not set")
    client = MlflowClient()
    for version in versions:
        try:
            signed = sign_version(client, name, version, key)
        except MlflowException as exc:
            _fail(f"{name} v{version}: {exc}")
        typer.echo(f"{name} v{version} signed ({signed[:24]}…)")
