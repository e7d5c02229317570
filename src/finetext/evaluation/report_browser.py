"""Open a report page in headless Chromium: what the browser logged, which images failed, a screenshot.

For the tests and bench/report_screenshot.py. It drives Debian's `chromium` package through playwright (the
`dev` extra); playwright's own browser downloads are never used, and the page is opened offline from a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BROKEN_IMAGES = "images => images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt || i.src)"


@dataclass
class PageCheck:
    """What Chromium saw while loading a page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """Every URL the page requested other than itself and data: URIs (a self-contained page has none)."""
    broken_images: list[str] = field(default_factory=list)
    """The alt text of each <img> that did not load (not complete, or naturalWidth 0)."""
    images: int = 0
    headings: list[str] = field(default_factory=list)
    """The text of every <h1> and <h2>, in page order."""


def check_page(page_file: Path, screenshot: Path | None = None, width: int = 1200, height: int | None = None,
               scale: float = 1.0) -> PageCheck:
    """Load page_file in headless Chromium and report what happened; optionally save a screenshot of the
    whole page (or of its top ``height`` CSS pixels) at ``width`` CSS pixels and device scale ``scale``."""
    from playwright.sync_api import sync_playwright

    check = PageCheck()
    url = page_file.resolve().as_uri()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900}, device_scale_factor=scale)
            page.on("console", lambda message: check.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: check.page_errors.append(str(error)))
            page.on("request", lambda request: check.requests.append(request.url)
                    if request.url != url and not request.url.startswith("data:") else None)
            page.goto(url, wait_until="load")
            check.images = page.locator("img").count()
            check.broken_images = page.eval_on_selector_all("img", BROKEN_IMAGES)
            check.headings = [text.strip() for text in page.locator("h1, h2").all_inner_texts()]
            if screenshot is not None:
                save_screenshot(page, screenshot, width, height)
        finally:
            browser.close()
    return check


def save_screenshot(page, path: Path, width: int, height: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if height is None:
        page.screenshot(path=str(path), full_page=True)
    else:
        page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
