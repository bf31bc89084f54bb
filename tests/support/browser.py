"""Debian's headless Chromium under Playwright, for tests that look at pages as readers do: the
launch flags, a skip when Chromium or Playwright is missing, and measurements taken in the page."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium; .ci/run installs it)",
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A Chromium browser (Playwright's sync API), closed afterwards."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


# Mean relative luminance (0 black … 1 white) of a PNG, decoded by the browser itself.
_LUMINANCE = """async (b64) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + b64;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.width; canvas.height = img.height;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, img.width, img.height).data;
  const lin = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  let sum = 0;
  for (let i = 0; i < d.length; i += 4) {
    sum += 0.2126 * lin(d[i]) + 0.7152 * lin(d[i + 1]) + 0.0722 * lin(d[i + 2]);
  }
  return sum / (d.length / 4);
}"""


def mean_luminance(browser: Any, png: bytes) -> float:
    """The mean relative luminance of a screenshot (measured in a fresh blank page)."""
    page = browser.new_page()
    try:
        return float(page.evaluate(_LUMINANCE, base64.b64encode(png).decode("ascii")))
    finally:
        page.close()


# WCAG 2 contrast ratio of each selector's text colour against the given background element.
_CONTRAST = """([selectors, backgroundSelector]) => {
  const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lin = (c) => { c /= 255; return c <= 0.04045 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
  const lum = ([r, g, b]) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  const bg = lum(rgb(getComputedStyle(document.querySelector(backgroundSelector)).backgroundColor));
  const out = {};
  for (const sel of selectors) {
    const el = document.querySelector(sel);
    if (!el) continue;
    const fg = lum(rgb(getComputedStyle(el).color));
    out[sel] = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  }
  return out;
}"""


def contrast(page: Any, selectors: list[str], background: str) -> dict[str, float]:
    """Selector → contrast ratio of its text against `background`'s background colour."""
    found: dict[str, float] = page.evaluate(_CONTRAST, [selectors, background])
    return found
