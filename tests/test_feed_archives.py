"""RFC 5005 archives over real builds: atom.xml holds exactly the newest `feed.entries` articles,
the archives the rest, cut by publication date; walked from atom.xml the chain gives every
published article exactly once, newest first; a full archive never changes; and no clock, late
article or old database breaks that."""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import NOW, Project
from lxml import etree
from support.feeds import ATOM, FH, assert_atom_valid, parse_clean

from publisher import pipeline
from publisher.build import feed
from publisher.store import db, feed_archives

BASE = "https://news.example.org/"
DAY0 = date(2024, 1, 1)


def _story(n: int, day: date | None = None) -> str:
    day = day or DAY0 + timedelta(days=n)
    return f"date {day:%Y-%m-%d} Story number {n} tells of harbour item {n} in full.\n\nMore on {n}.\n"


def _site(project: Project, count: int, *, entries: int, size: int | None = None) -> Project:
    extra = f"[feed]\nentries = {entries}\n" + (f"archive_size = {size}\n" if size else "")
    project.configure(extra)
    for n in range(1, count + 1):
        project.seed(f"s{n:03d}.txt", _story(n))
    return project


def _walk(feeds: Path) -> tuple[list[list[tuple[str, str]]], list[str]]:
    """From atom.xml along prev-archive: each document's (link, published) entries, and its path."""
    docs: list[list[tuple[str, str]]] = []
    paths: list[str] = []
    url: str | None = BASE + feed.ATOM_FILE
    while url is not None:
        path = url.removeprefix(BASE)
        assert path not in paths, f"the chain loops at {path}"
        paths.append(path)
        data = (feeds / path).read_bytes()
        root = assert_atom_valid(data)
        parse_clean(data)
        assert (root.find(f"{FH}archive") is not None) == (path != feed.ATOM_FILE)
        docs.append(
            [
                (e.find(f"{ATOM}link").get("href"), e.findtext(f"{ATOM}published"))
                for e in root.iterfind(f"{ATOM}entry")
            ]
        )
        prev = root.find(f"{ATOM}link[@rel='prev-archive']")
        url = None if prev is None else prev.get("href")
    return docs, paths


def _check(project: Project, *, entries: int, size: int) -> list[str]:
    """Every published article (its page exists) in exactly one document, newest first, atom.xml
    holding exactly the newest `entries`; returns the documents' paths, atom.xml first."""
    feeds = project.feeds
    docs, paths = _walk(feeds)
    links = [link for doc in docs for link, _ in doc]
    pages = sorted(BASE + f"articles/{p.name}" for p in (feeds / "articles").glob("*.html"))
    assert len(links) == len(set(links)), "an article is in two documents"
    assert sorted(links) == pages, "an article is in no document, or a document has no page"
    assert len(docs[0]) == min(entries, len(pages))
    assert all(len(doc) <= size for doc in docs[1:])
    # On disk: no archive document outside the chain.
    on_disk = sorted(f"archive/{p.name}" for p in (feeds / "archive").glob("*.xml")) if docs[1:] else []
    assert on_disk == sorted(paths[1:])
    for name in (feed.RSS_FILE, feed.JSON_FILE):
        data = (feeds / name).read_bytes()
        got = (
            [item["url"] for item in json.loads(data)["items"]]
            if name == feed.JSON_FILE
            else [e.link for e in parse_clean(data).entries]
        )
        assert got == [link for link, _ in docs[0]], name
    return paths


def _in_date_order(project: Project) -> None:
    docs, _ = _walk(project.feeds)
    dates = [published for doc in docs for _, published in doc]
    assert dates == sorted(dates, reverse=True)


def test_the_chain_gives_every_article_once_newest_first_cut_by_date(project: Project) -> None:
    _site(project, 10, entries=3, size=2)
    # Files named against their dates: neither discovery order nor ids may decide the cut.
    for n in range(1, 11):
        project.seed(f"s{n:03d}.txt", _story(n, DAY0 + timedelta(days=20 - n)))
    pipeline.build(project.settings(), NOW)
    paths = _check(project, entries=3, size=2)
    # 3 in atom.xml; 7 older: archives 1-3 full (2 each), archive 4 open with the one left.
    assert paths == [feed.ATOM_FILE, "archive/4.xml", "archive/3.xml", "archive/2.xml", "archive/1.xml"]
    _in_date_order(project)
    first = etree.fromstring((project.feeds / "archive/1.xml").read_bytes())
    assert first.find(f"{ATOM}link[@rel='next-archive']").get("href") == BASE + "archive/2.xml"
    assert first.find(f"{ATOM}link[@rel='current']").get("href") == BASE + feed.ATOM_FILE


@pytest.mark.parametrize(("entries", "size"), [(50, 50), (50, 20)])
def test_feed_entries_is_honoured_exactly_in_every_feed(project: Project, entries: int, size: int) -> None:
    _site(project, 120, entries=entries, size=size)
    pipeline.build(project.settings(), NOW)
    _check(project, entries=entries, size=size)
    _in_date_order(project)
    feeds = project.feeds
    assert len(parse_clean((feeds / feed.ATOM_FILE).read_bytes()).entries) == entries
    assert len(parse_clean((feeds / feed.RSS_FILE).read_bytes()).entries) == entries
    assert len(json.loads((feeds / feed.JSON_FILE).read_bytes())["items"]) == entries


def test_a_full_archive_never_changes_when_newer_articles_arrive(project: Project) -> None:
    _site(project, 7, entries=3, size=2)
    full: dict[str, bytes] = {}
    now = NOW
    for n in range(8, 16):
        pipeline.build(project.settings(), now)
        paths = _check(project, entries=3, size=2)
        _in_date_order(project)
        for path in paths[2:]:  # every archive but the open one is full
            data = (project.feeds / path).read_bytes()
            assert len(etree.fromstring(data).findall(f"{ATOM}entry")) == 2
            assert full.setdefault(path, data) == data, f"{path} changed once full"
        project.seed(f"s{n:03d}.txt", _story(n))
        now += timedelta(minutes=5)
    assert len(full) >= 4


def test_a_clock_set_back_drops_no_entry_and_a_no_op_build_keeps_it_so(project: Project) -> None:
    """120 articles built at T, 30 more (dated among them) built at T - 1 h: 150 in 150 places."""
    _site(project, 120, entries=50)
    pipeline.build(project.settings(), NOW)
    _check(project, entries=50, size=50)
    for n in range(121, 151):
        project.seed(f"s{n:03d}.txt", _story(n, DAY0 + timedelta(days=(n - 120) * 4, hours=12)))
    pipeline.build(project.settings(), NOW - timedelta(hours=1))
    assert len(list((project.feeds / "articles").glob("*.html"))) == 150
    _check(project, entries=50, size=50)
    again = pipeline.build(project.settings(), NOW)
    assert again.skipped
    _check(project, entries=50, size=50)


def test_a_backdated_article_joins_the_open_part_and_frozen_archives_stay(project: Project) -> None:
    _site(project, 9, entries=3, size=2)
    pipeline.build(project.settings(), NOW)
    before = {p.name: p.read_bytes() for p in (project.feeds / "archive").glob("*.xml")}
    project.seed("old.txt", _story(99, DAY0 - timedelta(days=30)))  # older than everything
    pipeline.build(project.settings(), NOW + timedelta(minutes=1))
    _check(project, entries=3, size=2)
    after = {p.name: p.read_bytes() for p in (project.feeds / "archive").glob("*.xml")}
    # 6 archived in 1-3 (full), archive 4 open (empty): the backdated article goes there.
    assert sorted(before) == ["1.xml", "2.xml", "3.xml", "4.xml"] and b"<entry>" not in before["4.xml"]
    assert [name for name in sorted(before) if after[name] != before[name]] == ["4.xml"]
    assert b"Story number 99 " in after["4.xml"]


def test_an_unpublished_member_leaves_its_archive_and_returns_to_it(project: Project) -> None:
    _site(project, 9, entries=3, size=2)
    pipeline.build(project.settings(), NOW)
    before = {p.name: p.read_bytes() for p in (project.feeds / "archive").glob("*.xml")}
    assert b"Story number 1 " in before["1.xml"]  # the oldest article, in the oldest archive
    gone = project.seeds / "s001.txt"
    text = gone.read_text(encoding="utf-8")
    gone.unlink()
    pipeline.build(project.settings(), NOW + timedelta(minutes=1))
    _check(project, entries=3, size=2)
    after = {p.name: p.read_bytes() for p in (project.feeds / "archive").glob("*.xml")}
    assert [name for name in sorted(before) if after[name] != before[name]] == ["1.xml"]
    assert len(etree.fromstring(after["1.xml"]).findall(f"{ATOM}entry")) == 1
    project.seed("s001.txt", text)
    pipeline.build(project.settings(), NOW + timedelta(minutes=2))
    _check(project, entries=3, size=2)
    back = {p.name: p.read_bytes() for p in (project.feeds / "archive").glob("*.xml")}
    assert back == before
    # Dated into the future (scheduled again): unpublished the same way, its archive alone rewritten.
    project.seed("s001.txt", text.replace(f"date {DAY0 + timedelta(days=1):%Y-%m-%d}", "date 2030-01-01"))
    pipeline.build(project.settings(), NOW + timedelta(minutes=3))
    _check(project, entries=3, size=2)
    later = {p.name: p.read_bytes() for p in (project.feeds / "archive").glob("*.xml")}
    assert [name for name in sorted(before) if later[name] != before[name]] == ["1.xml"]
    assert b"Story number 1 " not in later["1.xml"]


def test_a_database_cut_the_old_way_is_re_cut_by_the_next_no_op_build(project: Project) -> None:
    """Archives cut in live order and overlapping atom.xml (before migration 3) are repaired."""
    _site(project, 12, entries=3, size=2)
    settings = project.settings()
    pipeline.build(settings, NOW)
    conn = db.connect(settings.db_path)
    try:
        with db.transaction(conn):
            ids = [str(r[0]) for r in conn.execute("SELECT id FROM articles ORDER BY seq DESC")]
            conn.execute("DELETE FROM archive_members")
            conn.execute("DELETE FROM archives")
            # The old damage: the newest article frozen into archive 1, four others nowhere.
            conn.execute("INSERT INTO archives (number, frozen_at, size) VALUES (1, '2025-01-01', 2)")
            conn.executemany(
                "INSERT INTO archive_members (archive, article_id) VALUES (1, ?)", [(ids[0],), (ids[5],)]
            )
            conn.execute("UPDATE schema_versions SET version = 2 WHERE component = 'archives'")
    finally:
        conn.close()
    (project.feeds / "archive" / "9.xml").write_bytes((project.feeds / "archive" / "1.xml").read_bytes())
    report = pipeline.build(settings, NOW + timedelta(minutes=1))
    assert not report.skipped
    _check(project, entries=3, size=2)
    _in_date_order(project)
    conn = db.connect(settings.db_path)
    try:
        version = conn.execute("SELECT version FROM schema_versions WHERE component = 'archives'").fetchone()
        assert version[0] == len(feed_archives.MIGRATIONS)
    finally:
        conn.close()


def test_the_archives_component_is_migrated(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "s.sqlite3")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT version FROM schema_versions WHERE component = 'archives'").fetchone()
    finally:
        conn.close()
    assert {"archives", "archive_members"} <= tables
    assert version[0] == len(feed_archives.MIGRATIONS)


def test_archive_size_may_not_exceed_the_feed_size() -> None:
    from pydantic import ValidationError

    from publisher.config import Settings

    with pytest.raises(ValidationError, match=r"archive_size \(6\) must not exceed entries \(5\)"):
        Settings(feed={"archive_size": 6, "entries": 5})
    assert Settings(feed={"entries": 20}).feed.archive_size == 20  # the default follows entries


def test_per_build_queries_use_the_indexes(project: Project) -> None:
    """What runs on every build finds articles by key or by the published index: no query costs
    the number of archived articles times anything (no timing: the plans)."""
    _site(project, 9, entries=3, size=2)
    settings = project.settings()
    pipeline.build(settings, NOW)
    conn: sqlite3.Connection = db.connect(settings.db_path)
    try:
        conn.execute("ANALYZE")
        params = {"now": "2025-03-01T12:00:00+00:00", "touched": "[]"}

        def plan(query: str) -> list[str]:
            return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + query, params)]

        # The pool: published articles through an index, each looked up in the members by id.
        pool = plan(feed_archives._POOL)
        assert pool[0].startswith("SEARCH c USING") and "date" in pool[0], pool
        assert any(s.startswith("SEARCH m") and "(article_id=?)" in s for s in pool), pool
        # A build that knows what changed reads from the mark on.
        from_mark = plan(feed_archives._POOL_FROM.replace(":date", "'2024'").replace(":id", "''"))
        assert from_mark[0].startswith("SEARCH c USING") and "(date,article_id)>" in from_mark[0], from_mark
        # Members checked against the parse cache: one lookup by id each.
        for query in (feed_archives._GONE, feed_archives._BACK, feed_archives._GONE + feed_archives._TOUCHED):
            steps = plan(query)
            assert [s for s in steps if s.startswith("SEARCH c")] == [
                "SEARCH c USING INDEX parse_cache_claim (article_id=?)"
            ], steps
    finally:
        conn.close()


def test_an_incremental_build_places_articles_as_a_full_look_would(project: Project) -> None:
    """Builds that read only what changed (the mark, the touched ids) agree with reading everything:
    right after each build, a full assign finds nothing to freeze and the same places."""
    _site(project, 9, entries=3, size=2)
    settings = project.settings()
    now = NOW
    steps = [
        lambda: project.seed("s010.txt", _story(10)),  # newest
        lambda: project.seed("old.txt", _story(50, DAY0 - timedelta(days=9))),  # backdated
        lambda: (project.seeds / "s005.txt").unlink(),  # a frozen member goes
        lambda: project.seed("s011.txt", _story(11)),
        lambda: project.seed("s005.txt", _story(5)),  # and comes back
        lambda: project.seed("s012.txt", _story(12, DAY0 + timedelta(days=2, hours=6))),  # between
        lambda: project.seed("s013.txt", _story(13)),
        lambda: project.seed("s014.txt", _story(14)),
    ]
    pipeline.build(settings, now)
    for step in [lambda: None, *steps]:
        step()
        now += timedelta(minutes=1)
        pipeline.build(settings, now)
        _check(project, entries=3, size=2)
        conn = db.connect(settings.db_path)
        try:
            frozen = feed_archives.count_frozen(conn)
            again = feed_archives.assign(conn, settings, now, None)
            assert feed_archives.count_frozen(conn) == frozen
        finally:
            conn.close()
        docs, paths = _walk(project.feeds)
        by_link = {link: n for n, doc in enumerate(docs) for link, _ in doc}
        assert len(paths) - 1 == again.total
        assert again.rewrite == ([again.total] if again.total else [])
        assert len(docs[0]) == len(again.current) and len(docs[1]) == len(again.open_members)
        assert set(by_link.values()) <= set(range(len(docs)))
