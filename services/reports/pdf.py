"""The delårsrapport as PDF: the HTML page printed by a headless Chromium.

Chromium is Debian's package (``apt-get install chromium``, which ``scripts/test-deps.sh``
installs for the tests too). The HTML is written to a private temporary directory, printed with
``--print-to-pdf`` (A4 landscape from the page's ``@page`` rule, no header or footer lines) and
the bytes read back; the directory, the browser profile with it, is removed afterwards. A print
that fails or takes longer than ``timeout_s`` is a :class:`UserError` naming what happened.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from core.errors import UserError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
PRINT_TIMEOUT_S = 120.0
PDF_MAGIC = b"%PDF-"


def find_chromium() -> str | None:
    """The Chromium binary on PATH (or Debian's /usr/bin/chromium), None without one."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    debian = Path("/usr/bin/chromium")
    return str(debian) if debian.is_file() else None


def chromium_command(binary: str, profile: Path, *args: str) -> list[str]:
    return [
        binary,
        "--headless",
        "--no-sandbox",  # the report is our own file; root in containers needs it
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]


def html_to_pdf(html: str, *, timeout_s: float = PRINT_TIMEOUT_S) -> bytes:
    """Print ``html`` to PDF with headless Chromium (see module doc)."""
    binary = find_chromium()
    if binary is None:
        raise UserError(
            "--format pdf needs Chromium to print the HTML report: install it (Debian: "
            "`apt-get install chromium`) or choose --format xlsx,html,csv"
        )
    with tempfile.TemporaryDirectory(prefix="budgetvakt-pdf-") as tmp:
        work = Path(tmp)
        page = work / "rapport.html"
        target = work / "rapport.pdf"
        page.write_text(html, encoding="utf-8")
        command = chromium_command(
            binary,
            work / "profile",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            page.as_uri(),
        )
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise UserError(
                f"Chromium did not print the PDF within {timeout_s:.0f} s ({binary})"
            ) from None
        content = target.read_bytes() if target.exists() else b""
        if done.returncode != 0 or not content.startswith(PDF_MAGIC):
            tail = (done.stderr or "").strip().splitlines()[-3:]
            raise UserError(
                f"Chromium could not print the PDF (exit status {done.returncode}): "
                + (" / ".join(tail) or "no output")
            )
        return content
