"""services.processes.supervised: readiness with a timeout, the log tail on failure, clean stops."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from services.processes.supervised import (
    ProcessFailed,
    Supervised,
    free_port,
    http_ok,
    port_open,
    wait_until,
)

PYTHON = sys.executable


def http_server(port: int, **options: object) -> Supervised:
    return Supervised(
        [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        name="http.server",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/"),
        **options,  # type: ignore[arg-type]
    )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_waits_for_readiness_and_stop_ends_the_process(tmp_path: Path) -> None:
    port = free_port()
    server = http_server(port, log_path=tmp_path / "server.log")
    with server:
        assert server.is_running()
        assert http_ok(f"http://127.0.0.1:{port}/")
        pid = server.pid
    assert pid is not None and not pid_alive(pid)
    assert not server.is_running()
    assert not port_open("127.0.0.1", port)
    assert "GET / HTTP" in (tmp_path / "server.log").read_text()


def test_stop_returns_the_exit_code_of_the_signal() -> None:
    server = http_server(free_port()).start()
    assert server.stop() == -signal.SIGTERM
    assert server.stop() is None  # already stopped: nothing to do


def test_an_exit_while_starting_names_the_code_and_quotes_the_log(tmp_path: Path) -> None:
    failing = Supervised(
        [PYTHON, "-c", "print('listener failed: Address in use', flush=True); raise SystemExit(3)"],
        name="stand-in",
        ready=lambda: False,
        log_path=tmp_path / "stand-in.log",
    )
    with pytest.raises(ProcessFailed) as caught:
        failing.start()
    assert caught.value.returncode == 3
    assert "stand-in exited with code 3" in str(caught.value)
    assert "listener failed: Address in use" in str(caught.value)
    assert str(tmp_path / "stand-in.log") in str(caught.value)
    assert not failing.is_running()


def test_not_ready_in_time_stops_the_process_and_says_so() -> None:
    never = Supervised(
        [PYTHON, "-c", "import time; print('starting', flush=True); time.sleep(60)"],
        name="slow starter",
        ready=lambda: False,
        start_timeout_s=0.5,
    )
    with pytest.raises(ProcessFailed) as caught:
        never.start()
    assert caught.value.returncode is None
    assert "slow starter was not ready within 0 s" in str(caught.value)
    assert "starting" in caught.value.tail
    assert never.process is None


def test_a_process_that_ignores_sigterm_is_killed_after_the_stop_timeout() -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "time.sleep(60)\n"
    )
    stubborn = Supervised([PYTHON, "-c", code], name="stubborn", stop_timeout_s=0.5)
    stubborn.readiness = lambda: stubborn.log_matches("^ignoring SIGTERM$")
    stubborn.start()
    assert stubborn.stop() == -signal.SIGKILL


def test_readiness_can_be_a_log_line(tmp_path: Path) -> None:
    code = "import time; time.sleep(0.5); print('ready to serve', flush=True); time.sleep(60)"
    child = Supervised([PYTHON, "-c", code], name="child", log_path=tmp_path / "child.log")
    child.readiness = lambda: child.log_matches(r"^ready to serve$")
    with child:
        assert child.log_matches("ready to serve")
    assert "ready to serve" in child.log_text()


def test_env_is_added_to_the_environment_and_cwd_is_used(tmp_path: Path) -> None:
    child = Supervised(
        [PYTHON, "-c", "import os; print(os.environ['EXTRA'], os.getcwd(), 'PATH' in os.environ)"],
        name="child",
        env={"EXTRA": "from-the-caller"},
        cwd=tmp_path,
        log_path=tmp_path / "child.log",
    ).start(wait=False)
    wait_until(lambda: child.returncode is not None, 30, "the child to finish")
    assert child.stop() == 0
    assert child.log_text().split() == ["from-the-caller", str(tmp_path), "True"]


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="waiting for: the impossible"):
        wait_until(lambda: False, 0.3, "the impossible", interval_s=0.05)
