"""Create the MLflow basic-auth users of mlcycle's workloads, each with its role's permissions.

In: an MLflow server run with `--app-name basic-auth` (`MLFLOW_TRACKING_URI`), its admin's
credentials (`MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD`) and one password per role
(`AUTH_TRAINER_PASSWORD`, `AUTH_SERVING_PASSWORD`, `AUTH_MONITOR_PASSWORD`,
`AUTH_PROMOTER_PASSWORD`). Out: the users `trainer` (EDIT: trains and registers versions),
`serving` (READ: loads the production version), `monitor` (READ, plus EDIT on the
`monitoring` experiment where the drift and performance jobs log their runs) and `promoter`
(MANAGE on the registered model: moves the alias and stage, as `mlcycle promote` and
retrain-on-drift do), their passwords set to the given ones, and the registered model and the two
experiments created by the admin, so that no workload becomes their owner (MLflow grants MANAGE
to whoever creates a resource). Every other user reads (`default_permission = READ` in
deploy/mlflow/basic_auth.ini); anonymous requests are refused.

Idempotent: run again (the compose service `mlflow-init`, the Kubernetes Job `mlflow-init`),
it changes nothing but the passwords, which is how they are rotated. Exit 0 when every user and
grant is in place, 1 when MLflow refuses or fails (the reason is logged), 2 when a password is
missing or shorter than 16 characters.

    python deploy/mlflow/init_auth.py --model-name credit-risk
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import typer
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

log = logging.getLogger("mlflow-init")


@dataclass(frozen=True)
class Role:
    """What one workload's user may do.

    Attributes:
        model: permission on the registered model.
        experiments: permission per experiment kind (`training`, `monitoring`).
    """

    model: str
    experiments: dict[str, str] = field(default_factory=dict)


ROLES: dict[str, Role] = {
    "trainer": Role("EDIT", {"training": "EDIT"}),
    "serving": Role("READ"),
    "monitor": Role("READ", {"monitoring": "EDIT"}),
    "promoter": Role("MANAGE", {"training": "EDIT", "monitoring": "EDIT"}),
}


def _password(role: str) -> str:
    """The role's password from `AUTH_<ROLE>_PASSWORD`, or exit saying which is missing."""
    name = f"AUTH_{role.upper()}_PASSWORD"
    value = os.environ.get(name, "")
    if len(value) < 16:
        raise typer.BadParameter(f"{name} must be set to at least 16 characters")
    return value


def _already_exists(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_ALREADY_EXISTS"


def _ensure_user(auth: AuthServiceClient, username: str, password: str) -> None:
    try:
        auth.create_user(username, password)
        log.info("user %s created", username)
    except MlflowException as exc:
        if not _already_exists(exc):
            raise
        auth.update_user_password(username, password)
        log.info("user %s exists: password set", username)


def _grant(auth: AuthServiceClient, username: str, kind: str, resource: str, level: str) -> None:
    """Give `username` exactly `level` on one resource (replacing an earlier grant)."""
    try:
        auth.grant_user_permission(username, kind, resource, level)
    except MlflowException as exc:
        if not _already_exists(exc):
            raise
        auth.revoke_user_permission(username, kind, resource)
        auth.grant_user_permission(username, kind, resource, level)
    log.info("%s: %s on %s %s", username, level, kind, resource)


def _experiment_id(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def _ensure_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name)
        log.info("registered model %s created", name)
    except MlflowException as exc:
        if not _already_exists(exc):
            raise


def _wait_for_server(client: MlflowClient, timeout_s: float) -> None:
    """Retry until the server answers as the admin (it may still be starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.search_experiments(max_results=1)
            return
        except MlflowException:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def main(
    tracking_uri: str = typer.Option(
        ..., envvar="MLFLOW_TRACKING_URI", help="The MLflow server (basic-auth app)."
    ),
    model_name: str = typer.Option(
        "credit-risk", envvar="MLCYCLE_MODEL_NAME", help="Registered model the roles apply to."
    ),
    training_experiment: str = typer.Option(
        "", help="Experiment of the training runs (default: the model name)."
    ),
    monitoring_experiment: str = typer.Option(
        "monitoring",
        envvar="MLCYCLE_MONITORING_EXPERIMENT",
        help="Experiment of the drift, performance and retrain-on-drift runs.",
    ),
    wait_s: float = typer.Option(120.0, help="How long to wait for the server to answer."),
) -> None:
    """Create (or update) the users `trainer`, `serving`, `monitor` and `promoter`."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    passwords = {role: _password(role) for role in ROLES}
    client, auth = MlflowClient(tracking_uri), AuthServiceClient(tracking_uri)
    try:
        _wait_for_server(client, wait_s)
        _ensure_model(client, model_name)
        experiments = {
            "training": _experiment_id(client, training_experiment or model_name),
            "monitoring": _experiment_id(client, monitoring_experiment),
        }
        for username, role in ROLES.items():
            _ensure_user(auth, username, passwords[username])
            _grant(auth, username, "registered_model", model_name, role.model)
            for kind, level in role.experiments.items():
                _grant(auth, username, "experiment", experiments[kind], level)
    except MlflowException as exc:
        log.error("could not set up the MLflow users: %s", exc.message)
        raise typer.Exit(1) from exc


if __name__ == "__main__":
    typer.run(main)
