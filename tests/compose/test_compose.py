"""docker-compose.yml against the Compose Specification schema, and the Dockerfile's inputs.

There is no Docker engine here, so the stack is validated, not run (brief §5).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

from core.settings import Settings, Topics


def _schema_errors(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator_cls = validator_for(schema, default=Draft201909Validator)
    validator = validator_cls(schema)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_compose_file_matches_the_compose_specification(
    compose_doc: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    assert _schema_errors(compose_doc, compose_schema) == []


def test_schema_check_rejects_a_broken_file(
    compose_doc: dict[str, Any], compose_schema: dict[str, Any]
) -> None:
    broken = copy.deepcopy(compose_doc)
    broken["services"]["worker"]["healthcheck"]["interval_seconds"] = 15
    broken["services"]["kafka"]["ports"] = "29092:29092"
    errors = _schema_errors(broken, compose_schema)
    assert any("interval_seconds" in e for e in errors)
    assert any(e.startswith("services/kafka/ports") for e in errors)
    with pytest.raises(ValidationError):
        Draft201909Validator(compose_schema).validate(broken)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_kafka_runs_in_kraft_mode(compose_doc: dict[str, Any]) -> None:
    kafka = compose_doc["services"]["kafka"]
    env = _env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@")
    assert env["CLUSTER_ID"]
    assert "zookeeper" not in json.dumps(compose_doc).lower()
    assert kafka["healthcheck"]["test"]
    # The worker's bootstrap address is one of the broker's advertised listeners.
    worker_bootstrap = _env(compose_doc["services"]["worker"])["BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS"]
    advertised = [a.split("://", 1)[1] for a in env["KAFKA_ADVERTISED_LISTENERS"].split(",")]
    assert worker_bootstrap in advertised


def test_worker_is_configured_by_real_settings(
    compose_doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = compose_doc["services"]["worker"]
    env = _env(worker)
    known = {f"BUDGETVAKT_{name.upper()}" for name in Settings.model_fields}
    known |= {f"BUDGETVAKT_TOPIC_{name.upper()}" for name in Topics.model_fields}
    unknown = sorted(set(env) - known)
    assert unknown == [], f"not settings of core.settings: {unknown}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.web_port == 6066
    assert settings.data_dir == Path("/data")
    # Real Kafka has no end-offset bug, so batches are not limited to one message, and the
    # embedded broker's workarounds are off (streams.broker_kind).
    assert settings.producer_max_batch_size == 16384
    assert settings.broker_kind == "kafka"
    assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert f"{settings.web_port}" in json.dumps(worker["healthcheck"]["test"])
    # The data dir is an anonymous volume: one per replica (tests/compose/test_scaling.py).
    assert str(settings.data_dir) in worker["volumes"]


def _dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _console_scripts(compose_repo_root: Path) -> dict[str, str]:
    with (compose_repo_root / "pyproject.toml").open("rb") as fh:
        scripts: dict[str, str] = tomllib.load(fh)["project"]["scripts"]
    return scripts


def test_dockerfile_copies_only_existing_sources(compose_repo_root: Path) -> None:
    copies = [
        args
        for kw, args in _dockerfile_instructions(compose_repo_root / "Dockerfile")
        if kw == "COPY"
    ]
    assert copies, "the Dockerfile copies nothing"
    for args in copies:
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        for source in parts[:-1]:
            assert (compose_repo_root / source).exists(), (
                f"COPY source {source!r} is not in the repo"
            )
    # The packages the wheel is built from are all copied before `pip install .`.
    copied = {shlex.split(a)[0].rstrip("/") for a in copies}
    for package in ("services", "forecasts", "streams", "pyproject.toml", "constraints.txt"):
        assert package in copied or any(package in shlex.split(a) for a in copies)


def _packages_of_the_wheel(compose_repo_root: Path) -> list[str]:
    with (compose_repo_root / "pyproject.toml").open("rb") as fh:
        include: list[str] = tomllib.load(fh)["tool"]["setuptools"]["packages"]["find"]["include"]
    return [pattern.rstrip("*") for pattern in include]


def test_dockerfile_installs_the_dependencies_before_it_copies_the_code(
    compose_repo_root: Path,
) -> None:
    instructions = _dockerfile_instructions(compose_repo_root / "Dockerfile")
    copied_at = {
        shlex.split(args)[0].rstrip("/"): i
        for i, (kw, args) in enumerate(instructions)
        if kw == "COPY"
    }
    packages = _packages_of_the_wheel(compose_repo_root)
    assert {"core", "contract", "forecasts", "streams", "services"} <= set(packages)
    missing = [p for p in packages if p not in copied_at]
    assert missing == [], f"packages of the wheel the image does not copy: {missing}"
    installs = [
        (i, args)
        for i, (kw, args) in enumerate(instructions)
        if kw == "RUN" and "pip install" in args
    ]
    dependencies = [
        i for i, args in installs if "-c constraints.txt" in args and "--no-deps" not in args
    ]
    project = [i for i, args in installs if "--no-deps" in args]
    assert dependencies and project, installs
    first_code = min(copied_at[p] for p in packages)
    last_code = max(copied_at[p] for p in packages)
    # A code change invalidates only the layers from the first code COPY on.
    assert copied_at["pyproject.toml"] < dependencies[0] < first_code
    assert last_code < project[0]


def test_image_command_is_a_real_console_script_and_cli_command(
    compose_repo_root: Path, compose_doc: dict[str, Any]
) -> None:
    from services.cli import app

    instructions = _dockerfile_instructions(compose_repo_root / "Dockerfile")
    cmd = json.loads(next(args for kw, args in instructions if kw == "CMD"))
    assert cmd[0] in _console_scripts(compose_repo_root)
    commands = {
        c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands
    }
    assert cmd[1] in commands, f"{cmd[1]!r} is not a budgetvakt command: {sorted(commands)}"
    assert compose_doc["services"]["worker"]["command"] == cmd
    assert compose_doc["services"]["worker"]["build"]["dockerfile"] == "Dockerfile"


def test_notifier_and_db_upgrade_use_real_settings_and_commands(
    compose_doc: dict[str, Any],
) -> None:
    from services.cli import app
    from services.notifier.settings import NotifierSettings, SmtpSettings

    services = compose_doc["services"]
    known = {f"BUDGETVAKT_{name.upper()}" for name in Settings.model_fields}
    known |= {f"BUDGETVAKT_TOPIC_{name.upper()}" for name in Topics.model_fields}
    known |= {f"BUDGETVAKT_NOTIFIER_{name.upper()}" for name in NotifierSettings.model_fields}
    known |= {f"BUDGETVAKT_SMTP_{name.upper()}" for name in SmtpSettings.model_fields}
    notifier_env = _env(services["notifier"])
    assert sorted(set(notifier_env) - known - routing_url_variables()) == []
    assert notifier_env["BUDGETVAKT_SMTP_HOST"] in services  # the mail catcher service
    assert services["notifier"]["command"] == ["budgetvakt", "notifier"]
    groups = {g.name for g in app.registered_groups}
    assert services["db-upgrade"]["command"][1] in groups
    upgrade = services["worker"]["depends_on"]["db-upgrade"]["condition"]
    assert upgrade == "service_completed_successfully"
    url = _env(services["worker"])["BUDGETVAKT_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg2://") and "@postgres:5432/" in url


def routing_url_variables() -> set[str]:
    """The environment variables config/routing.yaml reads webhook URLs from (url_env)."""
    from core.settings import DEFAULT_CONFIG_DIR
    from core.yamlfile import read_yaml

    routing = read_yaml(DEFAULT_CONFIG_DIR / "routing.yaml")
    return {
        r["channels"]["webhook"]["url_env"]
        for r in routing["recipients"].values()
        if "url_env" in r["channels"].get("webhook", {})
    }


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|WEBHOOK|CREDENTIAL|API_KEY", re.I)
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<rest>[^}]*)\}")


def test_no_secret_has_a_default(compose_repo_root: Path, compose_doc: dict[str, Any]) -> None:
    """Compose refuses to start without each secret (``${NAME:?…}``), as with Grafana's."""
    text = (compose_repo_root / "docker-compose.yml").read_text(encoding="utf-8")
    secrets = [m for m in INTERPOLATION.finditer(text) if SECRET_NAME.search(m["name"])]
    assert {m["name"] for m in secrets} >= {
        "POSTGRES_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        *routing_url_variables(),
    }
    for match in secrets:
        assert match["op"] == ":?", f"{match.group(0)} must be required, without a default"
    # No literal secret either: every password-like variable's value is an interpolation.
    for name, service in compose_doc["services"].items():
        for key, value in _env(service).items():
            if SECRET_NAME.search(key):
                assert value.startswith("${") and ":?" in value, f"{name}: {key} has a default"
    url = _env(compose_doc["services"]["worker"])["BUDGETVAKT_DATABASE_URL"]
    assert ":${POSTGRES_PASSWORD:?" in url
    notifier_env = _env(compose_doc["services"]["notifier"])
    for variable in routing_url_variables():
        assert notifier_env[variable].startswith(f"${{{variable}:?")


def test_observability_services_mount_the_config_files_that_exist(
    compose_doc: dict[str, Any], compose_repo_root: Path
) -> None:
    for name in ("prometheus", "alertmanager", "grafana"):
        mounts = [v for v in compose_doc["services"][name]["volumes"] if v.startswith("./")]
        assert mounts, name
        for mount in mounts:
            source = mount.split(":", 1)[0]
            assert (compose_repo_root / source).is_dir(), f"{name} mounts missing {source}"
    command = compose_doc["services"]["prometheus"]["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert (compose_repo_root / "config/prometheus/prometheus.yml").is_file()


def test_the_follow_up_web_runs_on_the_migrated_database(compose_doc: dict[str, Any]) -> None:
    web = compose_doc["services"]["web"]
    assert web["command"] == ["budgetvakt", "web"]
    assert web["depends_on"]["db-upgrade"]["condition"] == "service_completed_successfully"
    assert _env(web)["BUDGETVAKT_UI_HOST"] == "0.0.0.0"
    assert "6070:6070" in web["ports"]
