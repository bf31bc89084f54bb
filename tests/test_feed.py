"""The feed documents: Atom, RSS 2.0 and JSON Feed are valid, complete, escaped and deterministic."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from conftest import NOW, SAMPLE, Project
from lxml import etree
from support.feeds import ATOM, T0, assert_atom_valid, newest_first, parse_clean, published

from publisher import BUNDLED_TEMPLATES, ingest, urls
from publisher.build import feed
from publisher.config import Settings
from publisher.models import Published
from publisher.store import articles, db

BASE = "https://news.example.org/"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def settings() -> Settings:
    return Settings(
        site={"title": "Test Gazette", "base_url": BASE, "author": "Test Desk", "language": "en-GB"}
    )


def _entries() -> list[Published]:
    return newest_first(
        [
            published(1, tags=("World", "EU")),
            published(2, author="Jane Reporter"),
            published(3, tags=("Politics",), updated=T0 + timedelta(days=9)),  # edited later
            published(4),
        ]
    )


def _atom(entries: list[Published], settings: Settings, prev: str | None = None) -> bytes:
    return feed.atom_current(entries, settings, prev_archive=prev)


def test_atom_is_schema_valid_and_every_entry_survives_feedparser(settings: Settings) -> None:
    """RFC 4287 schema and feedparser accept atom.xml; id, title, dates, link, content intact."""
    entries = _entries()
    data = _atom(entries, settings)
    root = assert_atom_valid(data)
    parsed = parse_clean(data)
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en-GB"
    assert [e.id for e in parsed.entries] == [p.id for p in entries]
    for got, want in zip(parsed.entries, entries, strict=True):
        assert got.title == want.article.title
        assert datetime.fromisoformat(got.published) == want.published
        assert datetime.fromisoformat(got.updated) == want.updated
        assert got.link == urls.article_url(settings.site, want.identity.slug)
        assert got.content[0].type == "text/html"
        assert got.content[0].value == want.article.body_html
        assert got.summary == want.article.summary
        assert got.author == (want.article.author or "Test Desk")
        assert [t.term for t in got.get("tags", [])] == list(want.article.tags)


def test_feed_updated_is_the_newest_entry_updated_not_the_build_time(settings: Settings) -> None:
    """The edited article 3 is the newest `updated`, though article 4 is the newest by date."""
    root = etree.fromstring(_atom(_entries(), settings))
    assert root.findtext(f"{ATOM}updated") == "2025-02-10T09:30:00+00:00"


def test_feed_has_exactly_one_absolute_self_link_and_all_urls_are_absolute(settings: Settings) -> None:
    root = etree.fromstring(_atom(_entries(), settings, prev=BASE + "archive/1.xml"))
    selfs = root.findall(f"{ATOM}link[@rel='self']")
    assert [link.get("href") for link in selfs] == [BASE + "atom.xml"]
    hrefs = [el.get("href") for el in root.iter(f"{ATOM}link")]
    assert hrefs and all(h.startswith(BASE) for h in hrefs)
    assert root.findtext(f"{ATOM}id").startswith(BASE)
    prev = root.findall(f"{ATOM}link[@rel='prev-archive']")
    assert [link.get("href") for link in prev] == [BASE + "archive/1.xml"]


def test_entry_link_keeps_rel_and_type_despite_feedgen_issue_135(settings: Settings) -> None:
    root = etree.fromstring(_atom(_entries(), settings))
    for entry in root.iter(f"{ATOM}entry"):
        links = entry.findall(f"{ATOM}link")
        assert [(link.get("rel"), link.get("type")) for link in links] == [("alternate", "text/html")]


def test_content_is_escaped_html_never_cdata(settings: Settings) -> None:
    data = _atom([published(1, body="a < b & c")], settings)
    assert b"CDATA" not in data
    assert b'<content type="html">&lt;p&gt;a &amp;lt; b &amp;amp; c&lt;/p&gt;</content>' in data


def test_atom_points_browsers_at_the_stylesheet(settings: Settings) -> None:
    data = _atom(_entries(), settings)
    pi = etree.fromstring(data).getroottree().getroot().getprevious()
    assert pi is not None and pi.target == "xml-stylesheet"
    assert pi.get("type") == "text/xsl" and pi.get("href") == feed.STYLESHEET
    assert (BUNDLED_TEMPLATES / feed.STYLESHEET).is_file()


def test_empty_feeds_are_valid_with_a_fixed_updated(settings: Settings) -> None:
    data = _atom([], settings)
    assert_atom_valid(data)
    parsed = parse_clean(data)
    assert parsed.entries == [] and parsed.feed.updated == "1970-01-01T00:00:00+00:00"
    assert parse_clean(feed.rss([], settings)).entries == []
    assert json.loads(feed.json_feed([], settings))["items"] == []


def test_rss_is_valid_with_opaque_guids_rfc822_dates_and_a_self_link(settings: Settings) -> None:
    entries = _entries()
    data = feed.rss(entries, settings)
    parsed = parse_clean(data)
    assert parsed.version == "rss20"
    assert parsed.feed.link == BASE
    assert parsed.feed.language == "en-GB"
    assert [link.href for link in parsed.feed.links if link.rel == "self"] == [BASE + "rss.xml"]
    channel = etree.fromstring(data).find("channel")
    assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == max(p.updated for p in entries)
    items = channel.findall("item")
    for item, got, want in zip(items, parsed.entries, entries, strict=True):
        assert item.find("guid").get("isPermaLink") == "false"
        assert got.id == want.id and not got.guidislink
        assert parsedate_to_datetime(item.findtext("pubDate")) == want.published
        assert got.title == want.article.title
        assert got.link == urls.article_url(settings.site, want.identity.slug)
        assert got.content[0].value == want.article.body_html
        assert got.author == (want.article.author or "Test Desk")


def test_json_feed_has_the_spec_required_fields_and_types(settings: Settings) -> None:
    entries = _entries()
    doc = json.loads(feed.json_feed(entries, settings))
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["title"], str) and doc["title"] == "Test Gazette"
    assert doc["home_page_url"] == BASE and doc["feed_url"] == BASE + "feed.json"
    assert doc["language"] == "en-GB"
    assert all(isinstance(a, dict) and isinstance(a["name"], str) for a in doc["authors"])
    assert isinstance(doc["items"], list) and len(doc["items"]) == len(entries)
    for item, want in zip(doc["items"], entries, strict=True):
        assert isinstance(item["id"], str) and item["id"] == want.id
        assert item["url"] == urls.article_url(settings.site, want.identity.slug)
        assert isinstance(item.get("content_html") or item.get("content_text"), str)
        assert item["content_html"] == want.article.body_html
        assert item["title"] == want.article.title and item["summary"] == want.article.summary
        for key, moment in (("date_published", want.published), ("date_modified", want.updated)):
            assert RFC3339.match(item[key]), item[key]
            assert datetime.fromisoformat(item[key]) == moment
        assert [a["name"] for a in item["authors"]] == [want.article.author or "Test Desk"]
        assert item.get("tags", []) == list(want.article.tags)
        assert all(isinstance(tag, str) for tag in item.get("tags", []))


def test_same_input_gives_identical_bytes(settings: Settings) -> None:
    entries = _entries()
    for build in (
        lambda: _atom(entries, settings, prev=BASE + "archive/2.xml"),
        lambda: feed.atom_archive(entries, settings, number=2, prev_archive=None, next_archive=None),
        lambda: feed.rss(entries, settings),
        lambda: feed.json_feed(entries, settings),
    ):
        assert build() == build()


def test_equal_dated_entries_keep_the_callers_order(settings: Settings) -> None:
    same = T0 + timedelta(days=1)
    entries = [published(n, date=same) for n in (5, 2, 9, 1)]
    for order in (entries, entries[::-1]):
        want = [p.id for p in order]
        assert [e.id for e in parse_clean(_atom(order, settings)).entries] == want
        assert [e.id for e in parse_clean(feed.rss(order, settings)).entries] == want
        assert [i["id"] for i in json.loads(feed.json_feed(order, settings))["items"]] == want


_SUBPROCESS = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from support.feeds import published, newest_first
from publisher.build import feed
from publisher.config import Settings
s = Settings()
es = newest_first([published(n, tags=("b", "a", "c")) for n in range(1, 6)])
for data in (feed.atom_current(es, s, prev_archive=None), feed.rss(es, s), feed.json_feed(es, s)):
    print(hashlib.sha256(data).hexdigest())
"""


def test_bytes_do_not_depend_on_the_process_or_the_local_timezone() -> None:
    """Another interpreter, with another hash seed and local timezone: the same bytes as here."""
    env = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "Asia/Kolkata"}
    tests_dir = str(Path(__file__).resolve().parent)
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS, tests_dir], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    s = Settings()
    es = newest_first([published(n, tags=("b", "a", "c")) for n in range(1, 6)])
    here = [
        hashlib.sha256(data).hexdigest()
        for data in (feed.atom_current(es, s, prev_archive=None), feed.rss(es, s), feed.json_feed(es, s))
    ]
    assert done.stdout.split() == here


def test_typographic_quotes_and_non_ascii_names_survive_every_format(settings: Settings) -> None:
    title = "“It is clear,” says Erdoğan’s minister"
    body = "She met Recep Erdoğan: ‘these are our plans’ — “so it goes”."
    entry = published(1, title=title, body=body, author="Ayşe Öztürk", tags=("Türkiye",))
    atom = _atom([entry], settings)
    assert "Erdoğan".encode() in atom  # written as UTF-8, not character references
    got = parse_clean(atom).entries[0]
    assert got.title == title and "Erdoğan" in got.content[0].value and "“so it goes”" in got.summary
    assert got.author == "Ayşe Öztürk" and got.tags[0].term == "Türkiye"
    rss_item = parse_clean(feed.rss([entry], settings)).entries[0]
    assert rss_item.title == title and "‘these are our plans’" in rss_item.content[0].value
    raw_json = feed.json_feed([entry], settings)
    assert "Erdoğan".encode() in raw_json
    item = json.loads(raw_json)["items"][0]
    assert item["title"] == title and "Erdoğan" in item["content_html"]
    assert item["authors"][0]["name"] == "Ayşe Öztürk" and item["tags"] == ["Türkiye"]


# (Lone surrogates never get past the Article model, so they are not tried here.)
HOSTILE_TITLE = "<script>alert('x')</script> & \x00Tom\x07 \x1b[31m\ufffe ]]> end"
HOSTILE_BODY = (
    '<p>a <b>bold</b> &amp; <a href="https://x.example/">link</a>\x0c</p>\n<p>]]&gt; &lt;/content&gt;</p>'
)


def _hostile() -> Published:
    entry = published(
        7, title=HOSTILE_TITLE, summary="sum\x01mary <i>not markup</i>", tags=("a\x02<b>", "\x03")
    )
    article = entry.article.model_copy(update={"body_html": HOSTILE_BODY, "author": "A & B <x@y>\x08"})
    return Published(article, entry.identity)


def test_hostile_text_ends_in_valid_escaped_output(settings: Settings) -> None:
    entry = _hostile()
    clean_title = "<script>alert('x')</script> & Tom [31m ]]> end"
    atom = _atom([entry], settings)
    assert_atom_valid(atom)
    assert b"<script" not in atom and b"<b>" not in atom
    root = etree.fromstring(atom)
    node = root.find(f"{ATOM}entry")
    # Text that looks like markup is declared as HTML and escaped: it shows as written.
    assert node.find(f"{ATOM}title").get("type") == "html"
    assert html.unescape(node.findtext(f"{ATOM}title")) == clean_title
    assert node.findtext(f"{ATOM}content") == HOSTILE_BODY.replace("\x0c", "")
    assert node.find(f"{ATOM}summary").get("type") == "html"
    assert html.unescape(node.findtext(f"{ATOM}summary")) == "summary <i>not markup</i>"
    assert [c.get("term") for c in node.findall(f"{ATOM}category")] == ["a<b>"]
    assert node.findtext(f"{ATOM}author/{ATOM}name") == "A & B <x@y>"
    assert html.unescape(parse_clean(atom).entries[0].title) == clean_title

    rss = feed.rss([entry], settings)
    assert b"<script" not in rss
    assert html.unescape(parse_clean(rss).entries[0].title) == clean_title

    item = json.loads(feed.json_feed([entry], settings))["items"][0]
    assert item["title"] == clean_title and item["content_html"] == HOSTILE_BODY.replace("\x0c", "")


def test_archive_document_carries_fh_archive_and_its_links(settings: Settings) -> None:
    data = feed.atom_archive(
        _entries(),
        settings,
        number=2,
        prev_archive=BASE + "archive/1.xml",
        next_archive=BASE + "archive/3.xml",
    )
    root = assert_atom_valid(data)
    parse_clean(data)
    assert root.find("{http://purl.org/syndication/history/1.0}archive") is not None
    links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
    assert links == {
        "self": BASE + "archive/2.xml",
        "alternate": BASE,
        "current": BASE + "atom.xml",
        "prev-archive": BASE + "archive/1.xml",
        "next-archive": BASE + "archive/3.xml",
    }
    assert root.getprevious().get("href") == "../atom.xsl"
    first = feed.atom_archive(_entries(), settings, number=1, prev_archive=None, next_archive=None)
    assert {link.get("rel") for link in etree.fromstring(first).findall(f"{ATOM}link")} == {
        "self",
        "alternate",
        "current",
    }
    with pytest.raises(ValueError, match="start at 1"):
        feed.atom_archive([], settings, number=0, prev_archive=None, next_archive=None)


def test_the_subscription_document_is_not_marked_as_an_archive(settings: Settings) -> None:
    assert b"fh:archive" not in _atom(_entries(), settings)


def test_dates_keep_their_zone_and_drop_microseconds(settings: Settings) -> None:
    paris = datetime(2025, 2, 19, 0, 0, tzinfo=datetime.fromisoformat("2025-02-19T00:00:00+01:00").tzinfo)
    entry = published(1, date=paris, updated=datetime(2025, 2, 20, 8, 1, 2, 345678, tzinfo=UTC))
    node = etree.fromstring(_atom([entry], settings)).find(f"{ATOM}entry")
    assert node.findtext(f"{ATOM}published") == "2025-02-19T00:00:00+01:00"
    assert node.findtext(f"{ATOM}updated") == "2025-02-20T08:01:02+00:00"


def test_the_shared_sample_goes_through_ingest_and_store_into_three_valid_feeds(project: Project) -> None:
    """The real sample, parsed by ingest and given an identity by the store, in every format."""
    project.seed(SAMPLE.name, SAMPLE.read_bytes())
    settings = project.settings()
    result = ingest.ingest(settings)
    assert len(result.articles) == 1, result.problems
    conn = db.connect(settings.db_path)
    try:
        entries = articles.sync(conn, result.articles, NOW, host=settings.site.host).published
    finally:
        conn.close()
    want_body = entries[0].article.body_html
    assert "Erdoğan" in want_body and "doesn’t" in want_body and "‘these are our plans" in want_body

    atom = feed.atom_current(entries, settings, prev_archive=None)
    assert_atom_valid(atom)
    got = parse_clean(atom).entries[0]
    assert got.id == entries[0].id and got.title == entries[0].article.title
    assert got.content[0].value == want_body
    rss_item = parse_clean(feed.rss(entries, settings)).entries[0]
    assert "Erdoğan" in rss_item.content[0].value and "doesn’t" in rss_item.content[0].value
    item = json.loads(feed.json_feed(entries, settings))["items"][0]
    assert item["content_html"] == want_body


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain “text” Erdoğan\tand\nlines\r", "plain “text” Erdoğan\tand\nlines\r"),
        ("a\x00b\x08c\x0bd\x0ce\x1ff", "abcdef"),
        ("non\ufffecharacters\uffff", "noncharacters"),
        ("lone \ud800surrogate\udfff", "lone surrogate"),
        ("astral 😀 stays", "astral 😀 stays"),
    ],
)
def test_clean_drops_exactly_what_xml_cannot_carry(text: str, want: str) -> None:
    assert feed.clean(text) == want
