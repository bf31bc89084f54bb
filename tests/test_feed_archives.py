"""RFC 5005 archives: membership frozen in live order, stable, takedown-aware, and walkable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import NOW
from lxml import etree
from pydantic import ValidationError
from support.feeds import ATOM, FH, article, assert_atom_valid, parse_clean

from publisher import urls
from publisher.build import feed
from publisher.config import Settings
from publisher.models import Article, Published
from publisher.store import articles, db, feed_archives

HOST = "news.example.org"


class Site:
    """A state database with articles that go live one per minute, in the order they are added."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.present: dict[str, Article] = {}  # source -> article: what seeds/ holds now
        self.clock = NOW
        self.ids: dict[int, str] = {}  # article number -> permanent id

    def sync(self) -> dict[str, Published]:
        report = articles.sync(self.conn, list(self.present.values()), self.clock, host=HOST)
        return {p.id: p for p in report.published}

    def add(self, *numbers: int, **kw: object) -> None:
        for n in numbers:
            self.present[f"{n:04d}.txt"] = article(n, **kw)  # type: ignore[arg-type]
            self.clock += timedelta(minutes=1)
            by_source = {p.article.source: p.id for p in self.sync().values()}
            self.ids[n] = by_source[f"{n:04d}.txt"]
            articles.mark_live(self.conn, [self.ids[n]], self.clock)

    def remove(self, n: int) -> None:
        del self.present[f"{n:04d}.txt"]
        self.clock += timedelta(minutes=1)
        self.sync()

    def assign(self, settings: Settings) -> list[int]:
        return feed_archives.assign(self.conn, settings, self.clock)

    def members(self, number: int) -> list[int]:
        by_id = {ident: n for n, ident in self.ids.items()}
        return [by_id[ident] for ident in feed_archives.members(self.conn, number)]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    conn = db.connect(tmp_path / "state" / "publisher.sqlite3")
    yield Site(conn)
    conn.close()


def _settings(size: int = 3, entries: int = 5) -> Settings:
    return Settings(feed={"archive_size": size, "entries": entries})


def test_complete_chunks_are_frozen_in_the_order_articles_went_live(site: Site) -> None:
    # Dates run backwards: archives follow when articles went live, not their dates.
    for n in range(1, 8):
        site.add(n, date=NOW - timedelta(days=n))
    assert site.assign(_settings()) == [1, 2]
    assert feed_archives.count(site.conn) == 2
    assert site.members(1) == [3, 2, 1]  # newest first
    assert site.members(2) == [6, 5, 4]
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[7]]
    assert site.assign(_settings()) == []  # nothing new: nothing to write


def test_archives_stay_put_when_more_articles_arrive(site: Site) -> None:
    site.add(*range(1, 7))
    assert site.assign(_settings()) == [1, 2]
    site.add(7, 8)
    assert site.assign(_settings()) == []  # an incomplete chunk waits
    site.add(9)
    # Archive 3 is new; archive 2 is rewritten only to gain its next-archive link.
    assert site.assign(_settings()) == [2, 3]
    assert (site.members(1), site.members(2), site.members(3)) == ([3, 2, 1], [6, 5, 4], [9, 8, 7])


def test_articles_not_live_yet_wait(site: Site) -> None:
    site.add(1, 2)
    site.present["0003.txt"] = article(3)
    site.sync()  # known, but never marked live (a draft or a scheduled article)
    site.add(4)
    assert site.assign(_settings(size=2)) == [1]
    assert site.members(1) == [2, 1]
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[4]]
    # Live later than `now` (a clock that went back): not archived either.
    assert feed_archives.assign(site.conn, _settings(size=1), NOW) == []
    # Article 3, known since before 4 and 5, goes live after them: it is archived after them.
    site.add(5)
    site.ids[3] = next(i for i, p in site.sync().items() if p.article.source == "0003.txt")
    site.clock += timedelta(minutes=1)
    articles.mark_live(site.conn, [site.ids[3]], site.clock)
    assert site.assign(_settings(size=2)) == [1, 2]
    assert site.members(2) == [5, 4]
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[3]]


def test_a_takedown_rewrites_only_the_archive_that_held_the_article(site: Site) -> None:
    site.add(*range(1, 7))
    site.assign(_settings())
    site.remove(5)
    assert site.assign(_settings()) == [2]
    assert site.members(2) == [6, 4] and site.members(1) == [3, 2, 1]
    assert site.assign(_settings()) == []
    # The file comes back: same id, same archive, rewritten once more.
    site.add(5)
    assert site.ids[5] == "tag:news.example.org,2025-02-01:article-number-5"
    assert site.assign(_settings()) == [2]
    assert site.members(2) == [6, 5, 4]


def test_an_article_removed_before_it_was_archived_is_skipped(site: Site) -> None:
    site.add(1, 2, 3)
    site.remove(2)
    site.add(4)
    assert site.assign(_settings()) == [1]
    assert site.members(1) == [4, 3, 1]


def test_an_edit_does_not_touch_the_archives(site: Site) -> None:
    site.add(1, 2, 3)
    site.assign(_settings())
    site.present["0002.txt"] = article(2, title="Article number 2, corrected")
    site.clock += timedelta(minutes=1)
    site.sync()
    assert site.assign(_settings()) == []
    assert site.members(1) == [3, 2, 1]


def test_archive_size_may_not_exceed_the_feed_size() -> None:
    with pytest.raises(ValidationError, match=r"archive_size \(6\) must not exceed entries \(5\)"):
        Settings(feed={"archive_size": 6, "entries": 5})
    assert Settings(feed={"entries": 20}).feed.archive_size == 20  # the default follows entries
    assert Settings(feed={"entries": 20, "archive_size": 20}).feed.archive_size == 20


def _write_all(site: Site, settings: Settings) -> dict[str, bytes]:
    """What a build writes: atom.xml with the newest live articles, and every archive."""
    published = site.sync()
    total = feed_archives.count(site.conn)
    url = {n: urls.absolute(settings.site, feed.archive_path(n)) for n in range(1, total + 1)}
    docs: dict[str, bytes] = {}
    for n in range(1, total + 1):
        members = [published[i] for i in feed_archives.members(site.conn, n)]
        docs[url[n]] = feed.atom_archive(
            members, settings, number=n, prev_archive=url.get(n - 1), next_archive=url.get(n + 1)
        )
    live = site.conn.execute(
        "SELECT id FROM articles WHERE live_at IS NOT NULL AND removed_at IS NULL "
        "ORDER BY live_at DESC, seq DESC"
    )
    current = [published[row[0]] for row in live][: settings.feed.entries]
    docs[urls.absolute(settings.site, feed.ATOM_FILE)] = feed.atom_current(
        current, settings, prev_archive=url.get(total)
    )
    return docs


def test_every_article_is_found_walking_back_from_atom_xml_to_archive_1(site: Site) -> None:
    settings = _settings(size=3, entries=4)
    site.add(*range(1, 15))
    site.assign(settings)
    site.remove(4)
    site.assign(settings)
    docs = _write_all(site, settings)
    assert len(docs) == 5  # atom.xml and archives 1..4

    seen: list[str] = []
    url: str | None = urls.absolute(settings.site, feed.ATOM_FILE)
    visited = []
    while url is not None:
        visited.append(url)
        data = docs[url]
        root = assert_atom_valid(data)
        parsed = parse_clean(data)
        seen += [e.id for e in parsed.entries]
        is_archive = root.find(f"{FH}archive") is not None
        assert is_archive == (url != urls.absolute(settings.site, feed.ATOM_FILE))
        if is_archive:
            current = root.find(f"{ATOM}link[@rel='current']")
            assert current is not None and current.get("href") == settings.site.base_url + "atom.xml"
        prev = root.find(f"{ATOM}link[@rel='prev-archive']")
        url = None if prev is None else prev.get("href")
    assert visited[-1] == settings.site.base_url + "archive/1.xml"
    present = set(site.sync())
    assert set(seen) == present  # every present article at least once
    assert site.ids[4] not in seen  # the takedown is gone everywhere
    assert len(seen) - len(set(seen)) <= settings.feed.entries  # overlap only with atom.xml

    # Forward links mirror the backward ones.
    first = etree.fromstring(docs[settings.site.base_url + "archive/1.xml"])
    assert first.find(f"{ATOM}link[@rel='next-archive']").get("href").endswith("archive/2.xml")


def test_archive_documents_are_identical_when_written_again(site: Site) -> None:
    settings = _settings()
    site.add(*range(1, 7))
    site.assign(settings)
    assert _write_all(site, settings) == _write_all(site, settings)


def test_the_archives_component_is_migrated(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "s.sqlite3")
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = conn.execute("SELECT version FROM schema_versions WHERE component = 'archives'").fetchone()
    finally:
        conn.close()
    assert {"archives", "archive_members"} <= tables
    assert version[0] == len(feed_archives.MIGRATIONS)


def test_count_and_members_of_an_empty_store(tmp_path: Path) -> None:
    conn = db.connect(tmp_path / "s.sqlite3")
    try:
        assert feed_archives.count(conn) == 0
        assert feed_archives.members(conn, 1) == []
        assert feed_archives.assign(conn, _settings(), NOW) == []
    finally:
        conn.close()


def test_an_article_back_from_removal_after_its_turn_waits_for_the_next_archive(site: Site) -> None:
    """Removed while its chunk was frozen, it returns behind the watermark and is still found."""
    site.add(1, 2, 3)
    site.remove(2)
    site.add(4)
    assert site.assign(_settings()) == [1]
    site.add(2)  # the same file back: same id, its old live_at
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[2]]
    assert site.assign(_settings()) == []
    site.add(5, 6)
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[6], site.ids[5], site.ids[2]]
    assert site.assign(_settings()) == [1, 2]
    assert site.members(2) == [6, 5, 2]
    assert feed_archives.unarchived(site.conn, site.clock) == []


def test_an_article_that_went_live_on_a_clock_set_back_is_still_archived(site: Site) -> None:
    site.add(1, 2, 3)
    assert site.assign(_settings()) == [1]
    site.present["0004.txt"] = article(4)
    site.sync()
    site.ids[4] = "tag:news.example.org,2025-02-01:article-number-4"
    articles.mark_live(site.conn, [site.ids[4]], NOW - timedelta(days=1))  # before archive 1's last
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[4]]
    site.add(5, 6)
    assert site.assign(_settings()) == [1, 2]
    assert site.members(2) == [6, 5, 4]


def test_a_takedown_not_yet_recorded_does_not_hide_a_waiting_article(site: Site) -> None:
    """unarchived() is exact even before assign() has recorded a takedown (counts compensate)."""
    site.add(1, 2, 3)
    site.remove(2)
    site.add(4)
    site.assign(_settings())  # archive 1: 1, 3, 4
    site.add(2)  # back behind the watermark
    site.remove(3)  # and an archived article taken down, not yet seen by assign()
    assert feed_archives.unarchived(site.conn, site.clock) == [site.ids[2]]


def test_per_build_queries_never_scan_the_articles_table(site: Site) -> None:
    """What runs on every build reads partial indexes, not 100,000 rows (no timing: the plans)."""
    site.add(1, 2, 3, 4)
    site.assign(_settings())
    site.conn.execute("ANALYZE")
    queries = [
        feed_archives._TAKEDOWNS,
        feed_archives._RETURNS,
        f"SELECT id FROM {feed_archives._LIVE_INDEX} WHERE {feed_archives._LIVE}"
        " AND (live_at, seq) > ('', 0)",
        f"SELECT COUNT(*) FROM {feed_archives._LIVE_INDEX} WHERE {feed_archives._LIVE}",
    ]
    for query in queries:
        plan = " | ".join(str(row[3]) for row in site.conn.execute("EXPLAIN QUERY PLAN " + query))
        # A SCAN is allowed only of a partial index (archives_live_present, archive_members_absent).
        for step in plan.split(" | "):
            assert not step.startswith("SCAN") or "archives_live_present" in step or "_absent" in step, plan


def test_migration_2_fills_in_what_version_1_lacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.sqlite3"
    monkeypatch.setattr(feed_archives, "MIGRATIONS", feed_archives.MIGRATIONS[:1])
    conn = db.connect(path)
    old = Site(conn)
    old.add(1, 2, 3)
    with db.transaction(conn):
        conn.execute("INSERT INTO archives (number, frozen_at) VALUES (1, '2025-01-01')")
        conn.executemany(
            "INSERT INTO archive_members (archive, article_id) VALUES (1, ?)", [(old.ids[n],) for n in (1, 2)]
        )
    conn.close()
    monkeypatch.undo()
    conn = db.connect(path)
    try:
        row = conn.execute("SELECT size, last_live, last_seq FROM archives WHERE number = 1").fetchone()
        live_2 = conn.execute("SELECT live_at, seq FROM articles WHERE id = ?", (old.ids[2],)).fetchone()
        assert tuple(row) == (2, live_2[0], live_2[1])
        assert feed_archives.unarchived(conn, old.clock) == [old.ids[3]]
    finally:
        conn.close()
