"""publisher/templates/atom.xsl: opened in a browser, atom.xml and its archives read as a page."""

from __future__ import annotations

import lxml.html
from lxml import etree
from support.feeds import published

from publisher import BUNDLED_TEMPLATES
from publisher.build import feed
from publisher.config import Settings

XSL = BUNDLED_TEMPLATES / feed.STYLESHEET
BASE = "https://news.example.org/"


def _page(data: bytes) -> lxml.html.HtmlElement:
    transform = etree.XSLT(etree.parse(str(XSL)))
    return lxml.html.fromstring(str(transform(etree.fromstring(data))))


def test_the_current_feed_reads_as_a_page_with_a_subscribe_note() -> None:
    settings = Settings()
    entries = [published(2, title="Second “story” of Erdoğan"), published(1)]
    page = _page(feed.atom_current(entries, settings, prev_archive=BASE + "archive/4.xml"))
    assert page.findtext(".//h1") == "Example News"
    assert "How to subscribe" in page.text_content()
    assert page.xpath("string(//section[@id='subscribe']//code)").strip() == BASE + "atom.xml"
    titles = [(a.text, a.get("href")) for a in page.xpath("//article//h3/a")]
    assert titles == [
        ("Second “story” of Erdoğan", BASE + "articles/article-2.html"),
        ("Article number 1", BASE + "articles/article-1.html"),
    ]
    assert "Story 1: something happened" in page.text_content()
    assert [a.get("href") for a in page.xpath("//nav/a")] == [BASE + "archive/4.xml"]
    assert page.get("lang") == "en"


def test_an_archive_reads_as_one_and_gives_the_current_feed_address() -> None:
    data = feed.atom_archive(
        [published(1)],
        Settings(),
        number=3,
        prev_archive=BASE + "archive/2.xml",
        next_archive=BASE + "archive/4.xml",
    )
    page = _page(data)
    text = page.text_content()
    assert "archive page of older articles" in text and "Archived articles" in text
    assert page.xpath("string(//section[@id='subscribe']//code)").strip() == BASE + "atom.xml"
    assert [a.get("href") for a in page.xpath("//nav/a")] == [BASE + "archive/4.xml", BASE + "archive/2.xml"]


def test_hostile_titles_stay_text_in_the_page() -> None:
    page = _page(
        feed.atom_current(
            [published(1, title="<script>alert(1)</script><b>x</b>")], Settings(), prev_archive=None
        )
    )
    assert page.xpath("//script") == [] and page.xpath("//article//b") == []
    assert page.xpath("string(//article//h3/a)") == "<script>alert(1)</script><b>x</b>"


def test_an_empty_feed_says_so() -> None:
    page = _page(feed.atom_current([], Settings(), prev_archive=None))
    assert "No articles yet." in page.text_content()
