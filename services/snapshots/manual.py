"""A monthly forecast snapshot taken by hand (``budgetvakt snapshot``), and ``db upgrade``.

:func:`take_snapshot` replays the input topics from the beginning (``streams.replay``,
independent of any running worker), forecasts the organisation as of the period's month and
freezes each nämnd's part (and ``omappad``'s, when it has rows) as the next snapshot version of
that nämnd's period (``services.snapshots.store``), or only the one nämnd asked for. The worker
writes the same snapshots by itself on ``period_close``; this is for a period that must be
(re)taken by hand. :func:`upgrade_database` brings the database schema to the current revision;
every other command refuses a database that is not at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import UserError
from core.period import Period

if TYPE_CHECKING:
    from core.domain import DomainConfig
    from services.snapshots.store import StoredSnapshot
    from streams.replay import ReplayResult


@dataclass(frozen=True)
class TakenSnapshot:
    stored: list[StoredSnapshot]  # one per owner, in configuration order
    replayed: ReplayResult
    domain: DomainConfig
    database: str  # the URL without its password


def upgrade_database() -> tuple[str, str]:
    """Migrate BUDGETVAKT_DATABASE_URL to the newest revision: (database, revision)."""
    from core.settings import Settings
    from services.snapshots.engine import describe_url
    from services.snapshots.migrate import upgrade

    url = Settings().database_url_or_default()
    return describe_url(url), upgrade(url)


def take_snapshot(
    period: Period, checkpoint: str | None, timeout_s: float, namnd: str | None = None
) -> TakenSnapshot:
    """Replay the input topics, forecast as of ``period`` and store each owner's part as the
    next version of its period (only ``namnd``'s when given)."""
    from core.settings import Settings
    from forecasts.live import forecast_organisation
    from services.config.domain import load_domain_config
    from services.snapshots.checkpoints import check_checkpoint_name, load_checkpoints
    from services.snapshots.engine import describe_url, make_engine
    from services.snapshots.migrate import ensure_at_head
    from services.snapshots.store import split_by_owner, write_snapshot
    from streams.aggregation import leaf_series
    from streams.replay import replay

    year, month = period
    settings = Settings()
    servers = settings.require_bootstrap_servers()
    domain = load_domain_config(settings.config_dir)
    if namnd is not None and namnd not in domain.org.owners:
        raise UserError(
            f"--namnd {namnd!r} is not a nämnd of config/org.yaml "
            f"(choose one of {', '.join(domain.org.owners)})"
        )
    checkpoints = load_checkpoints(settings.config_dir)
    name = check_checkpoint_name(checkpoint) if checkpoint is not None else None
    name = name or checkpoints.get(month)
    url = settings.database_url_or_default()
    engine = make_engine(url)
    try:
        ensure_at_head(engine)  # before the replay: a missing upgrade fails fast
        topics = settings.topics()
        replayed = replay(
            servers,
            topics.input_types(),
            domain,
            timeout_s=timeout_s,
            connect_timeout_s=min(timeout_s, 10.0),
            broker_kind=settings.broker_kind,
        )
        leaves, latest_month = leaf_series(replayed.items.items(), year)
        if latest_month == 0:
            raise UserError(
                f"no costs of {year} on the topic {topics.cost} "
                f"({replayed.messages} messages read): nothing to take a snapshot of"
            )
        if month > latest_month:
            raise UserError(
                f"no costs are booked for {period}; the latest month with costs is "
                f"{Period(year, latest_month)}"
            )
        forecast = forecast_organisation(leaves, domain, year, month, model=settings.forecast_model)
        parts = split_by_owner(forecast, domain.org)
        if namnd is not None:
            if namnd not in parts:
                raise UserError(f"no costs of {namnd} in {year}: nothing to take a snapshot of")
            parts = {namnd: parts[namnd]}
        stored = [
            write_snapshot(
                engine,
                part,
                period=str(period),
                trigger="cli",
                checkpoint=name,
                org=domain.org,
                model=settings.forecast_model,
            )
            for part in parts.values()
        ]
    finally:
        engine.dispose()
    return TakenSnapshot(stored, replayed, domain, describe_url(url))


def summary_lines(taken: TakenSnapshot) -> list[str]:
    """What was stored, the organisation's figures (amounts as the reports write them), input."""
    from core.swedish import MONTH_NAMES_SV, format_mnkr
    from forecasts.live import TOTAL

    replayed = taken.replayed
    lines: list[str] = []
    for stored in taken.stored:
        year, month = Period.parse(stored.period)
        node = taken.domain.org.nodes.get(stored.namnd)
        name = node.name if node is not None else stored.namnd
        total = stored.forecast.get(stored.namnd, TOTAL)
        lines.append(
            f"Snapshot {stored.id} stored: {stored.namnd}, period {stored.period}, "
            f"version {stored.version}, checkpoint {stored.checkpoint or '(none)'}, "
            f"{len(stored.forecast.nodes)} rows."
        )
        if total is not None:
            budget = total.budget_full_year
            deviation = total.deviation
            lines.append(
                f"{name} ({stored.namnd}) {year} as of {MONTH_NAMES_SV[month - 1]}: "
                f"budget {format_mnkr(budget) if budget is not None else '–'} mnkr, "
                f"forecast {format_mnkr(total.full_year)} mnkr "
                f"(80 %: {format_mnkr(total.low)}–{format_mnkr(total.high)}), "
                f"deviation {format_mnkr(deviation) if deviation is not None else '–'} mnkr."
            )
    late = sum(stored.late_event_count for stored in taken.stored)
    period_key = taken.stored[0].period if taken.stored else ""
    lines.append(
        f"Input: {replayed.messages} messages "
        f"({replayed.invalid + replayed.failed} invalid, "
        f"{replayed.duplicates} duplicates); "
        f"{len(replayed.closed_periods)} closed periods; "
        f"{late} late events in the snapshots."
    )
    if period_key and period_key not in replayed.closed_periods:
        lines.append(f"Note: period {period_key} is not closed (no period_close event).")
    lines.append(f"Database: {taken.database}")
    return lines
