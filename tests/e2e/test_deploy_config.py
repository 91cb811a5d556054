"""Deployment configuration checks: docker-compose, Dockerfile, Kubernetes, Prometheus, Grafana,
notebooks.

In: the files under `deploy/`, `docker-compose.yml`, `.env.example`, `.dockerignore`,
`notebooks/`, and the real CLIs (`mlcycle`, `mlflow`, deploy/mlflow/init_auth.py) and settings
modules they refer to. Out: failures naming the file and the part that disagrees with the code
or with the security rules (no default secrets, loopback ports, least privilege, hardened pods).
No Docker engine or cluster is needed: compose is checked with `docker compose config -q` (or
`docker-compose config -q`) on an `.env` made from `.env.example`, Prometheus with `promtool
check config`, the manifests with `kubernetes-validate` against a current Kubernetes schema,
and every command a container runs is parsed by the real click/typer command it names (unknown
options fail).
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
INIT_AUTH = ROOT / "deploy" / "mlflow" / "init_auth.py"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "monitoring" / "alerts.yml"
GRAFANA = ROOT / "deploy" / "grafana"
NOTEBOOKS = ROOT / "notebooks"
CODE_DIRS = ("mlcycle", "pipelines", "serving", "monitoring")
MLCYCLE_IMAGE_SERVICES = (
    "mlflow",
    "mlflow-init",
    "trainer",
    "serving",
    "monitor",
    "performance",
    "retrain-on-drift",
    "simulate",
)
SCHEDULED_SERVICES = ("monitor", "performance", "retrain-on-drift")  # `--every`, run forever
CRONJOBS = ("drift-monitor", "performance-monitor", "retrain-on-drift")

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
KUBERNETES_VERSION = "1.36.0"  # a current release kubernetes-validate ships schemas for
MLFLOW_ROLES = {  # compose service or Kubernetes workload -> its MLflow user
    "trainer": "trainer",
    "serving": "serving",
    "simulate": "serving",
    "monitor": "monitor",
    "performance": "monitor",
    "drift-monitor": "monitor",
    "performance-monitor": "monitor",
    "retrain-on-drift": "promoter",
}
WELL_KNOWN_SECRETS = ("demo-admin-token", "demo-key", "minioadmin", "admin/admin")


# ---------------------------------------------------------------- helpers


def _env_example() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def _interpolate(value: object, env: dict[str, str]) -> object:
    """Apply compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` with `env`."""

    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        assert op != ":?", f"docker-compose.yml needs {name}: {arg}"
        return arg or ""

    if isinstance(value, str):
        return _INTERPOLATION.sub(one, value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _compose() -> dict:
    """docker-compose.yml as compose reads it with an `.env` copied from `.env.example`."""
    return _interpolate(yaml.safe_load(COMPOSE.read_text()), _env_example())


def _k8s_docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["_file"] = path.name
                docs.append(doc)
    return docs


def _k8s(kind: str, name: str) -> dict:
    found = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def _pod_spec(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def _k8s_env() -> dict[str, str]:
    """Every ConfigMap value and every container `env` entry with a plain value."""
    env: dict[str, str] = {}
    for doc in _k8s_docs():
        if doc["kind"] == "ConfigMap":
            env.update(doc.get("data", {}))
        if doc["kind"] in WORKLOAD_KINDS:
            for container in _pod_spec(doc)["containers"]:
                env.update({e["name"]: e.get("value", "") for e in container.get("env", [])})
    return env


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "CronJob", "Job")


def _workloads() -> list[dict]:
    return [d for d in _k8s_docs() if d["kind"] in WORKLOAD_KINDS]


def _secrets() -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["stringData"] for d in _k8s_docs() if d["kind"] == "Secret"}


def _secret_refs(container: dict) -> list[tuple[str, str]]:
    """(Secret, key) of every secretKeyRef of the container."""
    refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e]
    return [(r["name"], r["key"]) for r in refs]


def _code_text() -> str:
    """The code's source, plus every variable a settings class reads (most are named by
    prefix + field name, not spelled out), quoted as if the code spelled it."""
    from mlcycle.settings_doc import variables

    parts = [f'"{name}"' for name in variables()]
    for folder in CODE_DIRS:
        parts.extend(p.read_text() for p in (ROOT / folder).rglob("*.py"))
    return "\n".join(parts)


def _mlflow_source_text() -> str:
    import mlflow

    base = Path(mlflow.__file__).parent
    files = [base / "environment_variables.py", base / "cli" / "__init__.py"]
    files += list((base / "utils").glob("cli_args.py"))
    return "\n".join(p.read_text() for p in files if p.exists())


def _click_command(program: str, subcommand: str):
    """The real click command behind `program subcommand` (`mlcycle` or `mlflow`)."""
    if program == "mlcycle":
        import typer.main

        from mlcycle.cli import app

        group = typer.main.get_command(app)
    else:
        from mlflow.cli import cli as group
    command = group.commands.get(subcommand)
    assert command is not None, f"`{program} {subcommand}` is not a command"
    return command


def _parse_command(program: str, argv: list[str]) -> None:
    """Parse `argv` with the real CLI without running it: unknown options or bad values fail."""
    command, depth = _click_command(program, argv[0]), 1
    while hasattr(command, "commands") and depth < len(argv) and argv[depth] in command.commands:
        command, depth = command.commands[argv[depth]], depth + 1  # `mlcycle log prune`
    name = " ".join([program, *argv[:depth]])
    try:
        command.make_context(name, list(argv[depth:]), resilient_parsing=False)
    except Exception as exc:  # click's (or typer's bundled click's) usage errors
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        pytest.fail(f"`{program} {' '.join(argv)}` is rejected by the CLI: {message}")


def _help_ok(subcommand: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mlcycle", subcommand, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200", "TERM": "dumb"},
    )
    assert proc.returncode == 0, f"mlcycle {subcommand} --help failed:\n{proc.stderr[-2000:]}"


def _service_argv(service: dict) -> tuple[str, list[str]]:
    entrypoint = service.get("entrypoint") or ["mlcycle"]
    return entrypoint[0], [str(a) for a in entrypoint[1:]] + [str(a) for a in service["command"]]


def _architecture_metrics() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    return set(re.findall(r"`(mlcycle_[a-z0-9_]+)", text))


# ---------------------------------------------------------------- docker-compose


def _compose_command() -> list[str] | None:
    """`docker compose` where the plugin works, else `docker-compose` (1.29) if installed.

    A `docker` without the compose plugin takes `compose -f` for its own flags and fails with
    "unknown shorthand flag: 'f'", so the plugin is asked for its version first.
    """
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`docker compose config -q` with `env` as the `.env` file and nothing else set."""
    compose = _compose_command()
    if compose is None:
        pytest.skip(
            "neither the docker compose plugin nor docker-compose is installed "
            "(CI installs docker-compose)"
        )
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    cmd = [*compose, "--env-file", str(env_file), "-f", str(COMPOSE), "--profile", "demo"]
    clean = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "DOCKER_HOST")}
    return subprocess.run(
        [*cmd, "config", "-q"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean
    )


def test_compose_config_is_valid(tmp_path: Path) -> None:
    """`docker compose config -q` or `docker-compose config -q` (1.29) accepts the file with an
    `.env` copied from `.env.example`, and with one made by deploy/make-env.sh."""
    proc = _compose_config(tmp_path, _env_example())
    assert proc.returncode == 0, proc.stderr
    made = subprocess.run(
        ["sh", str(ROOT / "deploy" / "make-env.sh")], capture_output=True, text=True, timeout=30
    )
    assert made.returncode == 0, made.stderr
    env = dict(
        line.split("=", 1) for line in made.stdout.splitlines() if "=" in line and line[0] != "#"
    )
    assert env.keys() == _env_example().keys()
    changed = {k for k, v in _env_example().items() if v.startswith("change-me")}
    assert changed and all(
        len(env[k]) >= 24 and env[k] != _env_example()[k] for k in changed - {"MINIO_ROOT_USER"}
    )
    assert env["MLCYCLE_API_KEY"] in env["MLCYCLE_API_KEYS"].split(",")
    assert _compose_config(tmp_path, env).returncode == 0


def _required_secrets() -> list[str]:
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return sorted(set(re.findall(r"\$\{(\w+):\?", "\n".join(lines))))


def test_compose_refuses_to_start_without_each_secret(tmp_path: Path) -> None:
    """Every secret of `.env.example` is a `${VAR:?...}` variable in the compose file, and one
    left out of the `.env` stops `docker compose config` with a message naming it (run for
    three of them: the mechanism is compose's, the same for each)."""
    required = _required_secrets()
    secrets = {k for k, v in _env_example().items() if v.startswith("change-me")}
    assert secrets <= set(required), f"secrets with a default in compose: {secrets - set(required)}"
    for name in ("POSTGRES_PASSWORD", "MLCYCLE_ADMIN_TOKEN", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert name in required
        env = {k: v for k, v in _env_example().items() if k != name}
        proc = _compose_config(tmp_path, env)
        assert proc.returncode != 0, f"docker compose config passes without {name}"
        assert f"set {name}" in proc.stderr, proc.stderr[-500:]


def test_compose_and_env_example_have_no_well_known_secrets() -> None:
    """No secret has a default in the compose file, no well-known value is anywhere in the
    deployment files, and the example tokens and keys are as long as serving demands."""
    files = [COMPOSE, ENV_EXAMPLE, *sorted((ROOT / "deploy").rglob("*.y*ml"))]
    for path in files:
        text = path.read_text()
        for known in WELL_KNOWN_SECRETS:
            assert known not in text, f"{path.relative_to(ROOT)} contains {known!r}"
    raw = COMPOSE.read_text()
    defaults = re.findall(r"\$\{(\w*(?:PASSWORD|TOKEN|KEY|KEYS|SECRET\w*|ROOT_USER)):?-", raw)
    assert not defaults, f"secrets with a default in docker-compose.yml: {defaults}"
    example = _env_example()
    for name in ("MLCYCLE_ADMIN_TOKEN", "MLCYCLE_API_KEYS", "MLCYCLE_API_KEY"):
        assert all(len(v) >= 24 for v in example[name].split(",")), name
    secrets = [k for k, v in example.items() if v]
    assert all(example[k].startswith("change-me-") for k in secrets), "placeholders only"
    assert ".env" in (ROOT / ".gitignore").read_text().split(), "a real .env is never committed"


def test_compose_publishes_ports_on_loopback_only() -> None:
    """Every published port binds 127.0.0.1 (overridable per service with <SERVICE>_ADDRESS),
    MinIO has no console and no published port, Prometheus has no lifecycle API."""
    services = _compose()["services"]
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    published = {name: svc.get("ports", []) for name, svc in services.items()}
    assert published["serving"] and published["mlflow"] and published["grafana"]
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
        for port in raw[name].get("ports", []):
            assert re.match(r"\$\{[A-Z]+_ADDRESS:-127\.0\.0\.1\}:", port), f"{name}: {port}"
    minio = services["minio"]
    assert not minio.get("ports") and "--console-address" not in minio["command"]
    assert minio["environment"]["MINIO_BROWSER"] == "off"
    assert not any("lifecycle" in a for a in services["prometheus"]["command"])


def _init_auth_roles():
    """deploy/mlflow/init_auth.py as a module (it is a script, not in a package)."""
    import importlib.util

    if "mlcycle_deploy_init_auth" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mlcycle_deploy_init_auth", INIT_AUTH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["mlcycle_deploy_init_auth"]


def _parse_init_auth(argv: list[str], env: dict[str, str]) -> None:
    """Parse `argv` with init_auth.py's real CLI in the container's environment `env`."""
    from unittest import mock

    import typer
    import typer.main

    app = typer.Typer()
    app.command()(_init_auth_roles().main)
    command = typer.main.get_command(app)
    try:
        with mock.patch.dict(os.environ, env, clear=True):
            command.make_context("init_auth.py", list(argv), resilient_parsing=False)
    except Exception as exc:
        pytest.fail(f"init_auth.py {argv} is rejected: {exc}")


def test_compose_mlflow_has_basic_auth_and_one_user_per_workload() -> None:
    """MLflow runs `--app-name basic-auth` with the admin and the Flask key from the
    environment; mlflow-init creates the users before anything uses them; each workload logs
    in as its role's user, whose permissions are those of the issue (EDIT, READ, MANAGE)."""
    services = _compose()["services"]
    _, argv = _service_argv(services["mlflow"])
    assert argv[argv.index("--app-name") + 1] == "basic-auth"
    env = services["mlflow"]["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] and env["MLFLOW_FLASK_SERVER_SECRET_KEY"]
    assert (ROOT / env["MLFLOW_AUTH_CONFIG_PATH"].removeprefix("/app/")).exists()
    init = services["mlflow-init"]
    program, argv = _service_argv(init)
    assert program == "python" and argv[0] == "/app/deploy/mlflow/init_auth.py"
    _parse_init_auth(argv[1:], init["environment"])
    assert init["environment"]["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert init["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert services["trainer"]["depends_on"]["mlflow-init"]["condition"] == (
        "service_completed_successfully"
    )
    module = _init_auth_roles()
    levels = {user: role.model for user, role in module.ROLES.items()}
    assert levels == {"trainer": "EDIT", "serving": "READ", "monitor": "READ", "promoter": "MANAGE"}
    for name, user in MLFLOW_ROLES.items():
        if name in services:
            client = services[name]["environment"]
            assert client["MLFLOW_TRACKING_USERNAME"] == user, name
            password = init["environment"][f"AUTH_{user.upper()}_PASSWORD"]
            assert client["MLFLOW_TRACKING_PASSWORD"] == password, name
    assert "MLFLOW_TRACKING_PASSWORD" not in services["mlflow"]["environment"]


def test_compose_serving_holds_no_database_superuser_or_s3_secret() -> None:
    services = _compose()["services"]
    example = _env_example()
    forbidden = {
        example[k]
        for k in (
            "POSTGRES_PASSWORD",
            "TRACKING_DB_PASSWORD",
            "MINIO_ROOT_PASSWORD",
            "MINIO_ROOT_USER",
            "MLFLOW_ADMIN_PASSWORD",
        )
    }
    for name in ("serving", "monitor", "performance", "retrain-on-drift", "trainer", "simulate"):
        values = " ".join(str(v) for v in services[name]["environment"].values())
        leaked = {v for v in forbidden if v in values}
        assert not leaked, f"{name} gets {leaked}"
    for name, service in services.items():  # the log's readers hash the reference alike
        env = service.get("environment", {})
        if "MLCYCLE_PREDICTION_LOG_URL" in env:
            serving_key = services["serving"]["environment"]["MLCYCLE_LOG_HASH_KEY"]
            assert env["MLCYCLE_LOG_HASH_KEY"] == serving_key, name
    signing = {
        n for n, svc in services.items() if "MLCYCLE_SIGNING_KEY" in svc.get("environment", {})
    }
    assert signing == {"trainer", "serving", "retrain-on-drift"}, "who signs and who verifies"


def test_compose_node_exporter_is_pinned_and_scraped() -> None:
    services = _compose()["services"]
    image = services["node-exporter"]["image"]
    assert re.fullmatch(r"prom/node-exporter:v\d+\.\d+\.\d+", image), image
    assert "node-exporter" in services["prometheus"]["depends_on"]
    assert not services["node-exporter"].get("ports"), "reached on the compose network only"
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = [
        t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    assert "node-exporter:9100" in targets
    for name, service in services.items():
        tag = service.get("image", "").rpartition(":")[2]
        assert tag and tag != "latest", f"{name}: image {service.get('image')} is not pinned"


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    expected = {"postgres", "minio", "minio-init", "mlflow", "trainer", "serving", "monitor"}
    expected |= {"performance", "retrain-on-drift", "prometheus", "grafana"}
    assert expected <= set(services), f"missing services: {expected - set(services)}"
    for name in MLCYCLE_IMAGE_SERVICES:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


@pytest.mark.parametrize("name", ["serving", *SCHEDULED_SERVICES, "simulate"])
def test_compose_mlcycle_commands_parse_with_the_real_cli(name: str) -> None:
    program, argv = _service_argv(_compose()["services"][name])
    assert program == "mlcycle"
    _help_ok(argv[0])
    _parse_command("mlcycle", argv)


def test_compose_serving_is_secured_and_logs_to_postgres() -> None:
    serving = _compose()["services"]["serving"]
    env = serving["environment"]
    assert env["MLCYCLE_API_KEYS"], "API keys must be on in docker-compose"
    assert env["MLCYCLE_ADMIN_TOKEN"]
    assert env["MLCYCLE_PREDICTION_LOG_URL"].startswith("postgresql")
    assert env["MLCYCLE_PREDICTION_LOG_URL"].endswith("@postgres:5432/predictions")
    assert "/v2/health/ready" in " ".join(serving["healthcheck"]["test"])
    _, argv = _service_argv(serving)
    port = argv[argv.index("--port") + 1]
    assert "--host" in argv and argv[argv.index("--host") + 1] == "0.0.0.0"
    assert f"localhost:{port}/v2/health/ready" in " ".join(serving["healthcheck"]["test"])
    assert any(p.endswith(f":{port}") for p in serving["ports"])


def test_compose_monitor_shares_reports_with_serving() -> None:
    services = _compose()["services"]
    monitor, serving = services["monitor"], services["serving"]
    _, argv = _service_argv(monitor)
    assert argv[:3] == ["drift", "--every", "15m"]
    for svc in (monitor, serving):
        reports = svc["environment"]["MLCYCLE_REPORTS_DIR"]
        assert f"reports:{reports}" in svc["volumes"]
    assert (
        monitor["environment"]["MLCYCLE_PREDICTION_LOG_URL"]
        == (serving["environment"]["MLCYCLE_PREDICTION_LOG_URL"])
    )


def test_compose_scheduled_jobs_share_reports_and_log_and_run_forever() -> None:
    """The drift, performance and lifecycle-loop services run in the foreground (`--every`:
    without it the command exits and `restart: unless-stopped` turns the schedule into a
    restart loop), see the log serving writes, and share the reports folder, where the loop
    reads the monitor's drift verdict and serving reads the .prom files."""
    services = _compose()["services"]
    serving = services["serving"]
    for name in SCHEDULED_SERVICES:
        service = services[name]
        _, argv = _service_argv(service)
        assert "--every" in argv, f"{name} must run on a schedule (--every)"
        assert service["restart"] == "unless-stopped"
        env = service["environment"]
        assert (
            env["MLCYCLE_PREDICTION_LOG_URL"]
            == serving["environment"]["MLCYCLE_PREDICTION_LOG_URL"]
        )
        assert env["MLCYCLE_REPORTS_DIR"] == serving["environment"]["MLCYCLE_REPORTS_DIR"]
        assert f"reports:{env['MLCYCLE_REPORTS_DIR']}" in service["volumes"]
        for needed in ("postgres", "mlflow"):
            assert service["depends_on"][needed]["condition"] == "service_healthy", name
    _, argv = _service_argv(services["performance"])
    assert argv == ["performance", "--since", "1d", "--every", "15m"]


def test_compose_retrain_on_drift_follows_the_trainer_and_may_finish_a_pass() -> None:
    from monitoring.windows import parse_duration

    loop = _compose()["services"]["retrain-on-drift"]
    _, argv = _service_argv(loop)
    assert argv[0] == "retrain-on-drift" and argv[argv.index("--every") + 1] == "1h"
    assert "--skipped-ok" not in argv, "with --every exit codes are only logged"
    # it fine-tunes the production version, which the one-shot trainer creates
    assert loop["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    # SIGTERM waits for the pass in progress; docker's 10 s default would kill a fine-tune
    assert parse_duration(loop["stop_grace_period"]) >= 120


def test_mlproject_entry_points_parse_with_the_real_cli(tmp_path: Path) -> None:
    """Each entry point's command as `mlflow run` builds it (its own parameter quoting, with
    the defaults) is accepted by the CLI it calls, and an empty default arrives empty: a
    placeholder quoted in the MLproject (`"{every}"`) would arrive as the two characters ''."""
    import shlex

    import typer
    import typer.main
    from mlflow.projects._project_spec import load_project

    from pipelines import cli as pipelines_cli

    project = load_project(str(ROOT))
    pipelines = typer.Typer()
    pipelines.command("train")(pipelines_cli.train)
    pipelines.command("finetune")(pipelines_cli.finetune)
    pipelines.command("compress")(pipelines_cli.compress)
    pipelines.command("tune")(pipelines_cli.tune)
    groups = {"pipelines": typer.main.get_command(pipelines)}
    entry_points = {"main", "finetune", "compress", "tune", "retrain-on-drift"}
    assert entry_points <= set(project._entry_points)
    for name, entry in project._entry_points.items():
        argv = shlex.split(entry.compute_command({}, str(tmp_path)))
        assert argv[:2] == ["python", "-m"], f"{name}: {argv[:3]}"
        program, sub, args = argv[2], argv[3], argv[4:]
        if program == "mlcycle":
            _parse_command("mlcycle", [sub, *args])
        else:
            command = groups[program].commands[sub]
            command.make_context(f"{program} {sub}", list(args), resilient_parsing=False)
        quoted = [a for a in args if a in ("''", '""')]
        assert not quoted, f"MLproject {name}: an empty parameter arrives as {quoted}"


def test_compose_mlflow_runs_on_postgres_and_minio() -> None:
    services = _compose()["services"]
    program, argv = _service_argv(services["mlflow"])
    assert program == "mlflow"
    _parse_command("mlflow", argv)
    # the stores through libpq's PG* variables, as the `mlflow` role: no password in argv
    assert argv[argv.index("--backend-store-uri") + 1] == "postgresql+psycopg2:///mlflow"
    assert argv[argv.index("--artifacts-destination") + 1] == "s3://mlflow/"
    assert "--serve-artifacts" in argv
    env = services["mlflow"]["environment"]
    assert (env["PGHOST"], env["PGUSER"]) == ("postgres", "mlflow")
    postgres = services["postgres"]["environment"]
    assert (
        env["PGPASSWORD"] == postgres["TRACKING_DB_PASSWORD"]
        and postgres["TRACKING_DB_USER"] == "mlflow"
    )
    auth_ini = (ROOT / "deploy" / "mlflow" / "basic_auth.ini").read_text()
    assert "database_uri = postgresql+psycopg2:///mlflow_auth" in auth_ini
    assert postgres["MLFLOW_AUTH_DB"] == "mlflow_auth"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "mlflow:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    init = " ".join(services["minio-init"]["command"])
    assert "mc mb" in init and "MLFLOW_BUCKET" in init
    assert services["minio-init"]["environment"]["MLFLOW_BUCKET"] == "mlflow"
    for name in ("trainer", "serving", *SCHEDULED_SERVICES):
        assert services[name]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_compose_postgres_init_creates_both_databases() -> None:
    postgres = _compose()["services"]["postgres"]
    mounts = [v.split(":") for v in postgres["volumes"] if v.startswith("./")]
    scripts = [ROOT / src for src, dst, *_ in mounts if "docker-entrypoint-initdb.d" in dst]
    assert scripts and all(s.exists() for s in scripts)
    env = postgres["environment"]
    assert {env["MLFLOW_DB"], env["PREDICTIONS_DB"]} == {"mlflow", "predictions"}
    text = scripts[0].read_text()
    assert "MLFLOW_DB" in text and "PREDICTIONS_DB" in text and "CREATE DATABASE" in text
    proc = subprocess.run(["sh", "-n", str(scripts[0])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # the same script is Kubernetes' (ConfigMap postgres-init), and serving logs as its owner
    assert scripts[0] == K8S / "postgres" / "init-databases.sh"
    log_url = _compose()["services"]["serving"]["environment"]["MLCYCLE_PREDICTION_LOG_URL"]
    assert log_url.startswith(f"postgresql+psycopg2://{env['PREDICTIONS_DB_USER']}:")
    assert env["POSTGRES_PASSWORD"] not in log_url


def test_compose_trainer_runs_the_mlproject() -> None:
    trainer = _compose()["services"]["trainer"]
    program, argv = _service_argv(trainer)
    if program == "mlcycle":
        _help_ok(argv[0])
        _parse_command("mlcycle", argv)
        return
    assert program == "mlflow" and argv[:2] == ["run", "."]
    _parse_command("mlflow", argv)
    mlproject = yaml.safe_load((ROOT / "MLproject").read_text())
    params = mlproject["entry_points"]["main"].get("parameters", {})
    for i, arg in enumerate(argv):
        if arg == "-P":
            key = argv[i + 1].split("=", 1)[0]
            assert key in params, f"MLproject main has no parameter {key!r}"


def test_compose_mounted_files_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_compose_env_names_exist_in_code() -> None:
    services = _compose()["services"]
    code = _code_text()
    mlflow_src = _mlflow_source_text()
    for name in MLCYCLE_IMAGE_SERVICES:
        for key in services[name].get("environment", {}):
            if key.startswith("MLCYCLE_"):
                assert f'"{key}"' in code, f"{name}: {key} is read nowhere in {CODE_DIRS}"
            elif key.startswith("MLFLOW_"):
                assert key in mlflow_src, f"{name}: {key} is not an MLflow setting"


# ---------------------------------------------------------------- Dockerfile


def _dockerignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        regex = pattern.replace("**/", "")
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, regex) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerfile_is_sane() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root"), "must run as non-root"
    assert re.search(r'^ENTRYPOINT \["mlcycle"\]', text, re.M)
    assert '".[postgres,server]"' in text, "the MLflow server needs the `server` extra"
    server = _pyproject()["project"]["optional-dependencies"]["server"]
    assert any(e.startswith("mlflow[auth]") for e in server), "basic-auth needs mlflow[auth]"
    assert not _dockerignored("deploy/mlflow/basic_auth.ini", _dockerignore_patterns())
    assert not _dockerignored("deploy/mlflow/init_auth.py", _dockerignore_patterns())
    for line in re.findall(r"^COPY\s+(.+)$", text, re.M):
        for source in line.split()[:-1]:
            assert source == "." or (ROOT / source).exists(), f"COPY source {source} missing"
    extras = _pyproject()["project"]["optional-dependencies"]["postgres"]
    assert any(e.startswith("psycopg2") for e in extras)
    assert any(e.startswith("boto3") for e in extras), "mlflow server needs boto3 for S3"


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # python 3.10
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dockerignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]


def test_dockerignore_keeps_what_the_image_needs() -> None:
    patterns = _dockerignore_patterns()
    needed = ["pyproject.toml", "README.md", "MLproject", "conda.yaml"]
    needed += [f"{d}/__init__.py" for d in CODE_DIRS]
    needed += [str(p.relative_to(ROOT)) for d in CODE_DIRS for p in (ROOT / d).rglob("*.y*ml")]
    for path in needed:
        assert not _dockerignored(path, patterns), f".dockerignore drops {path}"
    for path in (".venv/bin/python", ".git/HEAD", "mlruns/0/meta.yaml", "mlflow.db"):
        assert _dockerignored(path, patterns), f".dockerignore keeps {path}"


# ---------------------------------------------------------------- Kubernetes


def test_k8s_manifests_parse_and_cover_the_deployment() -> None:
    docs = _k8s_docs()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [
        ("Namespace", "mlcycle"),
        ("ConfigMap", "mlcycle-config"),
        ("ConfigMap", "serving-config"),
        *(("Secret", name) for name in ("postgres-secrets", "mlflow-secrets", "serving-secrets")),
        ("NetworkPolicy", "default-deny-ingress"),
        ("StatefulSet", "postgres"),
        ("Service", "postgres"),
        ("Job", "mlflow-init"),
        ("CronJob", "log-prune"),
        ("Deployment", "serving"),
        ("Service", "serving"),
        ("HorizontalPodAutoscaler", "serving"),
        ("PodDisruptionBudget", "serving"),
        *(("CronJob", name) for name in CRONJOBS),
        ("Job", "trainer"),
        ("Deployment", "mlflow"),
        ("Service", "mlflow"),
    ]:
        assert expected in kinds, f"deploy/k8s lacks {expected}"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "mlcycle", doc["_file"]
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name[0].isdigit())


def test_k8s_serving_deployment() -> None:
    deployment = _k8s("Deployment", "serving")
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    port = container["ports"][0]["containerPort"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    assert annotations["prometheus.io/path"] == "/metrics"
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _k8s("Service", "serving")["spec"]["selector"].items() <= labels.items()
    assert _k8s("PodDisruptionBudget", "serving")["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    target = _k8s("HorizontalPodAutoscaler", "serving")["spec"]
    assert target["scaleTargetRef"]["name"] == "serving"
    assert target["minReplicas"] >= 2


def test_k8s_serving_stops_within_the_pod_grace_period(monkeypatch) -> None:
    """Readiness turns 503 for a few seconds before serving stops listening, and the launcher
    is done (or has killed the server) before the kubelet's SIGKILL."""
    from serving.settings import get_settings

    pod = _k8s("Deployment", "serving")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # refused values fail here, naming the variable
    settings = get_settings()
    assert settings.shutdown_delay_s >= 3, "endpoints need a few seconds to drop the pod"
    assert settings.shutdown_grace_s + 2 <= pod["terminationGracePeriodSeconds"]


def test_compose_serving_stops_before_docker_kills_it() -> None:
    from serving.settings import Settings

    grace = _compose()["services"]["serving"]["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) >= Settings().shutdown_grace_s + 2


def _k8s_argv(container: dict) -> tuple[str, list[str]]:
    env = _k8s_env()
    expand = re.compile(r"\$\((\w+)\)")
    argv = [expand.sub(lambda m: env[m.group(1)], str(a)) for a in container.get("args", [])]
    return container["command"][0], list(container["command"][1:]) + argv


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("Deployment", "serving"),
        *(("CronJob", c) for c in (*CRONJOBS, "log-prune")),
        ("Job", "trainer"),
    ],
)
def test_k8s_commands_parse_with_the_real_cli(kind: str, name: str) -> None:
    (container,) = _pod_spec(_k8s(kind, name))["containers"]
    program, argv = _k8s_argv(container)
    assert program == "mlcycle"
    _help_ok(argv[0])
    _parse_command("mlcycle", argv)


def test_k8s_drift_cronjob() -> None:
    cronjob = _k8s("CronJob", "drift-monitor")
    (container,) = _pod_spec(cronjob)["containers"]
    _, argv = _k8s_argv(container)
    assert argv == ["drift", "--last", "10000"]
    assert cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0, "drift is not a retry"
    assert _pod_spec(cronjob)["restartPolicy"] == "Never"


def _cron_period_s(schedule: str) -> int:
    """Seconds between runs of the schedules used here: `*/N * * * *` or `M * * * *`."""
    minute, *rest = schedule.split()
    assert rest == ["*"] * 4, f"extend _cron_period_s for {schedule!r}"
    if minute.startswith("*/"):
        return int(minute[2:]) * 60
    assert minute.isdigit() and int(minute) < 60, f"extend _cron_period_s for {schedule!r}"
    return 3600


@pytest.mark.parametrize("name", CRONJOBS)
def test_k8s_cronjobs_are_set_up_like_the_drift_job(name: str) -> None:
    """One run at a time, done before the next is due, never retried, the image, settings,
    secret, reports volume and non-root user of the rest, with requests and limits."""
    cronjob = _k8s("CronJob", name)
    spec, job = cronjob["spec"], cronjob["spec"]["jobTemplate"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert job["backoffLimit"] == 0, "a verdict or a lost gate is not a transient failure"
    assert job["activeDeadlineSeconds"] < _cron_period_s(spec["schedule"])
    pod = _pod_spec(cronjob)
    (container,) = pod["containers"]
    (serving,) = _pod_spec(_k8s("Deployment", "serving"))["containers"]
    assert container["image"] == serving["image"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"] == _pod_spec(_k8s("Deployment", "serving"))["securityContext"]
    assert container["envFrom"] == [{"configMapRef": {"name": "mlcycle-config"}}]
    (secret,) = {name for name, _ in _secret_refs(container)}
    assert secret in ("monitor-secrets", "retrain-secrets")
    assert container["resources"]["requests"] and container["resources"]["limits"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "reports"]
    assert mount["mountPath"] == _k8s_env()["MLCYCLE_REPORTS_DIR"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == "mlcycle-reports"
    _, argv = _k8s_argv(container)
    assert "--every" not in argv, "a CronJob's command must end, or Forbid blocks every run"


def test_k8s_performance_cronjob() -> None:
    cronjob = _k8s("CronJob", "performance-monitor")
    _, argv = _k8s_argv(_pod_spec(cronjob)["containers"][0])
    assert argv == ["performance", "--since", "1d", "--window", "1h"]
    assert _cron_period_s(cronjob["spec"]["schedule"]) == 900


def test_k8s_retrain_cronjob_runs_hourly_after_the_drift_check_and_trains_like_the_trainer():
    cronjob = _k8s("CronJob", "retrain-on-drift")
    (container,) = _pod_spec(cronjob)["containers"]
    _, argv = _k8s_argv(container)
    assert argv[0] == "retrain-on-drift"
    assert "--skipped-ok" in argv, "most hours have nothing to do: not a failed Job"
    schedule = cronjob["spec"]["schedule"]
    assert _cron_period_s(schedule) == 3600
    drift_every = _cron_period_s(_k8s("CronJob", "drift-monitor")["spec"]["schedule"])
    assert int(schedule.split()[0]) % (drift_every // 60) != 0, "not at the drift check's minute"
    (trainer,) = _pod_spec(_k8s("Job", "trainer"))["containers"]
    assert container["image"] == trainer["image"] and container["resources"] == trainer["resources"]


def test_k8s_kustomization_builds() -> None:
    """`kubectl kustomize deploy/k8s` renders every manifest (no cluster needed)."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl not installed")
    proc = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    built = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(proc.stdout) if d}
    generated = {("ConfigMap", "postgres-init")}  # configMapGenerator: postgres/init-databases.sh
    assert built == {(d["kind"], d["metadata"]["name"]) for d in _k8s_docs()} | generated


def test_k8s_mlflow_uses_external_stores() -> None:
    (container,) = _pod_spec(_k8s("Deployment", "mlflow"))["containers"]
    program, argv = _k8s_argv(container)
    assert program == "mlflow"
    _parse_command("mlflow", argv)
    assert argv[argv.index("--app-name") + 1] == "basic-auth"
    assert argv[argv.index("--backend-store-uri") + 1] == "postgresql+psycopg2:///mlflow"
    assert argv[argv.index("--artifacts-destination") + 1].startswith("s3://")
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e for e in container["env"]}
    assert env["PGUSER"]["value"] == "mlflow" and env["PGHOST"]["value"].startswith("postgres.")
    for name in ("PGPASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-secrets", name
    assert (ROOT / env["MLFLOW_AUTH_CONFIG_PATH"]["value"].removeprefix("/app/")).exists()


def test_k8s_env_names_exist_in_code() -> None:
    code = _code_text()
    mlflow_src = _mlflow_source_text()
    for key in _k8s_env():
        if key.startswith("MLCYCLE_"):
            assert f'"{key}"' in code, f"{key} (deploy/k8s) is read nowhere in {CODE_DIRS}"
        elif key.startswith("MLFLOW_"):
            assert key in mlflow_src, f"{key} (deploy/k8s) is not an MLflow setting"


def test_probe_and_scrape_routes_exist_in_serving() -> None:
    """Probes, health checks and Prometheus hit real routes of the serving app."""
    from serving.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(start_watcher=False, log_predictions=False))
    routes = {rule.rule for rule in app.url_map.iter_rules()}
    deployment = _k8s("Deployment", "serving")
    (container,) = _pod_spec(deployment)["containers"]
    healthcheck = " ".join(_compose()["services"]["serving"]["healthcheck"]["test"])
    used = {
        container["readinessProbe"]["httpGet"]["path"],
        container["livenessProbe"]["httpGet"]["path"],
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"],
        re.search(r"localhost:\d+(/[\w/]+)", healthcheck).group(1),
    }
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    used |= {job.get("metrics_path", "/metrics") for job in scrape if "serving" in job["job_name"]}
    assert used <= routes, f"not routes of serving: {used - routes}"


# ---------------------------------------------------------------- Prometheus and Grafana


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """`promtool check config` on the config with the shipped alert rules beside it."""
    if not shutil.which("promtool"):
        pytest.skip("promtool not installed (Debian package `prometheus`; CI installs it)")
    (tmp_path / "rules").mkdir()
    shutil.copy(PROMETHEUS, tmp_path / "prometheus.yml")
    shutil.copy(ALERTS, tmp_path / "rules" / "alerts.yml")
    proc = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 rule files found" in proc.stdout + proc.stderr


def test_prometheus_scrapes_serving_and_loads_the_alerts() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = [
        t for job in config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]
    ]
    assert "serving:8080" in targets
    prometheus = _compose()["services"]["prometheus"]
    assert "./monitoring/alerts.yml:/etc/prometheus/rules/alerts.yml:ro" in prometheus["volumes"]
    assert any(fnmatch.fnmatch("rules/alerts.yml", p) for p in config["rule_files"])


def _promql(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query))
    return exprs


def test_grafana_dashboard_uses_only_documented_metrics() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "mlcycle.json").read_text())
    documented = _architecture_metrics()
    assert "mlcycle_requests_total" in documented and "mlcycle_drift_share" in documented
    used = set()
    for expr in _promql(dashboard):
        for metric in re.findall(r"\b(mlcycle_[a-z0-9_]+)", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            assert base in documented, f"dashboard uses undocumented metric {metric}: {expr}"
            used.add(base)
    for needed in (
        "mlcycle_requests_total",
        "mlcycle_request_duration_seconds",
        "mlcycle_prediction_score",
        "mlcycle_model_info",
        "mlcycle_drift_share",
    ):
        assert needed in used, f"dashboard has no panel on {needed}"


def test_grafana_provisioning_matches_the_dashboard() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uids = {d["uid"] for d in datasources["datasources"]}
    dashboard = json.loads((GRAFANA / "dashboards" / "mlcycle.json").read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids, panel["title"]
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "mlcycle.yml").read_text()
    )
    grafana = _compose()["services"]["grafana"]
    path = providers["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in grafana["volumes"]


# ---------------------------------------------------------------- notebooks


def _notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_notebooks_exist() -> None:
    names = {p.name for p in _notebooks()}
    assert {
        "01-train-and-register.ipynb",
        "02-serve-and-drift.ipynb",
        "03-labels-and-retrain.ipynb",
    } <= names


def _check_imports(source: str, where: str) -> None:
    """Every `from x import y` / `import x` in a cell names a real module and attribute."""
    import importlib

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            module = importlib.import_module(node.module)
            for alias in node.names:
                name = alias.name
                assert hasattr(module, name) or importlib.util.find_spec(f"{node.module}.{name}"), (
                    f"{where}: {node.module} has no {name}"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert importlib.util.find_spec(alias.name), f"{where}: no module {alias.name}"


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_is_valid_and_its_code_compiles(path: Path) -> None:
    notebook = json.loads(path.read_text())
    assert notebook["nbformat"] == 4 and isinstance(notebook["nbformat_minor"], int)
    assert "kernelspec" in notebook["metadata"]
    assert notebook["cells"], f"{path.name} has no cells"
    code_cells = 0
    for i, cell in enumerate(notebook["cells"]):
        assert cell["cell_type"] in ("code", "markdown", "raw")
        assert isinstance(cell["metadata"], dict)
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code":
            code_cells += 1
            assert cell["outputs"] == [] and cell["execution_count"] is None, "commit no outputs"
            compile(source, f"{path.name}[cell {i}]", "exec")
            _check_imports(source, f"{path.name}[cell {i}]")
    assert code_cells >= 3


def test_notebook_mlflow_run_parameters_exist() -> None:
    """`-P name=value` in the notebooks' `mlflow run` calls name real MLproject parameters."""
    params = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["main"]["parameters"]
    used = set()
    for path in _notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            used |= set(re.findall(r'"-P",\s*f?"([\w-]+)=', "".join(cell["source"])))
    assert used, "the notebooks no longer run `mlflow run . -P ...`"
    assert used <= set(params), f"unknown MLproject parameters: {used - set(params)}"


# ---------------------------------------------------------------- docs


def test_operations_doc_explains_every_alert() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"] if "alert" in r}
    text = (ROOT / "docs" / "operations.md").read_text()
    missing = {a for a in alerts if f"`{a}`" not in text}
    assert not missing, f"docs/operations.md does not explain {sorted(missing)}"


# ---------------------------------------------------------------- Kubernetes: schema and hardening


def test_k8s_manifests_validate_against_the_kubernetes_schema() -> None:
    """Every manifest, and what kustomize builds from them, against the schema of a current
    Kubernetes release with unknown fields refused; a misspelt field fails the same check."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for doc in _k8s_docs():
        resource = {k: v for k, v in doc.items() if k != "_file"}
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['_file']} {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    broken = {k: v for k, v in _k8s("Deployment", "serving").items() if k != "_file"}
    broken = json.loads(json.dumps(broken).replace('"runAsNonRoot"', '"runAsNonroot"'))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "workload", _workloads(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_k8s_pods_are_hardened(workload: dict) -> None:
    """Non-root, RuntimeDefault seccomp, no service-account token, and per container: no
    privilege escalation, all capabilities dropped, a read-only root with emptyDir scratch
    for /tmp (and, for the mlcycle image, HOME: MLflow's and Keras' caches), a pinned image."""
    pod = _pod_spec(workload)
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] > 0
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for claim in workload["spec"].get("volumeClaimTemplates", []):
        volumes[claim["metadata"]["name"]] = {"persistentVolumeClaim": claim}
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        scratch = ["/tmp"] + (
            ["/home/mlcycle"] if container["image"].startswith("mlcycle:") else []
        )
        for path in scratch:
            assert "emptyDir" in mounts[path], f"{container['name']}: {path} is not an emptyDir"
        name, _, tag = container["image"].rpartition(":")
        assert name and tag and tag != "latest", f"{container['image']} is not pinned"
        assert container["resources"]["requests"] and container["resources"]["limits"]


def test_k8s_mlcycle_image_is_the_release() -> None:
    from mlcycle.core import __version__

    images = {c["image"] for d in _workloads() for c in _pod_spec(d)["containers"]}
    assert f"mlcycle:{__version__}" in images
    assert {i for i in images if i.startswith("mlcycle:")} == {f"mlcycle:{__version__}"}
    compose = yaml.safe_load(COMPOSE.read_text())["x-mlcycle-image"]["image"]
    assert compose.endswith(f":-mlcycle:{__version__}}}")


def test_k8s_one_secret_per_workload_through_secret_key_refs() -> None:
    """No envFrom of a Secret; each workload reads its own Secret only, key by key, and every
    key exists; serving's holds no superuser, MLflow-database or S3 credential."""
    secrets = _secrets()
    shared = {"monitor-secrets": {"drift-monitor", "performance-monitor", "log-prune"}}
    owners: dict[str, set[str]] = {}
    for workload in _workloads():
        name = workload["metadata"]["name"]
        for container in _pod_spec(workload)["containers"]:
            assert not any("secretRef" in e for e in container.get("envFrom", [])), name
            refs = _secret_refs(container)
            for secret, key in refs:
                assert key in secrets[secret], f"{name}: {secret} has no {key}"
            used = {secret for secret, _ in refs}
            assert len(used) <= 1, f"{name} reads {used}"
            for secret in used:
                owners.setdefault(secret, set()).add(name)
    for secret, workloads in owners.items():
        assert len(workloads) == 1 or workloads <= shared.get(secret, set()), (secret, workloads)
    assert set(secrets["serving-secrets"]).isdisjoint(
        {"POSTGRES_PASSWORD", "TRACKING_DB_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    )
    for values in secrets.values():
        for key, value in values.items():
            assert value.startswith("change-me-") and len(value) >= 24, key


def test_k8s_log_readers_have_the_log_hash_key() -> None:
    """Serving and every job with the prediction log get the same MLCYCLE_LOG_HASH_KEY (the
    drift job hashes the reference as serving hashed the logged columns)."""
    keys = set()
    for workload in _workloads():
        for container in _pod_spec(workload)["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            if "MLCYCLE_PREDICTION_LOG_URL" in env:
                ref = env["MLCYCLE_LOG_HASH_KEY"]["valueFrom"]["secretKeyRef"]
                keys.add(_secrets()[ref["name"]][ref["key"]])
    assert len(keys) == 1


def test_k8s_workloads_log_in_to_mlflow_as_their_role() -> None:
    """Each workload's MLflow user is its role's, with the password the init Job sets for it."""
    init = _pod_spec(_k8s("Job", "mlflow-init"))["containers"][0]
    program, argv = _k8s_argv(init)
    assert program == "python" and argv[0] == "/app/deploy/mlflow/init_auth.py"
    refs = [r["configMapRef"]["name"] for r in init["envFrom"]]
    env = {k: v for name in refs for k, v in _k8s("ConfigMap", name)["data"].items()}
    _parse_init_auth(argv[1:], env)
    init_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"] if "valueFrom" in e}
    init_secret = _secrets()[init_refs["AUTH_TRAINER_PASSWORD"]["name"]]
    for workload in _workloads():
        name = workload["metadata"]["name"]
        if name not in MLFLOW_ROLES:
            continue
        (container,) = _pod_spec(workload)["containers"]
        env = {e["name"]: e for e in container["env"]}
        user = env["MLFLOW_TRACKING_USERNAME"]["value"]
        assert user == MLFLOW_ROLES[name], name
        ref = env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]
        password = _secrets()[ref["name"]][ref["key"]]
        assert password == init_secret[f"AUTH_{user.upper()}_PASSWORD"], name


def _allowed(policy: dict) -> set[str]:
    """app.kubernetes.io/name values a NetworkPolicy lets in (pods of its own namespace)."""
    names: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, "no namespaceSelector or ipBlock: own pods only"
            for expr in peer["podSelector"]["matchExpressions"]:
                assert expr["key"] == "app.kubernetes.io/name" and expr["operator"] == "In"
                names |= set(expr["values"])
    return names


def test_k8s_network_policies() -> None:
    """Ingress denied by default; serving open on its HTTP and gRPC ports; MLflow and
    PostgreSQL reachable only from the namespace's workloads that use them."""
    deny = _k8s("NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    serving = _k8s("NetworkPolicy", "serving")["spec"]
    assert serving["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "serving"}
    (rule,) = serving["ingress"]
    (container,) = _pod_spec(_k8s("Deployment", "serving"))["containers"]
    assert {p["port"] for p in rule["ports"]} == {p["name"] for p in container["ports"]}
    to_mlflow, to_postgres = set(), set()
    for workload in _workloads():
        name = workload["metadata"]["name"]
        assert (
            workload["spec"]
            .get("selector", {})
            .get("matchLabels", {})
            .get("app.kubernetes.io/name", name)
            == name
        )
        for c in _pod_spec(workload)["containers"]:
            env = {e["name"] for e in c.get("env", [])}
            if "MLFLOW_TRACKING_USERNAME" in env:
                to_mlflow.add(name)
            if env & {"PREDICTIONS_DB_PASSWORD", "PGPASSWORD"} and name != "postgres":
                to_postgres.add(name)
    assert _allowed(_k8s("NetworkPolicy", "mlflow")) == to_mlflow
    assert _allowed(_k8s("NetworkPolicy", "postgres")) == to_postgres
    for workload in _workloads():  # pod labels are what the policies select on
        labels = _pod_template(workload)["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == workload["metadata"]["name"]


def _pod_template(doc: dict) -> dict:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def test_k8s_postgres_runs_the_init_script_and_keeps_its_data() -> None:
    statefulset = _k8s("StatefulSet", "postgres")
    pod = _pod_spec(statefulset)
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    init = volumes[mounts["/docker-entrypoint-initdb.d"]]["configMap"]
    generator = yaml.safe_load((K8S / "kustomization.yaml").read_text())["configMapGenerator"]
    (entry,) = [g for g in generator if g["name"] == init["name"]]
    assert (
        entry["files"] == ["postgres/init-databases.sh"]
        and entry["options"]["disableNameSuffixHash"]
    )
    assert init["defaultMode"] == 0o555, "executed by the entrypoint, not sourced"
    claim = statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    assert mounts["/var/lib/postgresql/data"] == claim
    env = {e["name"]: e for e in container["env"]}
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/")
    for name in ("POSTGRES_PASSWORD", "TRACKING_DB_PASSWORD", "PREDICTIONS_DB_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "postgres-secrets"


def test_k8s_serving_grpc_port_probes_and_shadow_settings(monkeypatch) -> None:
    """gRPC on 8081: container port, Service port, native gRPC startup probe (HTTP readiness
    and liveness unchanged); the serving ConfigMap holds the gRPC port and shadow settings,
    and the serving settings accept them."""
    from serving.settings import get_settings

    config = _k8s("ConfigMap", "serving-config")["data"]
    assert config["MLCYCLE_GRPC_PORT"] == "8081"
    assert config["MLCYCLE_SHADOW"] in ("true", "false")
    assert config["MLCYCLE_SHADOW_ALIAS"] == "challenger"
    assert 0 <= float(config["MLCYCLE_SHADOW_SAMPLE"]) <= 1
    (container,) = _pod_spec(_k8s("Deployment", "serving"))["containers"]
    assert {"configMapRef": {"name": "serving-config"}} in container["envFrom"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "grpc": 8081}
    assert container["startupProbe"]["grpc"]["port"] == 8081
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    service = {p["name"]: p for p in _k8s("Service", "serving")["spec"]["ports"]}
    assert service["grpc"]["port"] == 8081 and service["grpc"]["targetPort"] == "grpc"
    for key, value in config.items():
        monkeypatch.setenv(key, value)  # a value serving refuses fails here, naming it
    get_settings()


def test_k8s_log_prune_cronjob() -> None:
    cronjob = _k8s("CronJob", "log-prune")
    (container,) = _pod_spec(cronjob)["containers"]
    _, argv = _k8s_argv(container)
    assert argv == ["log", "prune", "--older-than", "90d"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    minute, hour, *rest = cronjob["spec"]["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"], "once a day"
    assert {name for name, _ in _secret_refs(container)} == {"monitor-secrets"}
    assert "MLFLOW_TRACKING_PASSWORD" not in {e["name"] for e in container["env"]}


def test_k8s_hpa_matches_the_capacity_model() -> None:
    """The HPA and serving's CPU request are the ones docs/deployment.md derives."""
    hpa = _k8s("HorizontalPodAutoscaler", "serving")["spec"]
    (metric,) = hpa["metrics"]
    (container,) = _pod_spec(_k8s("Deployment", "serving"))["containers"]
    text = (ROOT / "docs" / "deployment.md").read_text()
    section = text[text.index("## Capacity") :]
    for fact in (
        f"`minReplicas: {hpa['minReplicas']}`",
        f"`maxReplicas: {hpa['maxReplicas']}`",
        f"`averageUtilization: {metric['resource']['target']['averageUtilization']}`",
        f"`cpu: {container['resources']['requests']['cpu']}`",
        f"`memory: {container['resources']['requests']['memory']}`",
        f"`MLCYCLE_WORKERS: {_k8s('ConfigMap', 'serving-config')['data']['MLCYCLE_WORKERS']}`",
    ):
        assert fact in section, f"docs/deployment.md, Capacity, does not state {fact}"


def test_grafana_host_panel_shows_what_the_host_alerts_judge() -> None:
    """The dashboard charts, for each host alert, the very expression the alert compares
    with its threshold."""
    dashboard = json.loads((GRAFANA / "dashboards" / "mlcycle.json").read_text())
    exprs = {" ".join(e.split()) for e in _promql(dashboard)}
    rules = yaml.safe_load(ALERTS.read_text())["groups"]
    (host,) = [g for g in rules if g["name"] == "host"]
    assert {r["alert"] for r in host["rules"]} == {"HostHighCpu", "HostHighMemory", "HostDiskFull"}
    for rule in host["rules"]:
        measured, _, threshold = " ".join(rule["expr"].split()).rpartition(" > ")
        assert float(threshold) in (0.9, 0.85), rule["alert"]
        assert measured in exprs, f"no Grafana panel charts {rule['alert']}: {measured}"
