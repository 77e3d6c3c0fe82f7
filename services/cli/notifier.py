"""``budgetvakt notifier``: deviation alerts to their recipients, by e-mail and webhook.

The notifier is :mod:`services.notifier.service` and its modules.
"""

from __future__ import annotations

import asyncio

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def notifier() -> None:
        """Send deviation alerts to their recipients (e-mail, webhooks); serve /metrics."""
        import signal

        from core.settings import Settings
        from services.config.domain import load_domain_config
        from services.notifier.routing import load_routing
        from services.notifier.service import run_notifier
        from services.notifier.settings import load_env_settings

        settings = Settings()
        settings.require_bootstrap_servers()
        notifier_settings, smtp_settings = load_env_settings()
        domain = load_domain_config(settings.config_dir)  # ConfigError → exit 2, no traceback
        routing = load_routing(notifier_settings.resolved_routing_file(settings), domain.org)
        settings.create_data_dir()

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await run_notifier(
                settings,
                domain,
                routing,
                stop,
                notifier_settings=notifier_settings,
                smtp_settings=smtp_settings,
            )

        asyncio.run(main())
