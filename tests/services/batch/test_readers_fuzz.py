"""Fuzzing the file readers of ``budgetvakt publish`` and ``budgetvakt forecast``: every row is
counted once (an event or a rejection), a file either reads or fails with a UserError, nothing
else escapes, and no message holds an identity number. Deterministic (fixed seeds)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract.pii import contains_identity_number
from core.domain import DomainConfig
from core.errors import UserError
from services.batch.forecast import read_actuals, read_budgets, read_volumes
from services.batch.publish import read_events
from testing.fuzz import identity_number, messages, spell

DETERMINISTIC = settings(
    derandomize=True,
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
COST_HEADER = ["event_id", "org_unit", "period", "category", "amount_sek"]
ACTUALS_HEADER = ["org_unit", "category", "period", "amount_sek"]


def clean_message(text: str) -> None:
    assert not contains_identity_number(text), text[:300]


def nonblank_lines(path: Path) -> list[int]:
    lines = path.read_bytes().splitlines()
    return [n for n, line in enumerate(lines, start=1) if line.decode(errors="replace").strip()]


def test_json_lines_files_of_mutated_and_hostile_events(
    tmp_path: Path, domain: DomainConfig
) -> None:
    checked = 0
    for seed in range(12):
        raws = [m.raw.replace(b"\n", b" ").replace(b"\r", b" ") for m in messages(seed, 150)]
        path = tmp_path / f"events-{seed}.jsonl"
        path.write_bytes(b"\n".join(raws) + b"\n")
        loaded = read_events(path, domain)  # a line that is not UTF-8 is one rejected row
        lines = [line for line, _ in loaded.events] + [r.line for r in loaded.rejections]
        assert sorted(lines) == nonblank_lines(path)  # each row once, none lost
        for rejection in loaded.rejections:
            clean_message(rejection.reason)
        checked += 1
    assert checked == 12


cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["1110", "2024-03", "overtime", "1 234,50", "1e400", "nan", "-0", "true"]),
    st.integers(min_value=0, max_value=2**32).map(
        lambda n: spell(identity_number(random.Random(n)), random.Random(n))
    ),
)
rows = st.lists(st.lists(cell, min_size=3, max_size=6), max_size=8)


def write_csv(path: Path, header: list[str], body: list[list[str]], delimiter: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(body)


def data_rows(path: Path, delimiter: str) -> int:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader)
        return sum(1 for row in reader if any(c.strip() for c in row))


@DETERMINISTIC
@given(body=rows, delimiter=st.sampled_from([",", ";"]))
def test_publish_csv_rows_are_each_counted_once(
    tmp_path_factory: object, domain: DomainConfig, body: list[list[str]], delimiter: str
) -> None:
    path = tmp_path_factory.mktemp("csv") / "costs.csv"  # type: ignore[attr-defined]
    write_csv(path, COST_HEADER, body, delimiter)
    try:
        loaded = read_events(path, domain)
    except UserError as err:
        clean_message(str(err))
        return
    lines = [line for line, _ in loaded.events] + [r.line for r in loaded.rejections]
    assert len(lines) == len(set(lines)) == data_rows(path, delimiter)
    for rejection in loaded.rejections:
        clean_message(rejection.reason)


@DETERMINISTIC
@given(body=rows, delimiter=st.sampled_from([",", ";"]), kind=st.sampled_from(["a", "b", "v"]))
def test_forecast_readers_read_every_row_or_say_why(
    tmp_path_factory: object, body: list[list[str]], delimiter: str, kind: str
) -> None:
    path = tmp_path_factory.mktemp("fc") / "in.csv"  # type: ignore[attr-defined]
    header = {
        "a": ACTUALS_HEADER,
        "b": ["org_unit", "category", "year", "annual_sek"],
        "v": ["org_unit", "measure", "period", "value"],
    }[kind]
    write_csv(path, header, body, delimiter)
    try:
        if kind == "a":
            points = sum(len(s) for s in read_actuals(path).series.values())
        elif kind == "b":
            points = sum(len(s) for s in read_budgets(path, {}).series.values())
        else:
            points = sum(len(s) for s in read_volumes(path, ["home_care_hours"]).series.values())
    except UserError as err:
        clean_message(str(err))
        return
    assert points == data_rows(path, delimiter)
