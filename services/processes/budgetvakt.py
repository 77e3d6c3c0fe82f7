"""``budgetvakt worker`` or ``budgetvakt notifier`` as a supervised child process.

Each gets its own web port on loopback, data dir and JSON log; it is ready when its
``/ready`` answers 200 (the worker once its partitions are assigned, the notifier once it
consumes). Used by the demo, the benches and the tests.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from services.processes.scrape import Sample, scrape
from services.processes.supervised import Supervised, free_port, http_ok

READINESS_PATH = "/ready"


class BudgetvaktProcess(Supervised):
    """``python -m services <command>`` with its web server on ``127.0.0.1:<port>``.

    ``env`` comes on top of the settings made here (web port and host, data dir, JSON logs);
    ``port`` None picks a free one;
    ``python_args`` go before ``-m services`` (for instance ``-m cProfile -o out.prof``)."""

    def __init__(
        self,
        command: str,
        *,
        data_dir: Path | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        python_args: Sequence[str] = (),
        **options: Any,
    ) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        settings = {
            "BUDGETVAKT_WEB_PORT": str(self.port),
            "BUDGETVAKT_WEB_HOST": "127.0.0.1",
            "BUDGETVAKT_NOTIFIER_WEB_PORT": str(self.port),
            "BUDGETVAKT_NOTIFIER_WEB_HOST": "127.0.0.1",
            "BUDGETVAKT_LOG_FORMAT": "json",
        }
        if data_dir is not None:
            settings["BUDGETVAKT_DATA_DIR"] = str(data_dir)
        options.setdefault("ready", lambda: http_ok(self.url(READINESS_PATH)))
        super().__init__(
            [sys.executable, *python_args, "-m", "services", command],
            name=f"budgetvakt {command}",
            env={**settings, **(env or {})},
            log_path=log_path,
            **options,
        )

    def start(self, wait: bool = True) -> Self:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        super().start(wait)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def samples(self) -> list[Sample]:
        """Its ``/metrics`` now."""
        return scrape(self.port)
