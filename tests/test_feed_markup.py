"""No feed carries live markup the writer did not intend, and every text construct says what it
holds: RSS titles and descriptions are safe HTML, Atom text that looks like markup is declared
`type="html"` and escaped (the W3C feed validator's rules, checked here offline)."""

from __future__ import annotations

import html
import re
from typing import Any

import lxml.html
from conftest import NOW, Project
from lxml import etree
from support.feeds import ATOM, assert_atom_valid, parse_clean, published

from publisher import pipeline
from publisher.build import feed
from publisher.config import Settings

HOSTILE_TEXT = (
    "date 2025-02-03 Harbour <img src=x onerror=alert(1)> news, "
    '<a href="javascript:alert(2)">click</a> <script>alert(3)</script> and Tom &amp; Jerry.\n\n'
    "Second paragraph <b>bold?</b>\n"
)
HOSTILE_MD = """\
---
title: "<script>alert(4)</script> Council <i>votes</i> & more"
date: 2025-02-04T10:00:00+00:00
summary: '<img src=y onerror="alert(5)"> <a href="javascript:alert(6)">x</a> &lt;tag&gt;'
---
Body <img src="z" onerror="alert(7)"> and <a href="javascript:alert(8)">a link</a>.
"""
PLAIN_MD = """\
---
title: Tom & Jerry at the harbour
date: 2025-02-05T10:00:00+00:00
summary: Boats, ferries & more
---
Plain text.
"""


def _built(project: Project) -> Settings:
    project.seed("hostile.txt", HOSTILE_TEXT)
    project.seed("hostile.md", HOSTILE_MD)
    project.seed("plain.md", PLAIN_MD)
    settings = project.settings()
    pipeline.build(settings, NOW)
    return settings


def _elements(fragment: str) -> list[Any]:
    """The elements HTML parsing makes of `fragment` (a browser's or a feed reader's view)."""
    if not fragment.strip():
        return []
    wrapper = lxml.html.fragment_fromstring(fragment, create_parent="div")
    return list(wrapper.iter())[1:]


def _dangerous(fragment: str) -> list[str]:
    """Live script, event handlers or javascript: URLs in `fragment`, parsed as HTML."""
    found = []
    for node in _elements(fragment):
        if node.tag in ("script", "iframe", "object", "embed"):
            found.append(node.tag)
        for name, value in node.attrib.items():
            if name.lower().startswith("on") or "javascript:" in value.lower().replace(" ", ""):
                found.append(f"{node.tag}@{name}")
    return found


def test_rss_titles_and_descriptions_hold_no_element_the_text_did_not_intend(project: Project) -> None:
    settings = _built(project)
    rss = (settings.feeds_dir / feed.RSS_FILE).read_bytes()
    atom = etree.fromstring((settings.feeds_dir / feed.ATOM_FILE).read_bytes())
    # What the writer meant: Atom's plain titles and summaries (text, or escaped HTML).
    meant = {}
    for entry in atom.iterfind(f"{ATOM}entry"):
        texts = []
        for name in ("title", "summary"):
            node = entry.find(f"{ATOM}{name}")
            text = node.text or ""
            texts.append(html.unescape(text) if node.get("type") == "html" else text)
        meant[entry.findtext(f"{ATOM}id")] = texts
    assert len(meant) == 3
    items = etree.fromstring(rss).findall("channel/item")
    assert len(items) == 3
    for item in items:
        title, description = item.findtext("title") or "", item.findtext("description") or ""
        for text in (title, description):
            assert _elements(text) == [], text  # titles and summaries are plain text: no element
        parsed = lxml.html.fragment_fromstring(description or " ", create_parent="div").text_content()
        assert [lxml.html.fragment_fromstring(title, create_parent="div").text_content(), parsed] == (
            meant[item.findtext("guid")]
        )
    # The channel's own title and description too.
    for name in ("title", "description"):
        assert _elements(etree.fromstring(rss).findtext(f"channel/{name}") or "") == []


def test_feedparser_hands_back_no_live_markup_from_any_feed(project: Project) -> None:
    settings = _built(project)
    for name in (feed.RSS_FILE, feed.ATOM_FILE):
        parsed = parse_clean((settings.feeds_dir / name).read_bytes())
        assert len(parsed.entries) == 3
        for entry in parsed.entries:
            for key in ("title", "summary"):
                value = entry[key]
                if entry[f"{key}_detail"].type == "text/html":
                    assert _elements(value) == [], (name, key, value)
                assert not re.search(r"<(img|a|script)\b", value), (name, key, value)
            for content in entry.get("content", []):
                assert _dangerous(content.value) == [], (name, content.value)
        titles = sorted(
            html.unescape(e.title) if e.title_detail.type == "text/html" else e.title for e in parsed.entries
        )
        assert titles[-1].startswith("Tom & Jerry")
        assert any("<script>alert(4)</script>" in t for t in titles)


# --- The W3C validator's rules, offline -----------------------------------------------------

_MARKUP = re.compile(r"<[A-Za-z/!?]|&#?\w+;")
_END_TAG = re.compile(r"</\w+>")


def _atom_text_constructs_declare_markup(data: bytes) -> None:
    root = assert_atom_valid(data)
    nodes = [root.find(f"{ATOM}title"), root.find(f"{ATOM}subtitle")]
    for entry in root.iterfind(f"{ATOM}entry"):
        nodes += [entry.find(f"{ATOM}title"), entry.find(f"{ATOM}summary")]
    for node in nodes:
        if node is None:
            continue
        text, kind = node.text or "", node.get("type", "text")
        if kind == "text":  # "should not contain HTML unless declared in the type attribute"
            assert not _MARKUP.search(text), f"undeclared markup in {node.tag}: {text!r}"
        else:
            assert kind == "html" and _dangerous(text) == [] and _elements(text) == [], text


def test_atom_text_that_looks_like_markup_is_declared_html(project: Project) -> None:
    settings = _built(project)
    data = (settings.feeds_dir / feed.ATOM_FILE).read_bytes()
    _atom_text_constructs_declare_markup(data)
    entries = etree.fromstring(data).findall(f"{ATOM}entry")
    kinds = {e.findtext(f"{ATOM}title"): e.find(f"{ATOM}title").get("type", "text") for e in entries}
    assert kinds["Tom & Jerry at the harbour"] == "text"  # plain text stays plain
    assert sorted(kinds.values()) == ["html", "html", "text"]


def test_hand_made_hostile_entries_and_site_title_follow_the_rules() -> None:
    settings = Settings(site={"title": "Harbour <b>News</b> &amp; more", "description": "A <i>fine</i> site"})
    entries = [
        published(1, title="a < b and c > d", summary="x &copy; y"),
        published(2, title="</p>closing", summary="<!-- comment --> text"),
        published(3, title="Plain & simple", summary="Plain summary"),
    ]
    _atom_text_constructs_declare_markup(feed.atom_current(entries, settings, prev_archive=None))
    rss = etree.fromstring(feed.rss(entries, settings))
    for node in rss.iter("title", "description"):
        text = node.text or ""
        assert not _END_TAG.search(text), text  # RSS title/description: no HTML end tag
        assert _elements(text) == [], text
        if node.tag == "description":  # HTML by definition: well-formed, no bare & or <
            etree.fromstring(f"<div>{text}</div>")
    got = parse_clean(feed.rss(entries, settings))
    assert html.unescape(got.feed.title) == "Harbour <b>News</b> &amp; more"
    assert [e.title for e in got.entries][2] == "Plain & simple"
