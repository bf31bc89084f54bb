"""An article's picture in the digest a subscriber gets (issue 13 point 14): its first image (the
front matter's `image`, else the first in the body) above the title, at its absolute URL, with the
writer's alt text, no wider than the column; a picture whose file is not in feeds/ is left out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from lxml import html

from tests.conftest import NOW, Project
from tests.support.browser import chromium, needs_chromium
from tests.support.serving import outbox
from tests.test_images import png

LATER = NOW + timedelta(minutes=1)
SITE = "https://news.example.org/"


def send(project: Project, articles: int) -> tuple[Any, str]:
    """Build, subscribe one reader, send the digest: (the HTML part as a tree, the text part)."""
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "reader@example.org").code == 0
    sent = project.cli("digest", "--send", "--backfill", str(articles), now=LATER)
    assert sent.code == 0, sent.err
    [message] = outbox(project.state)
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    return html.fromstring(html_part.get_content()), text_part.get_content()


def name_of(data: bytes) -> str:
    return f"images/{hashlib.sha256(data).hexdigest()[:20]}.png"


def test_the_first_picture_is_shown_absolute_with_its_alt_and_no_wider_than_the_column(
    project: Project,
) -> None:
    wide, small = png(1200, 600), png(200, 100, (10, 10, 200))
    project.seed("wide.png", wide)
    project.seed("small.png", small)
    project.seed(
        "harbour.md",
        "---\ntitle: Harbour reopens\ndate: 2025-02-17\n---\nBoats are out.\n\n![Boats at dawn](wide.png)\n",
    )
    project.seed(
        "ferry.md",
        "---\ntitle: Ferry timetable\ndate: 2025-02-18\nimage: small.png\n---\n"
        "The ferry runs hourly.\n\n![The ferry](small.png)\n",
    )
    project.seed("plain.md", "---\ntitle: Council meets\ndate: 2025-02-19\n---\nNo picture here.\n")
    tree, text = send(project, 3)
    pictures = {img.get("src"): dict(img.attrib) for img in tree.xpath("//td[@class='article']//img")}
    assert set(pictures) == {SITE + name_of(wide), SITE + name_of(small)}
    big = pictures[SITE + name_of(wide)]
    assert (big["alt"], big["width"], big["height"]) == ("Boats at dawn", "536", "268")
    little = pictures[SITE + name_of(small)]
    assert (little["alt"], little["width"], little["height"]) == ("The ferry", "200", "100")  # never enlarged
    assert "max-width: 100%" in big["style"] and "height: auto" in big["style"]
    # Above its own article's title, and the article without a picture has none.
    cells = {
        cell.xpath(".//p[@class='title']//a")[0].text: cell for cell in tree.xpath("//td[@class='article']")
    }
    assert [p.get("class") for p in cells["Harbour reopens"].xpath("./p")][:2] == ["picture", "title"]
    assert cells["Council meets"].xpath(".//img") == []
    assert "images/" not in text  # the text part has no pictures


def test_a_picture_that_is_not_in_feeds_is_left_out_with_a_warning(project: Project) -> None:
    picture = png(300, 150)
    project.seed("harbour.png", picture)
    project.seed(
        "harbour.md", "---\ntitle: Harbour reopens\ndate: 2025-02-17\n---\nBoats.\n\n![Boats](harbour.png)\n"
    )
    assert project.cli("build").code == 0
    (project.feeds / name_of(picture)).unlink()  # removed by hand after the build
    assert project.cli("subscribers", "add", "reader@example.org").code == 0
    sent = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert sent.code == 0, sent.err
    assert f"harbour.md: picture {name_of(picture)} left out" in sent.err
    [message] = outbox(project.state)
    part = message.get_body(("html",))
    assert part is not None
    assert html.fromstring(part.get_content()).xpath("//td[@class='article']//img") == []


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


@needs_chromium
def test_a_wide_picture_fits_a_phone(project: Project, browser: Any) -> None:
    """The 536-pixel width attribute yields to max-width on a 320 px screen (the image itself is on
    the real host, so the box is what is measured)."""
    picture = png(1200, 600)
    project.seed("wide.png", picture)
    project.seed("a.md", "---\ntitle: Harbour reopens\ndate: 2025-02-17\n---\nBoats.\n\n![Boats](wide.png)\n")
    tree, _ = send(project, 1)
    page = browser.new_page()
    page.set_content(html.tostring(tree, encoding="unicode"))
    page.set_viewport_size({"width": 320, "height": 800})
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    box = page.locator(".picture-img").bounding_box()
    page.close()
    assert scroll <= inner and box is not None and box["x"] >= 0 and box["x"] + box["width"] <= inner
