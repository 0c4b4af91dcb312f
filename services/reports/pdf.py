"""HTML to PDF with a real browser: Chromium's own print (`--headless --print-to-pdf`).

The reports are self-contained pages (inline CSS and SVG, nothing fetched), so printing one is
what a sergeant's browser would do: page size and margins come from the page's `@page` rule
(A4 for the briefing pack). Chromium runs as a child process on a copy of the page in a private
temporary folder, with none of Google's network services and a throwaway profile, so two prints
never share state (a page that must run no script says so in its own Content Security Policy:
Chromium's switch that turns scripts off also stops it printing). No Python dependency: Debian's
`chromium` (what the browser tests use) or any Chrome on PATH.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from services.errors import Unavailable

#: Commands tried in order: Debian's package, other distributions' names, Google's build.
CHROMIUM_COMMANDS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: A one-page report prints in a second or two; a browser still busy after this is stuck.
PRINT_TIMEOUT_S = 60.0
#: Browsers printing at once in one process; more requests are refused (503, retry), so a burst of
#: PDF requests cannot start a browser each and starve the service.
MAX_PRINTS = 2
_printing = asyncio.Semaphore(MAX_PRINTS)
#: Chromium's flags: headless print, no sandbox (containers and root cannot have one; the page is
#: our own, every text escaped), no GPU, and none of Google's background services.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-pdf-header-footer",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
)


def find_chromium() -> str:
    """The Chromium to print with; Unavailable when none is installed."""
    for name in CHROMIUM_COMMANDS:
        found = shutil.which(name)
        if found is not None:
            return found
    raise Unavailable(f"printing to PDF needs Chromium: install one of {', '.join(CHROMIUM_COMMANDS)}")


async def html_to_pdf(html: bytes, timeout_s: float = PRINT_TIMEOUT_S) -> bytes:
    """The page printed to PDF by Chromium; Unavailable if it is missing, busy, fails or hangs."""
    chromium = find_chromium()
    if _printing.locked():
        raise Unavailable(f"{MAX_PRINTS} reports are being printed already: retry in a few seconds")
    async with _printing:
        return await _print(chromium, html, timeout_s)


async def _print(chromium: str, html: bytes, timeout_s: float) -> bytes:
    with tempfile.TemporaryDirectory(prefix="hotspots-pdf-") as tmp:
        folder = Path(tmp)
        page, out = folder / "page.html", folder / "page.pdf"
        page.write_bytes(html)
        proc = await asyncio.create_subprocess_exec(
            chromium, *FLAGS, f"--user-data-dir={folder / 'profile'}", f"--print-to-pdf={out}", page.as_uri(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            raise Unavailable(f"Chromium did not print the page within {timeout_s:g} s") from None
        finally:  # timed out, or the request was cancelled: no browser is left behind
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            lines = err.decode("utf-8", "replace").strip().splitlines()
            why = lines[-1] if lines else f"exit status {proc.returncode}"
            raise Unavailable(f"Chromium could not print the page: {why}")
        return out.read_bytes()
