"""Pages that look like a publication: a summary that never repeats the headline, Open Graph and
Twitter card tags, `dir="auto"` on every piece of writer's text (an Arabic title reads right to
left in Chromium), and the feed stylesheet showing dates as the pages do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree, html

from publisher import pipeline
from publisher.ingest.text import summary_after_title
from tests.conftest import NOW, Project

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FLAGS += ["--disable-component-update", "--disable-sync", "--no-first-run"]

LEAD = (
    "The central library will stay open until 9pm on Thursdays from next month, the council said on "
    "Tuesday after a survey of readers and staff."
)


@pytest.mark.parametrize(
    ("title", "summary", "shown"),
    [
        ("Bins go out on Mondays", "Bins go out on Mondays. Glass on Fridays.", "Glass on Fridays."),
        ("Is it safe?", "Is it safe? Engineers say yes.", "Engineers say yes."),
        (
            "The library will stay open late…",
            "The library will stay open late, the council said.",
            "…the council said.",
        ),
        ("One sentence only", "One sentence only.", ""),
        ("Harbour reopens", "Fishing boats are back.", "Fishing boats are back."),  # a written summary
        ("Rail", "Railways close for a week.", "Railways close for a week."),  # a word, not the title
    ],
)
def test_the_summary_starts_after_the_title(title: str, summary: str, shown: str) -> None:
    assert summary_after_title(title, summary) == shown


def _build(project: Project) -> None:
    project.seed("2025-02-19.txt", f"date 2025-02-19 {LEAD}\n\nStaff said the change answers a survey.\n")
    project.seed("2025-02-20.txt", "date 2025-02-20 Bins will be collected on Tuesday this week.\n")
    project.seed(
        "arabic.md",
        "---\ntitle: افتتاح الميناء من جديد\ndate: 2025-02-18\nauthor: ليلى حداد\ntags: [ميناء]\n"
        "summary: عادت قوارب الصيد إلى العمل.\n---\nعادت قوارب الصيد إلى العمل صباح الاثنين.\n",
    )
    pipeline.build(project.settings(), NOW)


def test_index_never_repeats_a_derived_title(project: Project) -> None:
    _build(project)
    doc = html.fromstring((project.feeds / "index.html").read_bytes())
    items = {
        li.findtext(".//h2/a"): [p.text_content() for p in li.xpath(".//p[@class='summary']")]
        for li in doc.xpath("//li[@class='article-item']")
    }
    title = "The central library will stay open until 9pm on Thursdays from next month…"
    assert items[title] == [
        "…the council said on Tuesday after a survey of readers and staff. "
        "Staff said the change answers a survey."
    ]
    assert items["Bins will be collected on Tuesday this week"] == []  # nothing more to say
    assert items["افتتاح الميناء من جديد"] == ["عادت قوارب الصيد إلى العمل."]


def _meta(doc: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for element in doc.xpath("//meta[@property or @name]"):
        key = element.get("property") or element.get("name")
        found.setdefault(key, []).append(element.get("content"))
    return found


def test_open_graph_and_twitter_cards(project: Project) -> None:
    """Shared links get a title, description and the real address (absolute), article and site."""
    _build(project)
    page = project.feeds / "articles" / "arabic.html"
    meta = _meta(html.fromstring(page.read_bytes()))
    assert meta["og:type"] == ["article"]
    assert meta["og:title"] == meta["twitter:title"] == ["افتتاح الميناء من جديد"]
    assert meta["og:description"] == meta["twitter:description"] == ["عادت قوارب الصيد إلى العمل."]
    assert meta["og:url"] == ["https://news.example.org/articles/arabic.html"]
    assert meta["og:site_name"] == ["Test Gazette"]
    assert meta["article:published_time"] == ["2025-02-18T00:00:00+01:00"]
    assert meta["article:tag"] == ["ميناء"]
    assert meta["twitter:card"] == ["summary"]
    index = _meta(html.fromstring((project.feeds / "index.html").read_bytes()))
    assert index["og:type"] == ["website"]
    assert index["og:url"] == ["https://news.example.org/"]
    # The derived title's page describes itself with the whole summary, lead sentence included.
    plain = next(p for p in (project.feeds / "articles").iterdir() if p.name.startswith("the-central"))
    assert _meta(html.fromstring(plain.read_bytes()))["og:description"][0].startswith("The central library")


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": 800, "height": 600})
        finally:
            browser.close()


def test_arabic_text_reads_right_to_left_in_an_english_page(project: Project, chromium: Any) -> None:
    _build(project)
    directions = """(selector) => Array.from(document.querySelectorAll(selector),
        e => getComputedStyle(e).direction)"""
    chromium.goto((project.feeds / "articles" / "arabic.html").as_uri())
    for selector in ("h1", ".author", ".tags li", ".article-body"):
        assert chromium.evaluate(directions, selector) == ["rtl"], selector
    assert chromium.evaluate("() => getComputedStyle(document.body).direction") == "ltr"
    chromium.goto((project.feeds / "index.html").as_uri())
    assert chromium.evaluate(directions, ".article-item-title") == ["ltr", "ltr", "rtl"]
    assert chromium.evaluate(directions, ".summary") == ["ltr", "rtl"]


def test_the_feed_stylesheet_shows_dates_as_the_pages_do(project: Project) -> None:
    """atom.xsl (XSLT 1.0, run here by libxslt as browsers do) turns RFC 3339 into '19 February 2025'."""
    _build(project)
    transform = etree.XSLT(etree.parse(str(project.feeds / "atom.xsl")))
    shown = transform(etree.parse(str(project.feeds / "atom.xml")))
    doc = html.fromstring(str(shown))
    assert [t.text for t in doc.xpath("//time")] == [
        "20 February 2025",
        "19 February 2025",
        "18 February 2025",
    ]
    assert doc.xpath("//time/@datetime")[0].startswith("2025-02-20T00:00:00")
    page_days = html.fromstring((project.feeds / "index.html").read_bytes()).xpath("//time/text()")
    assert [t.text for t in doc.xpath("//time")] == page_days
