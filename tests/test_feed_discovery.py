"""One article, one identity in every feed (correct by the standards, so a reader subscribed to
two feeds may merge them), and every page steers people to one feed: Atom first, and a line
saying that one feed is enough."""

from __future__ import annotations

import json

import lxml.html
from conftest import NOW, Project
from lxml import etree
from support.feeds import ATOM, parse_clean

from publisher import pipeline
from publisher.build import feed


def _build(project: Project) -> None:
    project.seed("a.txt", "date 2025-02-01 The harbour reopened after the storm.\n")
    project.seed("b.md", "---\ntitle: Budget agreed\ndate: 2025-02-02\n---\nThe council voted.\n")
    pipeline.build(project.settings(), NOW)


def test_every_feed_gives_an_article_the_same_id(project: Project) -> None:
    _build(project)
    feeds = project.feeds
    atom = [
        e.findtext(f"{ATOM}id")
        for e in etree.fromstring((feeds / feed.ATOM_FILE).read_bytes()).iter(f"{ATOM}entry")
    ]
    rss_doc = etree.fromstring((feeds / feed.RSS_FILE).read_bytes())
    guids = rss_doc.findall("channel/item/guid")
    assert [g.text for g in guids] == atom and len(atom) == 2
    assert {g.get("isPermaLink") for g in guids} == {"false"}
    assert [item["id"] for item in json.loads((feeds / feed.JSON_FILE).read_bytes())["items"]] == atom
    assert [e.id for e in parse_clean((feeds / feed.RSS_FILE).read_bytes()).entries] == atom


def test_every_page_advertises_atom_first_and_says_one_feed_is_enough(project: Project) -> None:
    _build(project)
    pages = [project.feeds / "index.html", *sorted((project.feeds / "articles").glob("*.html"))]
    assert len(pages) == 3
    for path in pages:
        doc = lxml.html.fromstring(path.read_bytes())
        alternates = doc.xpath("//head/link[@rel='alternate']")
        assert alternates[0].get("type") == "application/atom+xml", path.name
        assert alternates[0].get("href").endswith(feed.ATOM_FILE)
        assert {link.get("type") for link in alternates} == {
            "application/atom+xml",
            "application/rss+xml",
            "application/feed+json",
        }
        # In the body, the visible feed links: Atom first, and beside them the one-feed line.
        feed_links = [a for a in doc.xpath("//body//a[@href]") if a.get("href").endswith((".xml", ".json"))]
        assert feed_links and feed_links[0].get("href").endswith(feed.ATOM_FILE), path.name
        block = feed_links[0].getparent().getparent()
        assert "one feed is enough" in " ".join(block.text_content().split()), path.name
