"""`budgetvakt report --format pdf`: the delårsrapport printed by a real headless Chromium, with
the follow-up written through services.followup.write, read back with pypdf."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from services.followup.write import add_measure, approve, set_adjustment, set_comment
from services.snapshots.store import load_snapshot, make_engine
from tests.services.reports.fixtures import budgetvakt_cli

PERIOD = "2024-08"
COMMENT = "Vikarier och övertid över budget: hög sjukfrånvaro på boendena."
MEASURE = "Samordnad bemanningsplanering"


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "BUDGETVAKT_DATABASE_URL": url,
        "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
        "BUDGETVAKT_LOG_FORMAT": "json",
    }


def _follow_up(url: str) -> float:
    """The August follow-up as the demo's people leave it; returns Ekbacken's adjusted figure."""
    engine = make_engine(url)
    try:
        snapshot = load_snapshot(engine, PERIOD)
        assert snapshot is not None
        ekbacken = snapshot.forecast.get("1210", "total")
        assert ekbacken is not None
        adjusted = ekbacken.full_year - 2_000_000
        set_comment(engine, period=PERIOD, org_unit="AO", text=COMMENT, by="anna")
        add_measure(
            engine,
            period=PERIOD,
            org_unit="AO",
            text=MEASURE,
            responsible="Anna Avdelningschef",
            amount_sek=6_000_000,
            status="beslutad",
            decided="2024-04-23",
            realised_sek=1_500_000,
            by="anna",
        )
        set_adjustment(
            engine,
            period=PERIOD,
            org_unit="1210",
            full_year_sek=adjusted,
            reason="En avdelning stänger i oktober.",
            by="anna",
        )
        for unit in ("AO", "LSS", "IFO", "VON"):
            approve(engine, period=PERIOD, org_unit=unit, by="controller.eva")
    finally:
        engine.dispose()
    return adjusted


def _pdf_text(path: Path) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(path.read_bytes()))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return len(reader.pages), " ".join(text.split())


@pytest.mark.integration
def test_pdf_carries_the_comments_atgarder_and_the_approval(
    tmp_path: Path, report_db_url: str
) -> None:
    _follow_up(report_db_url)
    result = budgetvakt_cli(
        "report",
        "--period",
        PERIOD,
        "--format",
        "pdf,xlsx",
        "--out",
        "rapport",
        env=_env(report_db_url, tmp_path),
        cwd=tmp_path,
        timeout_s=180,
    )
    assert result.returncode == 0, result.stderr
    pdf = tmp_path / "rapport" / "delarsrapport-2024-08.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    pages, text = _pdf_text(pdf)
    assert pages >= 5
    assert "Delårsrapport 2024" in text
    assert "Godkänd av controller.eva" in text
    assert COMMENT in text
    assert MEASURE in text
    assert "En avdelning stänger i oktober." in text
    assert "Teckenförklaring" in text and "på grund av avrundning" in text
    assert "Daglig verksamhet" in text
    # The approved version is version 1: the cover of the workbook says so too.
    wb = load_workbook(tmp_path / "rapport" / "delarsrapport-2024-08.xlsx")
    cover = {r[0].value: r[1].value for r in wb["Försättsblad"].iter_rows(min_row=4, max_col=2)}
    assert str(cover["Status"]).startswith("Godkänd av controller.eva")
    assert cover["Snapshot-version"] == 1


@pytest.mark.integration
def test_a_change_after_approval_keeps_the_report_on_the_approved_version(
    tmp_path: Path, report_db_url: str
) -> None:
    _follow_up(report_db_url)
    engine = make_engine(report_db_url)
    try:
        # A new comment on an approved avdelning makes version 2, which nobody approved.
        set_comment(engine, period=PERIOD, org_unit="AO", text="Ny analys.", by="anna")
        latest = load_snapshot(engine, PERIOD)
        assert latest is not None and latest.version == 2
    finally:
        engine.dispose()
    result = budgetvakt_cli(
        "report",
        "--period",
        PERIOD,
        "--format",
        "pdf",
        "--out",
        "rapport",
        env=_env(report_db_url, tmp_path),
        cwd=tmp_path,
        timeout_s=180,
    )
    assert result.returncode == 0, result.stderr
    _, text = _pdf_text(tmp_path / "rapport" / "delarsrapport-2024-08.pdf")
    assert "Godkänd av controller.eva" in text
    assert "en senare version (2)" in text
    # The comment as it was approved, not the later one.
    assert COMMENT in text and "Ny analys." not in text
