"""``budgetvakt publish FILE``: validate a CSV or JSON Lines file of events and send it to Kafka.

Every row is validated with the worker's own ``parse_event``; a bad row is reported as
``FILE:LINE: reason`` and not sent. Valid rows are sent with kafka-python (acks=all, key = the
partition key of the row's org_unit: the id of the nämnd that owns it under the org tree, see
``streams.ownership``, so that every event arrives at its home partition), flushed and confirmed
one by one. A row without ``event_id`` gets a deterministic id
from the file name, the line number and the row's content, so that publishing the same file
twice counts once.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.pii import contains_identity_number, quote_safely
from contract.strict_json import StrictJsonError, decode_strict_object
from contract.validation import InvalidEvent, parse_event, pii_reason
from core.domain import DomainConfig
from core.errors import UserError
from core.settings import Topics
from core.swedish import parse_number_sv
from streams.ownership import Ownership

MONTH_COLUMNS = [f"m{m:02d}" for m in range(1, 13)]
CSV_LAYOUTS: dict[str, tuple[set[str], set[str]]] = {
    # kind: (required columns, optional columns)
    "cost": ({"org_unit", "period", "amount_sek"}, {"event_id", "category", "account", "corrects"}),
    "volume": ({"org_unit", "period", "measure", "value", "unit"}, {"event_id"}),
    "budget": (
        {"org_unit", "year", "annual"},
        {"event_id", "category", "measure", "version", *MONTH_COLUMNS},
    ),
    "period_close": ({"org_unit", "period"}, {"event_id"}),
}
JSON_LINES_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass(frozen=True)
class Rejection:
    line: int
    reason: str


@dataclass
class LoadedFile:
    path: Path
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def topic_for_type(event_type: str, topics: Topics) -> str:
    return {kind: topic for topic, kind in topics.input_types().items()}[event_type]


def derived_event_id(file_name: str, line: int, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(f"{file_name}|{line}|{canonical}".encode()).hexdigest()
    return f"pub-{digest[:32]}"


def _number(text: str, column: str) -> float:
    try:
        return parse_number_sv(text)
    except ValueError:
        raise ValueError(f"column '{column}': {quote_safely(text)} is not a number") from None


def _column_names(names: Iterable[str]) -> str:
    return ", ".join(quote_safely(name).strip("'\"") for name in names)


def _csv_kind(header: Sequence[str], path: Path) -> str:
    if contains_identity_number(list(header)):
        raise UserError(f"{path}:1: {pii_reason('a column name')}")
    columns = set(header)
    duplicates = sorted(c for c, n in Counter(header).items() if n > 1)
    if duplicates:
        raise UserError(f"{path}:1: duplicate column(s): {_column_names(duplicates)}")
    if "amount_sek" in columns:
        kind = "cost"
    elif "annual" in columns:
        kind = "budget"
    elif "measure" in columns:
        kind = "volume"
    elif columns <= {"event_id", "org_unit", "period"}:
        kind = "period_close"
    else:
        raise UserError(
            f"{path}:1: cannot tell the kind of events from the header "
            f"{_column_names(header[:20])}; "
            "expected the columns of costs (…,amount_sek), volumes (…,measure,value,unit), "
            "budgets (…,year,category,annual[,m01..m12]) or period closes (…,period)"
        )
    required, optional = CSV_LAYOUTS[kind]
    missing = sorted(required - columns)
    unknown = sorted(columns - required - optional)
    if missing:
        raise UserError(f"{path}:1: {kind} file lacks column(s): {', '.join(missing)}")
    if unknown:
        raise UserError(f"{path}:1: unknown column(s) for a {kind} file: {_column_names(unknown)}")
    return kind


def _csv_row_to_event(kind: str, row: dict[str, str]) -> dict[str, Any]:
    values = {k: (v or "").strip() for k, v in row.items()}
    event: dict[str, Any] = {"type": kind}
    for key in ("event_id", "org_unit", "period", "category", "measure", "unit", "version"):
        if values.get(key):
            event[key] = values[key]
    if values.get("corrects"):
        event["corrects"] = values["corrects"]
    if kind == "cost":
        event["amount_sek"] = _number(values["amount_sek"], "amount_sek")
        if values.get("account"):
            try:
                event["account"] = int(values["account"])
            except ValueError:
                raise ValueError(
                    f"column 'account': {quote_safely(values['account'])} is not a number"
                ) from None
    elif kind == "volume":
        event["value"] = _number(values["value"], "value")
    elif kind == "budget":
        try:
            event["year"] = int(values["year"])
        except ValueError:
            raise ValueError(
                f"column 'year': {quote_safely(values['year'])} is not a year"
            ) from None
        event["annual"] = _number(values["annual"], "annual")
        months = [values.get(c, "") for c in MONTH_COLUMNS]
        if any(months):
            if not all(months):
                raise ValueError("columns m01..m12: give all twelve months or none")
            event["monthly"] = [_number(v, c) for v, c in zip(months, MONTH_COLUMNS, strict=True)]
    return event


def _delimiter(header_line: str) -> str:
    # Swedish spreadsheet exports use ';' (the comma is the decimal sign).
    return ";" if header_line.count(";") > header_line.count(",") else ","


def _read_csv_rows(path: Path, loaded: LoadedFile) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        reader = csv.DictReader(handle, delimiter=_delimiter(first), strict=True)
        header = [h.strip() for h in reader.fieldnames or []]
        if not header:
            raise UserError(f"{path}:1: empty file (no header)")
        reader.fieldnames = header
        kind = _csv_kind(header, path)
        try:
            for row in reader:
                line = reader.line_num
                if None in row:
                    loaded.rejections.append(Rejection(line, "more values than header columns"))
                    continue
                if not any((v or "").strip() for v in row.values()):
                    continue
                carrier = next(
                    (k for k, v in row.items() if contains_identity_number(v or "")), None
                )
                if carrier is not None:
                    loaded.rejections.append(Rejection(line, pii_reason(f"column '{carrier}'")))
                    continue
                try:
                    yield line, _csv_row_to_event(kind, row)
                except ValueError as err:
                    loaded.rejections.append(Rejection(line, str(err)))
        except csv.Error as err:
            raise UserError(f"{path}:{reader.line_num}: not valid CSV: {err}") from None


def _read_json_lines(path: Path, loaded: LoadedFile) -> Iterator[tuple[int, dict[str, Any]]]:
    """One event per line; a line that is not UTF-8 is a rejected row like any other, so one
    bad byte does not cost the whole file."""
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for line_no, raw_line in enumerate(data.splitlines(), start=1):
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            line = raw_line.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            try:
                decode_strict_object(raw_line)  # the reason: an identity number, or the byte
            except StrictJsonError as err:
                loaded.rejections.append(Rejection(line_no, err.reason))
            continue
        if not line.strip():
            continue
        try:
            # The worker's own rules: strict JSON, the identity-number guard on the decoded
            # content, positions instead of text in every reason.
            value = decode_strict_object(line)
        except StrictJsonError as err:
            loaded.rejections.append(Rejection(line_no, err.reason))
            continue
        yield line_no, value


def read_events(path: Path, domain: DomainConfig) -> LoadedFile:
    """Read and validate every row; nothing is sent here."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    loaded = LoadedFile(path)
    rows: Iterable[tuple[int, dict[str, Any]]]
    if path.suffix.lower() in JSON_LINES_SUFFIXES:
        rows = _read_json_lines(path, loaded)
    elif path.suffix.lower() == ".csv":
        rows = _read_csv_rows(path, loaded)
    else:
        raise UserError(f"{path}: unknown file type; use .csv or .jsonl")
    seen_ids: dict[str, int] = {}
    try:
        for line, event in rows:
            if not event.get("event_id"):
                event = {"event_id": derived_event_id(path.name, line, event), **event}
            try:
                parse_event(json.dumps(event, ensure_ascii=False).encode(), domain)
            except InvalidEvent as err:
                loaded.rejections.append(Rejection(line, err.reason))
                continue
            event_id = str(event["event_id"])
            if event_id in seen_ids:
                loaded.rejections.append(
                    Rejection(
                        line, f"event_id {event_id!r} already used on line {seen_ids[event_id]}"
                    )
                )
                continue
            seen_ids[event_id] = line
            loaded.events.append((line, event))
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text (byte {err.start})") from None
    loaded.rejections.sort(key=lambda r: r.line)
    return loaded


def configured_ownership() -> Ownership:
    """The partition keys of the deployment: the org tree in ``BUDGETVAKT_CONFIG_DIR`` and the
    scheme in ``BUDGETVAKT_PARTITION_KEY`` (the worker's own)."""
    from core.settings import Settings
    from services.config.domain import load_domain_config

    settings = Settings()
    return Ownership(load_domain_config(settings.config_dir).org, settings.partition_key)


def send_events(
    bootstrap_servers: str,
    topic: str | None,
    events: Sequence[dict[str, Any]],
    topics: Topics | None = None,
    on_sent: Any = None,
    ownership: Ownership | None = None,
) -> int:
    """Send events (to ``topic``, or each to its type's topic), acks=all, and confirm each one.

    Each is keyed by its owner (``ownership``, by default :func:`configured_ownership`), so the
    producer's default partitioner puts it on its home partition and the worker need not
    forward it.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    topics = topics or Topics()
    ownership = ownership or configured_ownership()
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=5,
            retries=5,
            max_in_flight_requests_per_connection=1,  # keeps a nämnd's events in order
        )
    except KafkaError as err:
        raise UserError(f"cannot reach Kafka at {bootstrap_servers}: {err}", exit_code=1) from None
    try:
        futures = []
        for event in events:
            target = topic or topic_for_type(str(event["type"]), topics)
            value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
            key = ownership.key(str(event["org_unit"])).encode("utf-8")
            futures.append(producer.send(target, key=key, value=value))
        producer.flush()
        for future in futures:
            future.get(timeout=30)
            if on_sent is not None:
                on_sent()
    except KafkaError as err:
        raise UserError(f"sending to Kafka failed: {err}", exit_code=1) from None
    finally:
        producer.close(timeout=10)
    return len(futures)
