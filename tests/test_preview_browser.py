"""Local preview in a real browser (Debian's Chromium through Playwright): with the Quickstart's
`base_url` (the real site, https://news.example.org/), the pages in feeds/ are styled and every
link into the site resolves both when `publisher serve` serves them on 127.0.0.1 and when
index.html is opened from disk. Only the canonical link names the real host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from tests.conftest import NOW, Project
from tests.support.serving import serve_process
from tests.test_images import png

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
REAL = "https://news.example.org/"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")

LINKS = """() => [
  ...Array.from(document.querySelectorAll('a[href]'), a => ['a', a.getAttribute('rel') || '', a.href]),
  ...Array.from(document.querySelectorAll('link[href]'), l => ['link', l.rel, l.href]),
  ...Array.from(document.querySelectorAll('img[src]'), i => ['img', '', i.src]),
  ...Array.from(document.querySelectorAll('form[action]'), f => ['form', '', f.action]),
]"""


@pytest.fixture
def chromium() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": 900, "height": 800})
        finally:
            browser.close()


def _site(project: Project) -> None:
    project.seed(
        "2025-02-17_harbour.md",
        "---\ntitle: Harbour reopens\ndate: 2025-02-17\n---\nThe harbour is open. See [the rail works]"
        "(/articles/rail-works.html#detour) and [the front page](/).\n\n![Boats at dawn](harbour.png)\n",
    )
    project.seed("harbour.png", png(300, 150))
    project.seed(
        "2025-02-18_rail-works.md",
        "---\ntitle: Rail works\ndate: 2025-02-18\nslug: rail-works\n---\nNo trains.\n",
    )
    project.seed("2025-02-19.txt", "date 2025-02-19 The library will stay open late on Thursdays.\n")
    assert project.cli("build").code == 0


def _styled(page: Any) -> bool:
    """style.css was loaded and applied (the body has its max-width, not the browser's 'none')."""
    return bool(page.evaluate("() => getComputedStyle(document.body).maxWidth !== 'none'"))


def _visit(page: Any, url: str, origin: str, resolves: Any) -> list[str]:
    """Open `url`; check the stylesheet and every link into the site; return the article links."""
    response = page.goto(url)
    assert response is None or response.ok, url
    assert _styled(page), f"unstyled: {url}"
    drawn = "() => Array.from(document.images, i => i.complete && i.naturalWidth > 0)"
    assert all(page.evaluate(drawn)), f"an image is not shown on {url}"
    articles = []
    for kind, rel, target in page.evaluate(LINKS):
        if kind == "link" and rel == "canonical":
            assert target.startswith(REAL), target  # names the real site on purpose
            continue
        assert target.startswith(origin), f"{kind} {rel} on {url} leaves the preview: {target}"
        if kind == "form" and origin.startswith("file:"):
            continue  # a form cannot post to a file; from disk it is only shown
        assert resolves(urldefrag(target).url, kind), f"{kind} {rel} on {url} does not resolve: {target}"
        if "/articles/" in target:
            articles.append(urldefrag(target).url)
    return articles


def _walk(page: Any, start: str, origin: str, resolves: Any) -> None:
    articles = _visit(page, start, origin, resolves)
    assert len(set(articles)) == 3
    for article in sorted(set(articles)):
        _visit(page, article, origin, resolves)


def test_served_on_127_0_0_1(project: Project, tmp_path: Path, chromium: Any) -> None:
    _site(project)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as base:
        origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}/"

        def resolves(url: str, kind: str) -> bool:
            return bool(chromium.request.get(url).ok)

        _walk(chromium, base, origin, resolves)


def test_opened_from_disk(project: Project, chromium: Any) -> None:
    _site(project)
    index = project.feeds / "index.html"
    origin = project.feeds.as_uri() + "/"

    def resolves(url: str, kind: str) -> bool:
        return Path(unquote(urlsplit(url).path)).is_file()

    _walk(chromium, index.as_uri(), origin, resolves)
