"""structlog set-up: JSON lines in production, readable console output on a terminal.

Every process (worker, notifier, CLI, web application) configures logging here, and every
configuration redacts personal identity numbers before an event is written
(``streams.pii_egress``): keys and values, nested, and the formatted exception text, as well as
the messages of standard-library loggers (Faust, aiokafka, SQLAlchemy).
"""

from __future__ import annotations

import logging
import sys

import structlog

from streams.pii_egress import EGRESS, PiiEgress, install_stdlib_redaction, structlog_redactor


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure_logging(fmt: str = "auto", level: str = "INFO", egress: PiiEgress = EGRESS) -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            # Last before the renderer: it sees the event as it would be written.
            structlog_redactor(egress),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        # sys.stderr is looked up per logger, not bound once: test runners swap and close it.
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    install_stdlib_redaction(egress)
