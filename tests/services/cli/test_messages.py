"""What each command group says about bad input: English, naming what is wrong and where,
exit code 2, no traceback. Run in-process through ``services.cli.main`` as the console script
runs it (the error printer included)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.cli import main

# Words that only a Swedish message would have (the messages are checked for English).
SWEDISH_WORDS = re.compile(r"\b(finns|inte|ingen|inga|välj|ange|kan|för|är|och|skriv)\b", re.I)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    argv = sys.argv
    sys.argv = ["budgetvakt", *args]
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    code = exited.value.code
    return Run(code if isinstance(code, int) else 1, out.out, out.err)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No broker, no database, data in ``tmp_path``: nothing a bad-input case may reach."""
    for name in ("BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS", "BUDGETVAKT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BUDGETVAKT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")  # one line per message, as the assertions read it
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _actuals(directory: Path) -> Path:
    path = directory / "A.csv"
    path.write_text("org_unit,category,period,amount_sek\n1110,salaries,2024-01,1\n")
    return path


CASES = {
    # group: (arguments, expected message); {tmp} is the test's directory.
    "forecast": (
        ["forecast", "--actuals", "{tmp}/A.csv", "--as-of", "2024-13", "--out", "{tmp}/o.csv"],
        "--as-of '2024-13': expected YYYY-MM, e.g. 2024-08",
    ),
    "forecast (file)": (
        ["forecast", "--actuals", "{tmp}/bad.csv", "--as-of", "2024-08", "--out", "{tmp}/o.csv"],
        "bad.csv:3: bad period '2024-8', expected YYYY-MM, e.g. 2024-08",
    ),
    "backtest": (
        ["backtest", "--actuals", "{tmp}/A.csv", "--cutoffs", "4,13"],
        "--cutoffs '4,13': expected months 1..11",
    ),
    "broker": (["broker", "--port", "70000"], "Invalid value for '--port'"),
    "publish": (
        ["publish", "{tmp}/missing.csv", "--bootstrap-servers", "127.0.0.1:1"],
        "missing.csv: no such file",
    ),
    "scenario": (
        ["scenario", "--out", "{tmp}/events", "--format", "xml"],
        "--format must be jsonl or csv, not 'xml'",
    ),
    "demo": (
        ["demo", "--data-dir", "{tmp}/A.csv"],
        "--data-dir {tmp}/A.csv exists and is not a directory",
    ),
    "worker": (["worker"], "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set"),
    "migrate-keys": (["migrate-keys"], "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set"),
    "schemas": (
        ["schemas", "--out", "{tmp}/A.csv"],
        "{tmp}/A.csv: cannot create the directory",
    ),
    "notifier": (["notifier"], "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set"),
    "unmapped": (
        ["unmapped", "--worker", "http://127.0.0.1:1"],
        "cannot read http://127.0.0.1:1/unmapped (is the worker running there?)",
    ),
    "snapshot": (
        ["snapshot", "--period", "aug"],
        "--period 'aug': expected YYYY-MM, e.g. 2024-08",
    ),
    "db": (
        ["db", "upgrade"],
        "BUDGETVAKT_DATABASE_URL is not a valid database URL",
    ),
    "report": (
        ["report", "--period", "2024-08", "--format", "docx"],
        "--format 'docx': unknown format docx; choose all, xlsx, html, csv, pdf",
    ),
    "accuracy": (["accuracy", "--year", "1999"], "Invalid value for '--year'"),
    "web": (["web", "--port", "0"], "is empty (no tables), but this code needs revision"),
    "users": (
        ["users", "add", "eva", "--role", "chef", "--node", "AO", "--password-stdin"],
        "--role 'chef': choose one of enhetschef, avdelningschef, controller, forvaltningschef",
    ),
}


@pytest.mark.parametrize("group", list(CASES))
def test_bad_input_gets_an_english_message_naming_it(
    group: str,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tmp = clean_env
    _actuals(tmp)
    (tmp / "bad.csv").write_text(
        "org_unit,category,period,amount_sek\n1110,salaries,2024-01,1\n1110,salaries,2024-8,2\n"
    )
    if group == "db":
        monkeypatch.setenv("BUDGETVAKT_DATABASE_URL", "not a url")
    args, expected = CASES[group]
    result = run_main([a.replace("{tmp}", str(tmp)) for a in args], capsys)
    assert result.code == 2, result
    message = " ".join(result.stderr.split())  # rich may wrap a long line
    assert expected.replace("{tmp}", str(tmp)) in message, result.stderr
    assert "Traceback" not in result.stderr
    assert SWEDISH_WORDS.search(message) is None, message


def test_every_command_group_has_a_case() -> None:
    import typer.main

    from services.cli import app

    command = typer.main.get_command(app)
    assert isinstance(command, typer.main.TyperGroup)
    assert set(command.commands) == {name.split()[0] for name in CASES}
