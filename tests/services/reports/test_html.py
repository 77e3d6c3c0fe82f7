"""The HTML report in a real headless Chromium, and the charts it embeds."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forecasts.live import TOTAL
from services.reports.charts import (
    COLOUR_BAND,
    cumulative_band,
    monthly_band,
    render_chart,
)
from services.reports.html import format_cell, nbsp, render_html
from services.reports.tables import Report
from tests.services.reports.fixtures import ReportCase, run_chromium

# Records, after the page has loaded, which images the browser decoded and at what size.
IMAGE_PROBE = """
<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    const size = img.complete ? img.naturalWidth + "x" + img.naturalHeight : "0x0";
    img.setAttribute("data-natural", size);
  }
});
</script>
"""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables = 0
        self.captions: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.sections: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self.tables += 1
        elif tag == "caption":
            self._in_caption = True
            self.captions.append("")
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "section" and attributes.get("id"):
            self.sections.append(str(attributes["id"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._in_caption = False

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.captions[-1] += data


def _report_file(tmp_path: Path, august_files: dict[str, bytes]) -> Path:
    path = tmp_path / "delarsrapport-2024-08.html"
    path.write_bytes(august_files["delarsrapport-2024-08.html"])
    return path


@pytest.mark.integration
def test_chromium_renders_the_tables_and_decodes_every_chart(
    tmp_path: Path, august_files: dict[str, bytes], august_report: Report
) -> None:
    html = august_files["delarsrapport-2024-08.html"].decode("utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", IMAGE_PROBE + "</body>"), encoding="utf-8")
    result = run_chromium(
        "--virtual-time-budget=5000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Collector()
    dom.feed(result.stdout)
    assert dom.tables == len(august_report.tables) == 9
    assert [c.strip() for c in dom.captions] == [nbsp(t.caption) for t in august_report.tables]
    assert dom.sections == [
        "sammanfattning",
        "teckenforklaring",
        "analys",
        *(t.slug for t in august_report.tables),
        "prognosmetod",
        "diagram",
    ]
    assert len(dom.images) == len(august_report.charts) == 4
    for image, chart in zip(dom.images, august_report.charts, strict=True):
        assert str(image["src"]).startswith("data:image/png;base64,")
        assert image["alt"] == chart.title
        # Decoded by the browser at the PNG's own size: the data URI is a loadable image.
        assert image["data-natural"] == f"{chart.width_px}x{chart.height_px}"
    assert "Prognos efter augusti 2024" in result.stdout
    # The nämnd's budget, Swedish format, with a space that never breaks.
    assert "1&nbsp;051,5" in result.stdout  # the browser serialises U+00A0 as &nbsp;


def _band_pixels(tmp_path: Path, html: Path, name: str) -> np.ndarray:
    """Screenshot ``html`` with a window taller than the page; where the chart bands are."""
    shot = tmp_path / f"{name}.png"
    result = run_chromium(
        "--window-size=1280,10000",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        html.as_uri(),
        profile=tmp_path / f"profile-{name}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file(), result.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape == (10000, 1280, 3)
    assert (pixels < 128).all(axis=2).any(axis=0).sum() > 600  # text across the page
    # The charts' 80 % bands (COLOUR_BAND at alpha 0.6 on white) are large areas of a colour
    # nothing else on the page has.
    band = 0.6 * np.array([int(COLOUR_BAND[i : i + 2], 16) for i in (1, 3, 5)]) + 0.4 * 255
    is_band: np.ndarray = (np.abs(pixels - band) <= 6).all(axis=2)
    return is_band


@pytest.mark.integration
def test_chromium_screenshot_shows_the_charts(
    tmp_path: Path, august_files: dict[str, bytes], august_report: Report
) -> None:
    is_band = _band_pixels(tmp_path, _report_file(tmp_path, august_files), "report")
    assert is_band.sum() > 20_000
    assert np.flatnonzero(is_band.any(axis=1)).min() > 2000  # below the tables
    # The same report without charts has none of that colour: the check sees the images.
    without = tmp_path / "without-charts.html"
    without.write_text(render_html(replace(august_report, charts=())), encoding="utf-8")
    assert _band_pixels(tmp_path, without, "without").sum() == 0


def test_html_escapes_text_and_formats_numbers_the_swedish_way(august_report: Report) -> None:
    html = render_html(august_report)
    assert '<html lang="sv">' in html
    # U+2212 minus, decimal comma, non-breaking spaces inside numbers and before units.
    assert "1\u00a0051,5" in html and "−43,3" in html
    assert "1 051,5" not in html
    assert 'class="num neg">−43,3<' in html
    assert "(−4,1\u00a0%)" in html and "−4,1 %" not in html
    assert html.count("<caption>") == len(august_report.tables)
    # The legend states the sign convention and the rounding.
    assert "Avvikelse = budget − prognos" in html
    assert "på grund av avrundning" in html
    hostile = replace(august_report, namnd_name="<script>alert(1)</script>", charts=())
    rendered = render_html(hostile)
    assert "<script>alert(1)</script>" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered


def test_format_cell_signs_and_colours() -> None:
    assert format_cell("deviation", -43.14) == format_cell("deviation", -43.1)
    assert format_cell("deviation", -43.14).text == "−43,1"
    assert format_cell("deviation", -43.14).css == "num neg"
    assert format_cell("deviation", -0.04).css == "num"  # rounds to 0,0: not an underskott
    # One convention: föregående − prognos, a higher forecast cost is negative and red.
    assert format_cell("change", -21.7).text == "−21,7"
    assert format_cell("change", -21.7).css == "num neg"
    assert format_cell("change", 0.5).text == "+0,5"
    assert format_cell("change", 0.5).css == "num"
    assert format_cell("volume_change", -4052.0).css == "num neg"  # more hours than planned
    assert format_cell("pct_level", 8.3).css == "num"
    assert format_cell("money", 1051.5).text == "1 051,5"
    assert format_cell("volume", 180000.0).text == "180 000"
    assert format_cell("money", None).text == "–"


def test_charts_are_deterministic_pngs(report_case: ReportCase) -> None:
    node = report_case.snapshots[8].forecast.get("AO", TOTAL)
    assert node is not None
    first = render_chart(node, "Äldreomsorg")
    assert first == render_chart(node, "Äldreomsorg")
    assert first.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"matplotlib" not in first.lower()  # no version metadata
    assert Image.open(io.BytesIO(first)).size == (1000, 380)


def test_chart_bands_end_at_the_full_year_interval(report_case: ReportCase) -> None:
    node = report_case.snapshots[8].forecast.get("VON", TOTAL)
    assert node is not None
    band = cumulative_band(node)
    assert len(band) == 12 - 8 + 1
    assert band[0] == (node.actual_ytd, node.actual_ytd, node.actual_ytd)
    value, low, high = band[-1]
    assert value == pytest.approx(node.full_year)
    assert (low, high) == (pytest.approx(node.low), pytest.approx(node.high))
    monthly = monthly_band(node)
    assert all(lo < v < hi for (lo, hi), v in zip(monthly, node.path, strict=True))
    december = report_case.snapshots[12].forecast.get("VON", TOTAL)
    assert december is not None and monthly_band(december) == []
    assert re.match(rb"\x89PNG", render_chart(december, "December"))
