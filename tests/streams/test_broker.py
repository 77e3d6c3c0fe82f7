"""The embedded broker starts, answers Kafka requests, carries messages and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer

from services.broker import EmbeddedBroker, kafka_answers, port_open


def test_broker_roundtrip(bootstrap_servers: str) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    for i in range(10):
        producer.send(topic, key=b"1110", value=f"m{i}".encode()).get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    values = [msg.value for msg in consumer]
    consumer.close()
    assert values == [f"m{i}".encode() for i in range(10)]


def test_context_manager_stops_broker() -> None:
    with EmbeddedBroker() as embedded:
        assert kafka_answers(embedded.bootstrap_servers)
        port = embedded.port
    assert not embedded.is_running()
    assert not port_open("127.0.0.1", port)


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
