"""The file readers of ``publish`` and ``forecast``: strict JSON, bounds, and no identity number
in any error message, whichever cell, column name or spelling carries it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.domain import DomainConfig
from core.errors import UserError
from services.batch.forecast import read_actuals, read_budgets, read_volume_plan, read_volumes
from services.batch.publish import read_events

ESCAPED = "".join(f"\\u{ord(c):04x}" for c in "191212121212")
DIGIT_RUNS = ("1212", "121212", "1912")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_number(text: str) -> None:
    for digits in DIGIT_RUNS:
        assert digits not in text, text


def test_json_lines_are_strict_and_guarded(tmp_path: Path, domain: DomainConfig) -> None:
    lines = [
        '{"type":"cost","org_unit":"1110","period":"2024-01","category":"overtime",'
        '"amount_sek":1,"amount_sek":2}',
        '{"type":"cost","org_unit":"1110","period":"2024-01","category":"overtime",'
        '"amount_sek":true}',
        '{"type":"cost","org_unit":"' + ESCAPED + '","period":"2024-01","category":"overtime",'
        '"amount_sek":1}',
        '{"type":"cost","org_unit":"1110","period":"2024-01","category":"overtime",'
        '"amount_sek":1,"121212-1212":1}',
        '{"type":"cost","org_unit":"1110","period":"2024-01","category":"overtime",'
        '"amount_sek":NaN}',
        '{"type":"cost","org_unit":"1110","period":"2024-01","category":"overtime",'
        '"amount_sek":2e13}',
        '{"type":"cost","org_unit":"1110","period":"2024-01","category":"overtime",'
        '"amount_sek":100}',
    ]
    loaded = read_events(write(tmp_path, "events.jsonl", "\n".join(lines) + "\n"), domain)
    assert [line for line, _ in loaded.events] == [7]
    reasons = {r.line: r.reason for r in loaded.rejections}
    assert reasons[1].startswith("duplicate key at $.amount_sek")
    assert reasons[2] == "field 'amount_sek': must be a number, not true or false"
    assert reasons[3].startswith("the value at $.org_unit contains a Swedish personal identity")
    assert reasons[4].startswith("a key at $ contains a Swedish personal identity")
    assert reasons[5] == "field 'amount_sek': must be a finite number"
    assert "less than or equal to 10000000000000" in reasons[6]
    assert_no_number(" ".join(reasons.values()))


def test_csv_cells_and_column_names_are_guarded(tmp_path: Path, domain: DomainConfig) -> None:
    text = (
        "org_unit,period,category,amount_sek\n"
        "1912 1212 1212,2024-01,overtime,100\n"
        "1110,2024-01,overtime,1212121212\n"
        "1110,2024-01,overtime,5e13\n"
        "1110,2024-01,overtime,100\n"
    )
    loaded = read_events(write(tmp_path, "costs.csv", text), domain)
    assert [line for line, _ in loaded.events] == [5]
    reasons = {r.line: r.reason for r in loaded.rejections}
    assert reasons[2].startswith("column 'org_unit' contains a Swedish personal identity")
    assert reasons[3].startswith("column 'amount_sek' contains a Swedish personal identity")
    assert "less than or equal to 10000000000000" in reasons[4]
    assert_no_number(" ".join(reasons.values()))

    header = "org_unit,period,category,amount_sek,19121212-1212\n1110,2024-01,overtime,1,x\n"
    with pytest.raises(UserError) as caught:
        read_events(write(tmp_path, "header.csv", header), domain)
    assert "a column name contains a Swedish personal identity number" in str(caught.value)
    assert_no_number(str(caught.value))


@pytest.mark.parametrize(
    ("reader", "header", "row", "problem"),
    [
        (
            read_actuals,
            "org_unit,category,period,amount_sek",
            "121212-1212,x,2024-01,1",
            "org_unit",
        ),
        (
            read_actuals,
            "org_unit,category,period,amount_sek",
            "1110,x,2024-01,1212121212",
            "amount",
        ),
        (read_actuals, "org_unit,category,period,amount_sek", "1110,x,2024-01,2e13", "between"),
        (
            read_actuals,
            "org_unit,category,period,amount_sek,121212-1212",
            "1,x,2024-01,1,2",
            "name",
        ),
        (read_volumes, "org_unit,measure,period,value", "1110,home_care_hours,2024-01,-1", "0 and"),
        (read_volumes, "org_unit,measure,period,value", "1110,121212 1212,2024-01,1", "measure"),
        (read_budgets, "org_unit,category,year,annual_sek", "1110,x,1212121212,1", "year"),
        (
            read_volume_plan,
            "org_unit,measure,year,annual",
            "1110,home_care_hours,2024,2e9",
            "0 and",
        ),
    ],
)
def test_forecast_readers_refuse_identity_numbers_and_bounds_without_echo(
    tmp_path: Path, reader: object, header: str, row: str, problem: str
) -> None:
    path = write(tmp_path, "in.csv", f"{header}\n{row}\n")
    args: tuple[object, ...] = (path,)
    if reader is read_budgets:
        args = (path, {})
    elif reader in (read_volumes, read_volume_plan):
        args = (path, ["home_care_hours"])
    with pytest.raises(UserError) as caught:
        reader(*args)  # type: ignore[operator]
    message = str(caught.value)
    assert message.startswith(f"{path}:")
    assert_no_number(message)
    expected = {
        "org_unit": "column 'org_unit' contains a Swedish personal identity number",
        "amount": "column 'amount_sek' contains a Swedish personal identity number",
        "between": "amount_sek must be between -10000000000000 and 10000000000000 kr",
        "name": "a column name contains a Swedish personal identity number",
        "0 and": "must be between 0 and 1000000000",
        "measure": "column 'measure' contains a Swedish personal identity number",
        "year": "column 'year' contains a Swedish personal identity number",
    }[problem]
    assert expected in message


def test_forecast_reader_turns_broken_csv_into_a_user_error(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", 'org_unit,category,period,amount_sek\n"1110,x\n')
    try:
        read_actuals(path)
    except UserError as err:
        assert str(err).startswith(f"{path}:")
