"""End to end: `pipeline.build` over real seeds writes feeds that validate, archives that can be
walked, and entries that behave as docs/feeds.md says when an article is edited or removed."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from conftest import NOW, SAMPLE, Project
from lxml import etree
from support.feeds import ATOM, FH, assert_atom_valid, parse_clean

from publisher import BUNDLED_TEMPLATES, pipeline
from publisher.build import feed

BASE = "https://news.example.org/"


def _story(n: int, extra: str = "") -> str:
    return (
        f"date 2025-02-{n:02d} Council meeting number {n} agreed on the new budget for the harbour.\n\n"
        f"The vote on item {n} was close, said the chair. {extra}\n"
    )


@pytest.fixture
def site(project: Project) -> Project:
    project.configure(
        """
        [feed]
        entries = 3
        archive_size = 2
        """
    )
    project.seed(SAMPLE.name, SAMPLE.read_bytes())
    for n in range(1, 7):
        project.seed(f"story-{n}.txt", _story(n))
    return project


def _walk(feeds: Path) -> tuple[list[str], list[str]]:
    """Follow prev-archive from atom.xml; (entry ids in order seen, documents visited)."""
    ids: list[str] = []
    visited: list[str] = []
    url: str | None = BASE + feed.ATOM_FILE
    while url is not None:
        visited.append(url)
        data = (feeds / url.removeprefix(BASE)).read_bytes()
        root = assert_atom_valid(data)
        ids += [e.id for e in parse_clean(data).entries]
        assert (root.find(f"{FH}archive") is not None) == (url != BASE + feed.ATOM_FILE)
        prev = root.find(f"{ATOM}link[@rel='prev-archive']")
        url = None if prev is None else prev.get("href")
    return ids, visited


def test_the_built_feeds_are_valid_and_the_archives_hold_every_article(site: Project) -> None:
    settings = site.settings()
    report = pipeline.build(settings, NOW)
    assert report.problems == [], report.problems
    feeds = settings.feeds_dir

    atom = (feeds / feed.ATOM_FILE).read_bytes()
    assert_atom_valid(atom)
    parsed = parse_clean(atom)
    assert 3 <= len(parsed.entries) <= 7
    for entry in parsed.entries:
        assert entry.id.startswith("tag:news.example.org,") and entry.title and entry.published
        assert entry.link.startswith(BASE + "articles/") and entry.content[0].value
        assert (feeds / entry.link.removeprefix(BASE)).is_file()  # the page the entry links to
    assert b'<?xml-stylesheet type="text/xsl" href="atom.xsl"?>' in atom
    assert (feeds / feed.STYLESHEET).read_bytes() == (BUNDLED_TEMPLATES / feed.STYLESHEET).read_bytes()

    parse_clean((feeds / feed.RSS_FILE).read_bytes())
    doc = json.loads((feeds / feed.JSON_FILE).read_bytes())
    assert doc["version"] == feed.JSON_FEED_VERSION and len(doc["items"]) == len(parsed.entries)

    ids, visited = _walk(feeds)
    assert visited[-1] == BASE + "archive/1.xml"
    assert len(set(ids)) == 7  # the sample and the six stories, each at least once


def test_the_shared_sample_keeps_its_typography_in_every_built_feed(site: Project) -> None:
    settings = site.settings()
    pipeline.build(settings, NOW)
    feeds = settings.feeds_dir
    texts = [(feeds / name).read_bytes().decode("utf-8") for name in (feed.ATOM_FILE, feed.RSS_FILE)]
    texts.append(json.dumps(json.loads((feeds / feed.JSON_FILE).read_bytes()), ensure_ascii=False))
    for text in texts:
        assert "Erdoğan" in text and "doesn’t" in text and "‘these are our plans" in text


def test_an_edit_keeps_the_id_and_moves_updated_and_a_removal_rewrites_one_archive(site: Project) -> None:
    settings = site.settings()
    pipeline.build(settings, NOW)
    feeds = settings.feeds_dir

    def story_6() -> Any:
        entries = parse_clean((feeds / feed.ATOM_FILE).read_bytes()).entries
        return next(e for e in entries if "number 6 " in e.title)

    original = story_6()
    archive_bytes = {p.name: p.read_bytes() for p in (feeds / "archive").glob("*.xml")}
    assert archive_bytes, "the six stories and the sample fill archives of two"
    (site.seeds / "story-6.txt").write_text(_story(6, "A correction was added later."), encoding="utf-8")
    pipeline.build(settings, NOW + timedelta(hours=1))
    again = story_6()
    assert again.id == original.id and again.link == original.link
    assert "correction" in again.content[0].value
    assert again.updated > original.updated and again.published == original.published
    assert "correction" not in original.content[0].value
    assert {p.name: p.read_bytes() for p in (feeds / "archive").glob("*.xml")} == archive_bytes

    # Remove an archived article: only its archive changes, and it is gone from every document.
    held = etree.fromstring(archive_bytes["1.xml"]).findall(f"{ATOM}entry")
    archived = next(e for e in held if "number" in e.findtext(f"{ATOM}title"))
    gone_id = archived.findtext(f"{ATOM}id")
    number = re.search(r"number (\d+)", archived.findtext(f"{ATOM}title"))
    assert number is not None
    (site.seeds / f"story-{number.group(1)}.txt").unlink()
    pipeline.build(settings, NOW + timedelta(hours=2))
    after = {p.name: p.read_bytes() for p in (feeds / "archive").glob("*.xml")}
    assert sorted(name for name in after if after[name] != archive_bytes.get(name)) == ["1.xml"]
    ids, _ = _walk(feeds)
    assert gone_id not in ids and len(set(ids)) == 6
    assert gone_id not in (feeds / feed.RSS_FILE).read_text(encoding="utf-8")


HOSTILE_SEEDS: dict[str, bytes] = {
    # (A NUL byte or a non-UTF-8 file is refused by ingest; the rest must come out clean.)
    "controls.txt": b"date 2025-02-10 Tab\there, bell\x07, escape\x1b[31m and a DEL\x7f in one story.\n\n"
    b"A second paragraph with \x0c form feed and <script>alert(1)</script> & ampersands.\n",
    "crlf-bom.txt": b"\xef\xbb\xbfdate 2025-02-11 Windows line ends and a byte-order mark.\r\n\r\n"
    b"Second \xe2\x80\x9cpara\xe2\x80\x9d.\r\n",
    "raw.md": (
        "---\n"
        'title: "<b>Bold</b> & <script>x</script> “quoted” Erdoğan"\n'
        "date: 2025-02-13\n"
        'author: "A & B <x@y>"\n'
        'tags: ["<i>tag</i>", "R&D"]\n'
        "---\n"
        "Raw <script>alert('x')</script> HTML and a [bad link](javascript:alert(1)) "
        "and a [relative one](other/page.html) and ![img](pic.png).\n\n"
        "<div onclick='x()'>block html</div>\n"
    ).encode(),
}


def test_hostile_seeds_end_in_valid_escaped_feeds(project: Project) -> None:
    """Every hostile case from the ingest issue that ingest accepts gives valid, inert feeds."""
    project.seed(SAMPLE.name, SAMPLE.read_bytes())
    for name, data in HOSTILE_SEEDS.items():
        project.seed(name, data)
    settings = project.settings()
    pipeline.build(settings, NOW)
    feeds = settings.feeds_dir

    atom = (feeds / feed.ATOM_FILE).read_bytes()
    root = assert_atom_valid(atom)
    entries = parse_clean(atom).entries
    assert len(entries) == 4, pipeline.check(settings, NOW).problems  # sample + the three above
    assert b"<script" not in atom and b"<div" not in atom and b"<b>" not in atom
    for text in root.itertext():
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", text)
    for href in (el.get("href") for el in root.iter(f"{ATOM}link")):
        assert href.startswith(BASE)
    # The escaped HTML, once a reader unescapes it: no live script, handler or script URL, and
    # every link absolute (hostile text may still be shown, as text).
    for entry in root.iter(f"{ATOM}entry"):
        body = lxml.html.fragment_fromstring(entry.findtext(f"{ATOM}content"), create_parent="div")
        assert body.xpath("//script | //*[@*[starts-with(name(), 'on')]]") == []
        for url in body.xpath("//@href | //@src"):
            assert url.startswith(("http://", "https://", "mailto:")), url
    raw = root.xpath(
        "//atom:entry[contains(atom:title, 'Bold')]/atom:content", namespaces={"atom": ATOM[1:-1]}
    )
    assert "&lt;script&gt;" in raw[0].text  # the raw HTML of the Markdown file, shown as text

    rss = (feeds / feed.RSS_FILE).read_bytes()
    assert b"<script" not in rss
    assert len(parse_clean(rss).entries) == len(entries)
    doc = json.loads((feeds / feed.JSON_FILE).read_bytes())
    assert [item["id"] for item in doc["items"]] == [e.id for e in entries]
    # Shown as text, not markup: an HTML title holds the text escaped.
    titles = {html.unescape(e.title) if e.title_detail.type == "text/html" else e.title for e in entries}
    assert any("Erdoğan" in t and "<b>Bold</b>" in t for t in titles)
