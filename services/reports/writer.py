"""``budgetvakt report`` (the delårsrapport) and ``budgetvakt accuracy`` (prognossäkerhet).

``budgetvakt report --period YYYY-MM [--format all|xlsx|html|csv] [--out DIR]
[--compare auto|all|checkpoints] [--snapshot-version N]`` reads the latest snapshot of the
period (or the given version) and the year's earlier snapshots (latest version of each period)
from the snapshot store and writes, in Swedish:

* ``delarsrapport-YYYY-MM.xlsx``: a cover sheet (kommun, nämnd, period, snapshot id, version and
  time, "Prognos efter <månad>", summary), one sheet per table, a sheet with the charts;
* ``delarsrapport-YYYY-MM.html``: one self-contained page, charts embedded as PNG data URIs;
* ``delarsrapport-YYYY-MM-<tabell>.csv``: one file per table (``driftredovisning``,
  ``prognosforandring``, ``personalkostnader``, ``volymer``, ``nyckeltal``), semicolon
  separated with decimal comma, UTF-8 with BOM: what a Swedish Excel opens directly.

The default format is ``all`` (the three); a comma-separated list such as ``xlsx,csv`` picks
some. The default ``--out`` is the current directory (created if missing). Every file is
rendered in memory first and then written to a temporary name in the target directory and
renamed, so a failure leaves either the complete file or none (an earlier report's files stay).

``budgetvakt accuracy --year YYYY [--out DIR]`` needs the year's December snapshot (its actuals
are the outcome); it prints the prognossäkerhet table per level and the annual-report sentences
and writes ``prognossakerhet-YYYY.csv`` and ``prognossakerhet-YYYY.xlsx``.

Tables, conventions and charts: :mod:`services.reports.tables`, :mod:`services.reports.charts`,
:mod:`services.reports.accuracy`; formats: :mod:`services.reports.excel`,
:mod:`services.reports.html`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog

from core.errors import UserError
from core.hierarchy import UNMAPPED_ID
from core.period import parse_period_option

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from core.domain import DomainConfig
    from services.reports.accuracy import Accuracy
    from services.reports.tables import CompareMode, Report
    from services.snapshots.store import StoredSnapshot

log = structlog.get_logger(__name__)

ReportFormat = Literal["xlsx", "html", "csv", "pdf"]
ALL_FORMATS: tuple[ReportFormat, ...] = ("xlsx", "html", "csv", "pdf")
COMPARE_MODES = ("auto", "all", "checkpoints")


# --- Pure parts ------------------------------------------------------------------------------


def parse_formats(text: str) -> tuple[ReportFormat, ...]:
    """The formats asked for; ``all`` is every format, PDF only where Chromium is installed."""
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not parts or "all" in parts:
        from services.reports.pdf import find_chromium

        return ALL_FORMATS if find_chromium() else tuple(f for f in ALL_FORMATS if f != "pdf")
    unknown = [p for p in parts if p not in ALL_FORMATS]
    if unknown:
        raise UserError(
            f"--format {text!r}: unknown format {', '.join(unknown)}; choose all, xlsx, html, "
            "csv, pdf or a comma-separated list such as xlsx,pdf"
        )
    return tuple(f for f in ALL_FORMATS if f in parts)


def report_file_name(period: str, fmt: str, table: str | None = None) -> str:
    stem = f"delarsrapport-{period}"
    return f"{stem}-{table}.{fmt}" if table else f"{stem}.{fmt}"


#: The formats rendered in this process (PDF needs a browser).
IN_PROCESS_FORMATS: tuple[ReportFormat, ...] = ("xlsx", "html", "csv")


def report_files(
    report: Report, formats: Sequence[ReportFormat] = IN_PROCESS_FORMATS
) -> dict[str, bytes]:
    """File name → content of the report in the given formats (nothing written)."""
    from services.reports.excel import render_xlsx
    from services.reports.html import render_csv, render_html

    files: dict[str, bytes] = {}
    if "xlsx" in formats:
        files[report_file_name(report.period, "xlsx")] = render_xlsx(report)
    if "html" in formats or "pdf" in formats:
        html = render_html(report)
        if "html" in formats:
            files[report_file_name(report.period, "html")] = html.encode("utf-8")
        if "pdf" in formats:
            from services.reports.pdf import html_to_pdf

            files[report_file_name(report.period, "pdf")] = html_to_pdf(html)
    if "csv" in formats:
        for table in report.tables:
            files[report_file_name(report.period, "csv", table.slug)] = render_csv(table)
    return files


def accuracy_files(accuracy: Accuracy) -> dict[str, bytes]:
    from services.reports.excel import render_tables_xlsx
    from services.reports.html import render_csv

    table = accuracy.table()
    stem = f"prognossakerhet-{accuracy.year}"
    return {
        f"{stem}.csv": render_csv(table),
        f"{stem}.xlsx": render_tables_xlsx(
            [table],
            title=f"Prognossäkerhet {accuracy.year}",
            notes=accuracy.sentences,
            created=accuracy.outcome_snapshot.created_at,
        ),
    }


# --- Files -----------------------------------------------------------------------------------


def _prepare_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"--out {out_dir}: cannot create the directory ({err.strerror or type(err).__name__})"
        ) from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise UserError(f"--out {out_dir}: the directory is not writable")


def write_atomically(out_dir: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write every file to a temporary name in ``out_dir``, then rename them all into place.

    On an error no temporary file is left behind and no target file is half written.
    """
    _prepare_out_dir(out_dir)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            final = out_dir / name
            temporary = out_dir / f".{name}.{os.getpid()}.tmp"
            # O_EXCL: never write through someone else's file; mode 0666 minus the umask.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            staged.append((temporary, final))
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, final in staged:
            os.replace(temporary, final)
    except OSError as err:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise UserError(
            f"cannot write the report to {out_dir}: {err.strerror or type(err).__name__}"
        ) from None
    return [final for _, final in staged]


# --- Database --------------------------------------------------------------------------------


@contextlib.contextmanager
def open_store(url: str) -> Iterator[Engine]:
    """An engine on the snapshot store; a missing SQLite file is a clear error, not a new file."""
    from sqlalchemy.engine import make_url

    from services.snapshots.engine import describe_url
    from services.snapshots.store import make_engine

    try:
        parsed = make_url(url)
    except Exception:  # make_engine gives the precise message
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        is_file = database not in ("", ":memory:") and not database.startswith("file:")
        if is_file and not Path(database).exists():
            raise UserError(
                f"the snapshot database {describe_url(url)} does not exist: there are no "
                "snapshots yet. Run `budgetvakt db upgrade` and take a snapshot with "
                "`budgetvakt snapshot --period YYYY-MM` (or run the worker until a period "
                "closes)."
            )
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _periods_text(snapshots: Sequence[StoredSnapshot]) -> str:
    return ", ".join(sorted({s.period for s in snapshots})) or "none"


def load_report_snapshots(
    engine: Engine, period: str, version: int | None = None, namnd: str | None = None
) -> tuple[StoredSnapshot, list[StoredSnapshot]]:
    """The nämnd's snapshot of the period (latest version unless given) and the nämnd's other
    snapshots of the year (``namnd`` None: the only nämnd)."""
    from services.snapshots.store import load_snapshot, load_snapshots

    year, _ = parse_period_option("--period", period)
    current = load_snapshot(engine, period, version, namnd=namnd)
    year_snapshots = load_snapshots(engine, year, namnd=namnd)  # latest version of each period
    if current is None:
        if version is not None:
            versions = sorted(
                s.version
                for s in load_snapshots(engine, year, latest_version_only=False, namnd=namnd)
                if s.period == period
            )
            if versions:
                raise UserError(
                    f"snapshot {period} version {version} does not exist; versions: "
                    + ", ".join(str(v) for v in versions)
                )
        of = f" of {namnd}" if namnd else ""
        raise UserError(
            f"there is no snapshot of the period {period}{of}. Snapshots{of} of {year}: "
            f"{_periods_text(year_snapshots)}. Take one with "
            f"`budgetvakt snapshot --period {period}` (the worker also takes it when the period "
            "closes)."
        )
    earlier = [s for s in year_snapshots if s.period < period]
    return current, earlier


def _domain(domain: DomainConfig | None) -> DomainConfig:
    if domain is not None:
        return domain
    from core.settings import Settings
    from services.config.domain import load_domain_config

    return load_domain_config(Settings().config_dir)


def report_namnder(domain: DomainConfig, namnd: str | None) -> list[str]:
    """The nämnder to report on: ``namnd`` (checked against the configuration), else every
    configured nämnd (one for a one-nämnd deployment)."""
    namnder = domain.org.namnder
    if namnd is None:
        return namnder
    if namnd == UNMAPPED_ID:
        raise UserError(
            f"--namnd {UNMAPPED_ID}: unknown cost centres belong to no nämnd and get no report; "
            "list them with `budgetvakt unmapped`"
        )
    if namnd not in namnder:
        raise UserError(
            f"--namnd {namnd!r} is not a nämnd of config/org.yaml; choose one of "
            + ", ".join(namnder)
        )
    return [namnd]


# --- Entry points (CLI and demo) -------------------------------------------------------------


def load_follow_up_or_none(engine: Engine, period: str, namnd: str | None = None) -> Any:
    """The nämnd's follow-up of the period (comments, åtgärder, förvaltningens prognos,
    approvals)."""
    from services.followup.read import load_follow_up

    return load_follow_up(engine, period, namnd=namnd)


def namnd_approval(engine: Engine, period: str, root_id: str) -> Any:
    """The newest approval of the nämnd's forecast for the period (any version), or None."""
    from services.followup.read import approval_history

    entries = approval_history(engine, period, root_id, namnd=root_id)
    return entries[0].approval if entries else None


def approved_follow_up(
    engine: Engine, period: str, version: int, follow_up: Any, namnd: str | None = None
) -> Any:
    """The follow-up as it was approved for ``version``: each node approved for that version
    with its frozen comment, åtgärder and adjustment; other nodes as they stand now."""
    from datetime import date

    from services.followup.read import Measure, NodeFollowUp, PeriodFollowUp, approval_history

    nodes = dict(follow_up.nodes)
    seen: set[str] = set()
    for entry in approval_history(engine, period, namnd=namnd):  # newest first
        if entry.approval.snapshot_version != version or entry.org_unit in seen:
            continue
        seen.add(entry.org_unit)
        frozen = entry.frozen
        measures = tuple(
            Measure(
                text=m["text"],
                responsible=m["responsible"],
                amount_sek=float(m["amount_sek"]),
                status=m["status"],
                decided=date.fromisoformat(m["decided"]) if m.get("decided") else None,
                realised_sek=m.get("realised_sek"),
            )
            for m in frozen.get("measures", ())
        )
        nodes[entry.org_unit] = NodeFollowUp(
            org_unit=entry.org_unit,
            comment=frozen.get("comment"),
            comment_by=frozen.get("comment_by"),
            measures=measures,
            adjusted_full_year_sek=frozen.get("adjusted_full_year_sek"),
            adjustment_reason=frozen.get("adjustment_reason"),
            approval=entry.approval,
        )
    return PeriodFollowUp(period=period, nodes=nodes)


def _previous_year_accuracy(
    engine: Engine,
    snapshots: Sequence[StoredSnapshot],
    domain: DomainConfig,
    year: int,
    namnd: str | None = None,
) -> tuple[Any, list[str]]:
    """Last year's prognossäkerhet at its checkpoints (table, sentences), or (None, [])."""
    from dataclasses import replace

    from services.reports.accuracy import compute_accuracy

    if not any(s.period == f"{year:04d}-12" for s in snapshots):
        return None, []
    follow_ups = {s.period: load_follow_up_or_none(engine, s.period, namnd) for s in snapshots}
    try:
        accuracy = compute_accuracy(snapshots, domain, year, follow_ups, checkpoints_only=True)
    except UserError:
        return None, []
    table = replace(
        accuracy.table(),
        title=f"Prognossäkerhet {year}",
        caption=f"Hur väl prognoserna {year} träffade årets utfall, vid varje kontrollpunkt: "
        + accuracy.table().caption,
    )
    # In this year's report the sentences are about last year: say which.
    sentences = [s.replace("Utfallet för ", f"Utfallet {year} för ", 1) for s in accuracy.sentences]
    return table, sentences


def write_report(
    engine: Engine,
    period: str,
    out_dir: Path,
    *,
    formats: Sequence[ReportFormat] | None = None,
    compare: CompareMode = "auto",
    domain: DomainConfig | None = None,
    version: int | None = None,
    namnd: str | None = None,
) -> tuple[Report, list[Path]]:
    """Build one nämnd's delårsrapport of ``period`` from the store and write it to ``out_dir``
    (``namnd`` None: the only nämnd of the configuration; :func:`write_reports` does several).

    Without ``version`` the report is built from the version the nämnd's forecast was approved
    for, else from the latest version (and its cover says that it is not approved).
    """
    from services.reports.tables import build_report
    from services.snapshots.store import load_snapshot, load_snapshots

    year, _ = parse_period_option("--period", period)
    whole = _domain(domain)
    namnder = report_namnder(whole, namnd)
    if len(namnder) != 1:
        raise UserError(
            f"the organisation has {len(namnder)} nämnder ({', '.join(namnder)}): "
            "name one with --namnd, or report on all of them"
        )
    owner = namnder[0]
    domain = whole.for_owner(owner)  # the nämnd's part: its tree, its kommun
    current, earlier = load_report_snapshots(engine, period, version, owner)
    latest_version = current.version
    follow_up = load_follow_up_or_none(engine, period, owner)
    approval = namnd_approval(engine, period, owner)
    if version is None and approval is not None and approval.snapshot_version != current.version:
        approved = load_snapshot(engine, period, approval.snapshot_version, namnd=owner)
        if approved is not None:
            current = approved
            follow_up = approved_follow_up(engine, period, approved.version, follow_up, owner)
    previous_year = load_snapshots(engine, year - 1, namnd=owner)
    accuracy_table, accuracy_sentences = _previous_year_accuracy(
        engine, previous_year, domain, year - 1, owner
    )
    report = build_report(
        current,
        earlier,
        domain,
        compare=compare,
        follow_up=follow_up,
        previous_year=previous_year,
        accuracy_table=accuracy_table,
        accuracy_notes=accuracy_sentences,
        approval=approval,
        latest_version=latest_version,
    )
    chosen = parse_formats("all") if formats is None else formats  # all: PDF with Chromium
    paths = write_atomically(out_dir, report_files(report, chosen))
    log.info(
        "report_written",
        namnd=owner,
        period=period,
        snapshot_id=current.id,
        version=current.version,
        approved=report.approved,
        compared=len(report.compared),
        files=len(paths),
    )
    return report, paths


@dataclass(frozen=True)
class KommunReports:
    """What ``budgetvakt report`` wrote: each nämnd's report and, with several nämnder, the
    kommun summary (its sentences in Swedish, as the reports' own)."""

    reports: list[Report]
    paths: list[Path]
    summary: list[str]  # the kommun sentences; empty for one nämnd
    missing: list[str]  # nämnder without a snapshot of the period


def write_reports(
    engine: Engine,
    period: str,
    out_dir: Path,
    *,
    formats: Sequence[ReportFormat] | None = None,
    compare: CompareMode = "auto",
    domain: DomainConfig | None = None,
    version: int | None = None,
    namnd: str | None = None,
) -> KommunReports:
    """``namnd``'s report (or the only nämnd's) in ``out_dir``; with several nämnder and none
    named, one report per nämnd in ``out_dir/<nämnd id>/`` and the kommun summary
    (``kommunsammanstallning-<period>.csv``/``.xlsx``) in ``out_dir``."""
    from forecasts.live import TOTAL
    from services.reports.kommun import (
        kommun_files,
        kommun_sentences,
        kommun_table,
        municipality_of,
        namnd_figures,
    )
    from services.snapshots.store import load_snapshot

    whole = _domain(domain)
    namnder = report_namnder(whole, namnd)
    if len(namnder) == 1:
        report, one_paths = write_report(
            engine,
            period,
            out_dir,
            formats=formats,
            compare=compare,
            domain=whole,
            version=version,
            namnd=namnder[0],
        )
        return KommunReports([report], one_paths, [], [])
    if version is not None:
        raise UserError("--snapshot-version needs --namnd: each nämnd has versions of its own")
    reports: list[Report] = []
    paths: list[Path] = []
    missing: list[str] = []
    for owner in namnder:
        if load_snapshot(engine, period, namnd=owner) is None:
            missing.append(owner)
            continue
        report, written = write_report(
            engine,
            period,
            out_dir / owner,
            formats=formats,
            compare=compare,
            domain=whole,
            namnd=owner,
        )
        reports.append(report)
        paths += written
    if not reports:
        raise UserError(
            f"there is no snapshot of the period {period} of any nämnd ({', '.join(namnder)}). "
            f"Take them with `budgetvakt snapshot --period {period}`."
        )
    figures = [namnd_figures(r, municipality_of(whole, r.namnd_id)) for r in reports]
    unmapped_snapshot = load_snapshot(engine, period, namnd=UNMAPPED_ID)
    unmapped = unmapped_snapshot.forecast.get(UNMAPPED_ID, TOTAL) if unmapped_snapshot else None
    as_of = reports[0].as_of_month
    table = kommun_table(figures, period, as_of, unmapped)
    sentences = kommun_sentences(figures, period, as_of)
    created = max(r.snapshot.created_at for r in reports)
    paths += write_atomically(out_dir, kommun_files(table, sentences, period, created))
    log.info("kommun_summary_written", period=period, namnder=len(reports), missing=missing)
    return KommunReports(reports, paths, sentences, missing)


def write_accuracies(
    engine: Engine,
    year: int,
    out_dir: Path,
    *,
    domain: DomainConfig | None = None,
    namnd: str | None = None,
) -> list[tuple[str, Accuracy, list[Path]]]:
    """``namnd``'s prognossäkerhet (or the only nämnd's) in ``out_dir``; with several nämnder and
    none named, each nämnd's in ``out_dir/<nämnd id>/`` (a nämnd without an outcome yet is left
    out). Returns (nämnd, accuracy, files) per nämnd."""
    whole = _domain(domain)
    namnder = report_namnder(whole, namnd)
    if len(namnder) == 1:
        accuracy, paths = write_accuracy(engine, year, out_dir, domain=whole, namnd=namnder[0])
        return [(namnder[0], accuracy, paths)]
    out: list[tuple[str, Accuracy, list[Path]]] = []
    errors: list[str] = []
    for owner in namnder:
        try:
            accuracy, paths = write_accuracy(
                engine, year, out_dir / owner, domain=whole, namnd=owner
            )
        except UserError as err:
            errors.append(f"{owner}: {err}")
            continue
        out.append((owner, accuracy, paths))
    if not out:
        raise UserError("no nämnd has a prognossäkerhet to show: " + "; ".join(errors))
    return out


def write_accuracy(
    engine: Engine,
    year: int,
    out_dir: Path,
    *,
    domain: DomainConfig | None = None,
    namnd: str | None = None,
) -> tuple[Accuracy, list[Path]]:
    """Compute one nämnd's prognossäkerhet of the year from the store and write the CSV and xlsx
    files (``namnd`` None: the only nämnd of the configuration)."""
    from services.reports.accuracy import compute_accuracy
    from services.snapshots.store import load_snapshots

    whole = _domain(domain)
    namnder = report_namnder(whole, namnd)
    if len(namnder) != 1:
        raise UserError(
            f"the organisation has {len(namnder)} nämnder ({', '.join(namnder)}): "
            "name one with --namnd, or evaluate all of them"
        )
    owner = namnder[0]
    snapshots = load_snapshots(engine, year, namnd=owner)
    follow_ups = {s.period: load_follow_up_or_none(engine, s.period, owner) for s in snapshots}
    accuracy = compute_accuracy(snapshots, whole.for_owner(owner), year, follow_ups)
    paths = write_atomically(out_dir, accuracy_files(accuracy))
    log.info(
        "accuracy_written",
        namnd=owner,
        year=year,
        outcome_snapshot_id=accuracy.outcome_snapshot.id,
        rows=len(accuracy.rows),
        files=len(paths),
    )
    return accuracy, paths


def print_accuracy(accuracy: Accuracy, console: Any = None) -> None:
    """The prognossäkerhet table, compact enough for an 80-column terminal, and the sentences."""
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    from services.reports.html import format_cell

    console = console or Console(soft_wrap=False)
    table = RichTable(
        title=f"Prognossäkerhet {accuracy.year} (mnkr; avvikelse = prognos − utfall, "
        "negativt = utfallet blev sämre)",
        box=box.SIMPLE_HEAD,
    )
    # The förvaltning's columns only where a forecast was approved, so that the names fit.
    with_adjusted = any(r.adjusted is not None for r in accuracy.rows)
    table.add_column("Verksamhet", overflow="fold", min_width=14)
    table.add_column("Prognos")
    headers = ["Modellen", "Utfall", "Avvikelse"]
    if with_adjusted:
        headers = ["Modellen", "Förvaltn.", "Utfall", "Avv. modell", "Avv. förv."]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)

    def red(kind: str, value: float | None) -> str:
        cell = format_cell(kind, value)  # type: ignore[arg-type]
        return f"[red]{cell.text}[/]" if "neg" in cell.css else cell.text

    def mnkr(value: float | None) -> float | None:
        return None if value is None else value / 1e6

    previous: str | None = None
    for row in accuracy.rows:
        if previous is not None and row.org_unit != previous:
            table.add_section()
        cells = [
            row.name if row.org_unit != previous else "",
            row.snapshot.label.removeprefix("Prognos "),
            format_cell("money", mnkr(row.forecast)).text,
        ]
        if with_adjusted:
            cells.append(format_cell("money", mnkr(row.adjusted)).text)
        cells += [
            format_cell("money", mnkr(row.outcome)).text,
            red("deviation", mnkr(row.difference)),
        ]
        if with_adjusted:
            cells.append(red("deviation", mnkr(row.adjusted_difference)))
        table.add_row(*cells, style="bold" if row.level == "namnd" else None)
        previous = row.org_unit
    console.print(table)
    for sentence in accuracy.sentences:
        console.print(sentence, highlight=False)
