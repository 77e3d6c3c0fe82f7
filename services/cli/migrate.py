"""``budgetvakt migrate-keys``: move the worker's state to the homes of BUDGETVAKT_PARTITION_KEY.

The stop-the-world path from cost-centre keys to nämnd keys (and back); the work is in
:mod:`streams.rekeying`, the steps for an operator in docs/architecture.md.
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("migrate-keys")
    def migrate_keys(
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print what would move; change nothing.")
        ] = False,
        workers_stopped: Annotated[
            bool,
            typer.Option(
                "--workers-stopped",
                help="Skip the check that the consumer group has no member (for a broker that "
                "keeps stopped workers as members, such as the embedded one).",
            ),
        ] = False,
    ) -> None:
        """Re-key the aggregate state for BUDGETVAKT_PARTITION_KEY (every worker stopped)."""
        from core.settings import Settings
        from services.config.domain import load_domain_config
        from streams.ownership import Ownership
        from streams.rekeying import migrate_keys as run

        settings = Settings()
        servers = settings.require_bootstrap_servers()
        domain = load_domain_config(settings.config_dir)  # ConfigError → exit 2, no traceback
        ownership = Ownership(domain.org, settings.partition_key)
        # A killed worker stays a member for the session timeout: wait that long for it to go.
        members_timeout_s = None if workers_stopped else settings.broker_session_timeout_s + 2
        outcome = run(
            servers,
            settings.app_id,
            ownership,
            settings.topic_partitions,
            dry_run,
            members_timeout_s=members_timeout_s,
        )
        plan = outcome.plan
        before = outcome.recorded_before
        if before is None:
            keyed_by = "cost_centre (not recorded)"
        else:
            unfinished = " (migration unfinished)" if before.state == "migrating" else ""
            keyed_by = before.scheme + unfinished
        typer.echo(
            f"{settings.app_id}: state keyed by {keyed_by}, target {outcome.target}; "
            f"{outcome.partitions} partitions; "
            f"{outcome.keys_read} keys read, {plan.at_home} at home, {len(plan.moves)} to move"
        )
        for line in plan.summary():
            typer.echo(f"  {line}")
        if dry_run:
            for move in plan.moves:
                action = "move" if move.write else "drop (already at home)"
                typer.echo(f"  {action}: {move.old_key} → {move.new_key}")
            typer.echo("dry run: nothing changed")
        else:
            typer.echo(
                f"moved {len(plan.moves)} keys ({len(plan.writes)} written, "
                f"{len(plan.moves)} tombstoned); recorded scheme {outcome.target}: "
                f"start the workers with BUDGETVAKT_PARTITION_KEY={outcome.target}"
            )
