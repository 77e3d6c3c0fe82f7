"""``docker compose up --scale worker=3``: what a second replica of a service would collide with,
checked on docker-compose.yml (no Docker engine here: validated, not run), and the settings the
replicas need (one consumer group, enough partitions, the Kafka broker kind) and Prometheus
scraping every one of them.

What Compose does with ``--scale``: it starts N containers from the one service definition.
A ``container_name`` is refused (names are unique), a fixed host port is bound by the first
replica and fails the second, and a named volume or a bind mount is the *same* directory in
every replica (two RocksDB stores in one directory corrupt each other). An anonymous volume
(``- /data``) is created per container.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import Settings
from streams.broker_kind import is_kafka_cluster_id

SCALED = "worker"
SINGLE = ("notifier", "alertmanager", "prometheus", "grafana", "web", "postgres", "kafka")


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _fixed_host_ports(port: str | int | dict[str, Any]) -> int:
    """How many fixed host ports a ``ports`` entry publishes: 0 for a container port only
    (``"6066"``, Docker picks a free host port per replica), the range's size for a host range,
    else 1."""
    if isinstance(port, dict):
        published = port.get("published")
        if published in (None, ""):
            return 0
        text = str(published)
    else:
        parts = str(port).split("/")[0].rsplit(":", 1)
        if len(parts) == 1:
            return 0
        text = parts[0].rsplit(":", 1)[-1]  # drop a host IP (ip:host:container)
        if text == "":
            return 0  # ip::container: a free host port on that address
    if "-" in text:
        low, high = (int(p) for p in text.split("-"))
        return high - low + 1
    return 1


def _volume_source(volume: str | dict[str, Any]) -> tuple[str | None, bool]:
    """(source, read_only) of a ``volumes`` entry; source None for an anonymous volume."""
    if isinstance(volume, dict):
        return volume.get("source"), bool(volume.get("read_only", False))
    parts = volume.split(":")
    if len(parts) == 1:
        return None, False
    return parts[0], len(parts) > 2 and "ro" in parts[2].split(",")


def scale_conflicts(doc: dict[str, Any], name: str, replicas: int) -> list[str]:
    """What keeps ``docker compose up --scale NAME=REPLICAS`` from running ``replicas``
    independent copies of the service (empty when nothing does)."""
    service = doc["services"][name]
    problems = []
    if "container_name" in service:
        problems.append(f"container_name {service['container_name']!r}: names are unique")
    if "hostname" in service:
        problems.append(f"hostname {service['hostname']!r}: every replica would share it")
    for port in service.get("ports", []):
        fixed = _fixed_host_ports(port)
        if fixed and fixed < replicas:
            problems.append(f"port {port!r}: {fixed} fixed host port(s) for {replicas} replicas")
    for volume in service.get("volumes", []):
        source, read_only = _volume_source(volume)
        if source is not None and not read_only:
            problems.append(f"volume {volume!r}: one writable directory shared by every replica")
    replicas_set = service.get("deploy", {}).get("replicas")
    if replicas_set is not None and int(replicas_set) > replicas:
        problems.append(f"deploy.replicas {replicas_set} > {replicas}")
    return problems


def _readme_scale(compose_repo_root: Path) -> int:
    readme = (compose_repo_root / "README.md").read_text(encoding="utf-8")
    found = re.findall(rf"--scale {SCALED}=(\d+)", readme)
    assert found, f"README.md shows no `docker compose up --scale {SCALED}=N`"
    return max(int(n) for n in found)


def test_the_worker_scales_without_conflicts(
    compose_doc: dict[str, Any], compose_repo_root: Path
) -> None:
    scale = _readme_scale(compose_repo_root)
    assert scale >= 3
    assert scale_conflicts(compose_doc, SCALED, scale) == []
    assert scale_conflicts(compose_doc, SCALED, 12) == []  # up to the partitions


def test_the_scale_check_finds_what_breaks_a_second_replica(compose_doc: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose_doc)
    worker = broken["services"][SCALED]
    # The single-worker file of before: a fixed host port and one named volume for every replica.
    worker["ports"] = ["6066:6066", "127.0.0.1:6067:6066", "127.0.0.1::6066", "7000-7001:6066"]
    worker["volumes"] = ["worker-data:/data", "./config:/app/config:ro", "/tmp"]
    worker["container_name"] = "budgetvakt-worker"
    problems = scale_conflicts(broken, SCALED, 3)
    assert len(problems) == 5, problems
    assert any("container_name" in p for p in problems)
    assert sum("port" in p for p in problems) == 3  # the two fixed ports and the short range
    assert any("worker-data:/data" in p for p in problems)
    assert not any("config" in p or "/tmp" in p for p in problems)  # read-only, anonymous
    # Two replicas fit the two-port range; the rest still collides.
    assert len(scale_conflicts(broken, SCALED, 2)) == 4


def test_the_replicas_are_one_consumer_group_on_kafka_over_enough_partitions(
    compose_doc: dict[str, Any], compose_repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker_env = _env(compose_doc["services"][SCALED])
    for name, value in worker_env.items():
        # Nothing per replica (a slot or container variable would split the consumer group).
        assert "{{" not in value and "${HOSTNAME" not in value, name
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert worker_env["BUDGETVAKT_APP_ID"] == settings.app_id  # the group, the same everywhere
    assert settings.broker_kind == "kafka"
    assert settings.table_store == "rocksdb"  # hence the volume per replica
    scale = _readme_scale(compose_repo_root)
    assert settings.topic_partitions >= max(6, scale)
    # A topic a producer creates before the worker gets the broker's default partition count.
    kafka_env = _env(compose_doc["services"]["kafka"])
    assert int(kafka_env["KAFKA_NUM_PARTITIONS"]) == settings.topic_partitions
    # The kind is set; `auto` would come to the same answer on this cluster's id (and APIs).
    assert is_kafka_cluster_id(kafka_env["CLUSTER_ID"])
    # Every service on the shared settings sees the same broker kind and partitions.
    for name in ("notifier", "web", "db-upgrade"):
        env = _env(compose_doc["services"][name])
        assert env["BUDGETVAKT_BROKER_KIND"] == "kafka", name
        assert env["BUDGETVAKT_TOPIC_PARTITIONS"] == str(settings.topic_partitions), name


def test_prometheus_scrapes_every_replica_by_the_service_name(
    compose_doc: dict[str, Any], compose_repo_root: Path
) -> None:
    config = yaml.safe_load(
        (compose_repo_root / "config/prometheus/prometheus.yml").read_text(encoding="utf-8")
    )
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "budgetvakt-worker")
    assert "static_configs" not in job  # a static worker:6066 reaches one replica per scrape
    (sd,) = job["dns_sd_configs"]
    # Docker's DNS answers the service name with an A record per replica.
    assert sd["type"] == "A"
    assert sd["names"] == [SCALED] and SCALED in compose_doc["services"]
    worker_env = _env(compose_doc["services"][SCALED])
    assert sd["port"] == int(worker_env["BUDGETVAKT_WEB_PORT"])
    assert worker_env["BUDGETVAKT_WEB_HOST"] == "0.0.0.0"  # reachable from Prometheus
    assert job["metrics_path"] == "/metrics"


def test_the_other_services_stay_single(compose_doc: dict[str, Any]) -> None:
    services = compose_doc["services"]
    for name in SINGLE:
        replicas = services[name].get("deploy", {}).get("replicas", 1)
        assert replicas == 1, name
    # The notifier's sent-store is one named volume: a second notifier would share it.
    assert scale_conflicts(compose_doc, "notifier", 2) != []
    assert "worker-data" not in compose_doc["volumes"]  # no shared worker volume left behind
