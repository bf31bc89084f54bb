"""The digest as subscribers see it, in headless Chromium: the HTML part of a real message (sent to
the outbox by `publisher digest --send`) fits phones from 320 px, wraps a 300-character word,
has a real dark palette, and names its links by what they open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import NOW, Project
from tests.support.browser import chromium, contrast, mean_luminance, needs_chromium
from tests.support.digests import markdown
from tests.support.serving import outbox

pytestmark = needs_chromium

LATER = NOW + timedelta(minutes=1)
LONG_WORD = "Supercalifragilistic" * 15  # 300 characters, no break opportunity
STORIES = [
    ("Council approves the new tram line after a decade of debate", "2025-02-24"),
    ("Harbour reopens to fishing boats after the winter storms", "2025-02-25"),
    ("Library stays open late on Thursdays from March", "2025-02-26"),
    ("Rail works close the coast line for two weekends", "2025-02-27"),
    ("Café culture returns to the Île de la Cité", "2025-02-28"),
]
TEXT_SELECTORS = [".site a", ".period", ".title a", ".meta", ".summary", ".more a", ".footer", ".footer a"]


def sent_html(project: Project, stories: list[tuple[str, str]], body: str = "") -> str:
    """Build the stories, subscribe one reader, send the digest; the HTML part of the message."""
    for n, (title, date) in enumerate(stories):
        text = f"{body} Story {n} of the week." if body else f"What happened, in plain words. Story {n}."
        project.seed(f"s{n}.md", markdown(title, date, text))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "reader@example.org").code == 0
    sent = project.cli("digest", "--send", "--backfill", str(len(stories)), now=LATER)
    assert sent.code == 0, sent.err
    [message] = outbox(project.state)
    part = message.get_body(("html",))
    assert part is not None
    html: str = part.get_content()
    return html


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


def fits(page: Any, width: int, titles: list[str]) -> None:
    """Nothing wider than the viewport, and every article title wholly inside it."""
    page.set_viewport_size({"width": width, "height": 800})
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"{width} px: the page is {scroll} px wide"
    for title in titles:
        link = page.locator(".title a", has_text=title[:40])
        assert link.is_visible(), f"{width} px: {title!r} is not visible"
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner, (width, title, box)


def test_the_digest_fits_phones_and_desktops(project: Project, browser: Any) -> None:
    """320, 375 and 600 px: no horizontal scrolling, every title visible; the column is 600 px at
    most and fills a phone's width."""
    html = sent_html(project, STORIES)
    page = browser.new_page()
    page.set_content(html)
    for width in (320, 375, 600):
        fits(page, width, [title for title, _ in STORIES])
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.querySelector('.main').getBoundingClientRect().width") == 375
    page.set_viewport_size({"width": 1000, "height": 800})
    assert page.evaluate("document.querySelector('.main').getBoundingClientRect().width") == 600
    page.close()


def test_media_queries_and_dark_rules_survive_inlining(project: Project) -> None:
    """The design is inlined; the <style> element with media queries and [data-ogsc] rules is kept."""
    html = sent_html(project, STORIES[:1])
    assert "@media only screen and (max-width: 480px)" in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "[data-ogsc] .title a" in html and "[data-ogsb] .main" in html
    assert 'class="main"' in html and "max-width: 600px" in html
    assert 'width="600"' not in html.split("<!--[if mso]>", 1)[0]  # only Outlook's ghost table is fixed


def test_a_300_character_word_wraps_on_a_phone(project: Project, browser: Any) -> None:
    """A 300-character word in the summary (and a 180-character one in the title, which the digest
    keeps whole up to 200 characters) wraps inside the column."""
    title = f"Record {LONG_WORD[:180]}"
    project.configure("[ingest]\nsummary_max_chars = 1000\ntitle_max_chars = 300\n")
    html = sent_html(project, [*STORIES[:2], (title, "2025-02-28")], body=f"It reads {LONG_WORD} here.")
    assert LONG_WORD in html and title in html
    page = browser.new_page()
    page.set_content(html)
    for width in (375, 320):
        fits(page, width, [title, *[t for t, _ in STORIES[:2]]])
        rights = page.evaluate(
            "[...document.querySelectorAll('.summary')].map(e => e.getBoundingClientRect().right)"
        )
        assert len(rights) == 3 and max(rights) <= width, rights
    page.close()


def test_dark_scheme_gets_a_dark_readable_digest_and_light_stays_light(
    project: Project, browser: Any
) -> None:
    html = sent_html(project, STORIES)
    seen = {}
    for scheme in ("dark", "light"):
        page = browser.new_page(color_scheme=scheme, viewport={"width": 600, "height": 900})
        page.set_content(html)
        seen[scheme] = mean_luminance(browser, page.screenshot(full_page=True))
        ratios = contrast(page, TEXT_SELECTORS, ".main")
        assert set(ratios) == set(TEXT_SELECTORS)
        low = {sel: round(r, 2) for sel, r in ratios.items() if r < 4.5}
        assert not low, f"{scheme}: text below WCAG AA contrast: {low}"
        page.close()
    assert seen["dark"] < 0.05, seen  # a dark page, not white with a few dark words
    assert seen["light"] > 0.6, seen


def test_links_say_what_they_open(project: Project, browser: Any) -> None:
    """Titles are the links; each "Read more" has an accessible name with the title; no two links
    to different places share a name."""
    html = sent_html(project, STORIES)
    page = browser.new_page()
    page.set_content(html)
    links = page.evaluate(
        "[...document.querySelectorAll('a')]"
        ".map(a => [a.getAttribute('aria-label') || a.textContent.trim(), a.href])"
    )
    page.close()
    targets: dict[str, set[str]] = {}
    for name, href in links:
        targets.setdefault(name, set()).add(href)
    assert "Read more" not in targets
    assert {name: hrefs for name, hrefs in targets.items() if len(hrefs) > 1} == {}
    for title, _ in STORIES:
        assert f"Read more: {title}" in targets
        assert targets[title] == targets[f"Read more: {title}"]


def test_a_backfilled_digest_dates_the_articles_it_holds(project: Project) -> None:
    """--backfill: the dateline spans the articles' dates, not the time up to the send."""
    html = sent_html(project, STORIES[1:4])
    assert "25 February – 27 February 2025" in html
    assert "1 March 2025" not in html.split('class="title"', 1)[0]
    index = (project.feeds / "digests" / "index.html").read_text(encoding="utf-8")
    assert "25 February – 27 February 2025" in index


def test_each_text_takes_its_own_direction_and_the_byline_the_digests(project: Project, browser: Any) -> None:
    """An Arabic title reads right to left, an English one left to right, whoever wrote them; the
    date · author line keeps the digest's own direction, so the date leads in an English digest."""
    stories = [("افتتاح الميناء بعد العاصفة", "Maya Okafor"), ("Harbour reopens", "مريم حداد")]
    for n, (title, author) in enumerate(stories):
        project.seed(f"s{n}.md", markdown(title, f"2025-02-2{n}", f"Story {n} of the week.", author=author))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "reader@example.org").code == 0
    assert project.cli("digest", "--send", "--backfill", "2", now=LATER).code == 0
    [message] = outbox(project.state)
    part = message.get_body(("html",))
    assert part is not None
    page = browser.new_page()
    page.set_content(part.get_content())
    # Where a piece of text is drawn: the left edge of its first character.
    page.evaluate(
        """() => { window.leftOf = (element, text) => {
            const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
            for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                const at = node.data.indexOf(text);
                if (at >= 0) {
                    const range = document.createRange();
                    range.setStart(node, at);
                    range.setEnd(node, at + 1);
                    return range.getBoundingClientRect().left;
                }
            }
            throw new Error('not found: ' + text);
        }; }"""
    )
    found = [
        page.evaluate(
            """([title, author]) => {
                const cells = [...document.querySelectorAll('.article')];
                const cell = cells.find(c => c.textContent.includes(title));
                const meta = cell.querySelector('.meta');
                return {
                    title: getComputedStyle(cell.querySelector('.title')).direction,
                    meta: getComputedStyle(meta).direction,
                    dateLeads: leftOf(meta, '2025') < leftOf(meta, author.slice(0, 2)),
                };
            }""",
            [title, author],
        )
        for title, author in stories
    ]
    page.close()
    assert [f["title"] for f in found] == ["rtl", "ltr"], found
    assert all(f["meta"] == "ltr" and f["dateLeads"] for f in found), found
