"""Run ``budgetvakt web``: the app on uvicorn, reading and writing BUDGETVAKT_DATABASE_URL."""

from __future__ import annotations

from datetime import timedelta

import structlog

from core.settings import Settings
from services.config.domain import load_domain_config
from services.snapshots.engine import describe_url, make_engine
from services.snapshots.migrate import ensure_at_head
from services.web.app import WebConfig, create_app

log = structlog.get_logger(__name__)


def run_web(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    domain = load_domain_config(settings.config_dir)
    url = settings.database_url_or_default()
    engine = make_engine(url)
    ensure_at_head(engine)  # "run budgetvakt db upgrade" instead of an SQL error per request
    config = WebConfig(
        engine=engine,
        domain=domain,
        session_lifetime=timedelta(minutes=settings.ui_session_minutes),
        secure_cookie=settings.ui_secure_cookie,
    )
    bind_host = host or settings.ui_host
    bind_port = settings.ui_port if port is None else port
    log.info("web_starting", url=f"http://{bind_host}:{bind_port}/", database=describe_url(url))
    try:
        uvicorn.run(
            create_app(config),
            host=bind_host,
            port=bind_port,
            log_config=None,  # structlog (services.logs) logs the requests, not uvicorn
            access_log=False,
            server_header=False,
        )
    finally:
        engine.dispose()
