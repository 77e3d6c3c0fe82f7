"""One way to run a child process: start a command, wait until it is ready, stop it.

``Supervised`` is used for everything budgetvakt starts as a separate process: the embedded
broker, ``budgetvakt worker`` and ``notifier`` (``services.processes.budgetvakt``), and in the
tests and benches Prometheus and Alertmanager too. Its output goes to a log file (an anonymous
one when no path is given) so that a failed start can quote the process's last lines.

Readiness is a condition polled with a timeout (``port_open``, ``http_ok``, or any callable);
the process must still be alive after the condition holds, so an answer from some other
process on the same port never counts as ours. Stopping sends SIGTERM (or the given signal) to
the process only, waits, then SIGKILLs: its own children (a worker's process pool) are the
process's to shut down, not ours.

Not mirakuru: it signals the whole process group on stop (a worker's pool children would get
SIGTERM behind the worker's back), has one timeout for start and stop, raises on exit codes
that callers here want returned, and reads stdout through a pipe by default.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from core.errors import UserError

#: How often readiness conditions are polled unless a caller says otherwise.
POLL_INTERVAL_S = 0.2


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections there (cheap; says nothing about who)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def port_in_use(host: str, port: int) -> bool:
    """True when a listener already holds ``host:port`` (a bind test, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR like the servers' own listeners: lingering TIME_WAIT connections do not
        # count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``url`` answers a GET with 200.

    Anything else on the port (another process that took it before ours bound it, an answer
    that is not HTTP) is "not ready", never an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    interval_s: float = POLL_INTERVAL_S,
) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for: {what}")
        time.sleep(interval_s)


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


class ProcessFailed(UserError):
    """A supervised process exited while starting, or was not ready in time.

    ``returncode`` is None for a timeout (the process was then stopped); the message ends
    with the last lines of the process's log."""

    def __init__(self, message: str, returncode: int | None, tail: str) -> None:
        super().__init__(message, exit_code=1)
        self.returncode = returncode
        self.tail = tail


class Supervised:
    """A child process with a log, a readiness condition and a clean stop.

    ``env`` is added to this process's environment. ``log_path`` None: an anonymous file
    (still quoted on failure); ``append_log``: keep what an earlier run wrote there.
    ``new_session``: the child gets its own session, so a Ctrl-C in the terminal reaches the
    parent only (which then stops the child itself).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        ready: Callable[[], bool] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path | None = None,
        append_log: bool = False,
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 30.0,
        poll_interval_s: float = POLL_INTERVAL_S,
        new_session: bool = False,
    ) -> None:
        self.command = [str(part) for part in command]
        self.name = name
        self.readiness = ready
        self.env = dict(env or {})
        self.cwd = cwd
        self.log_path = log_path
        self.append_log = append_log
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_interval_s = poll_interval_s
        self.new_session = new_session
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # --- starting ------------------------------------------------------------------------------

    def start(self, wait: bool = True) -> Self:
        """Start the command; with ``wait``, return once it is ready (``wait_ready``)."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} is already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("a+b" if self.append_log else "w+b")
        else:
            self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            self.command,
            env={**os.environ, **self.env},
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=self.new_session,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Poll the readiness condition until it holds while the process lives.

        Raises ``ProcessFailed`` (and stops the process) when it exits first or the time is up.
        Without a condition, the process only has to be running."""
        timeout_s = self.start_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_alive()
            if self.readiness is None or self.readiness():
                # Ours must still be alive afterwards: an answer from someone else never counts.
                self.check_alive()
                return
            if time.monotonic() > deadline:
                break
            time.sleep(self.poll_interval_s)
        tail = self.log_tail()
        self.stop()
        raise ProcessFailed(
            f"{self.name} was not ready within {timeout_s:.0f} s" + self._log_note(tail),
            None,
            tail,
        )

    def check_alive(self) -> None:
        """``ProcessFailed`` (after closing the log) when the process is not running."""
        process = self._process
        if process is not None and process.poll() is None:
            return
        code = None if process is None else process.returncode
        tail = self.log_tail()
        self.stop()
        raise ProcessFailed(
            f"{self.name} exited with code {code}" + self._log_note(tail), code, tail
        )

    def _log_note(self, tail: str) -> str:
        return (f" (log: {self.log_path})" if self.log_path else "") + (
            f"; last lines of its log:\n{tail}" if tail else ""
        )

    # --- while it runs -------------------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self._process

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self._log, lines)

    def log_text(self) -> str:
        """Everything in the log file (``""`` for an anonymous log once stopped)."""
        if self.log_path is not None and self.log_path.exists():
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        return log_tail(self._log, lines=10**9)

    def log_matches(self, pattern: str) -> bool:
        """A readiness condition: the log has a line matching the regular expression."""
        return re.search(pattern, self.log_text(), re.MULTILINE) is not None

    # --- stopping ------------------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float | None = None) -> int | None:
        """Send ``sig``, wait up to ``timeout_s``, then SIGKILL. Returns the exit code (None
        when it was never started); safe to call twice."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(sig)
            try:
                code = process.wait(timeout=self.stop_timeout_s if timeout_s is None else timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
