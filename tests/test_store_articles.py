"""store.articles: permanent identities across edits, renames, duplicates and removals, on a real
SQLite database, fed by real files parsed by ingest; and the schema's version bookkeeping."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import NOW, Project

from publisher import ingest
from publisher.errors import StateError
from publisher.models import Article
from publisher.store import articles, cache, db

HOST = "news.example.org"


def _story(n: int, extra: str = "") -> str:
    return f"date 2025-02-{n:02d} The ferry service number {n} resumes on Monday.\n\nTimes are new. {extra}\n"


def _scan(project: Project) -> tuple[list[Article], set[str]]:
    result = ingest.ingest(project.settings())
    return result.articles, result.invalid


def _sync(conn: sqlite3.Connection, project: Project, moment: datetime = NOW) -> articles.SyncReport:
    found, invalid = _scan(project)
    return articles.sync(
        conn, found, moment, present_invalid=invalid, host=HOST, label=lambda r: f"seeds/{r}"
    )


def _ids(report: articles.SyncReport) -> dict[str, str]:
    return {p.article.source: p.id for p in report.published}


@pytest.fixture
def conn(project: Project) -> sqlite3.Connection:
    return db.connect(project.state / "publisher.sqlite3")


def test_an_id_is_minted_at_first_sight_as_a_tag_uri_and_an_explicit_id_wins(
    project: Project, conn: sqlite3.Connection
) -> None:
    """`tag:host,date:slug` for a new article; a front-matter id is used as it is."""
    project.seed("a.txt", _story(1))
    project.seed(
        "b.md",
        "---\ntitle: Explicit\ndate: 2025-02-03\nid: urn:uuid:8c1f2d8e-0b0a-4a4e-9a55-1c2e3f4a5b6c\n---\nX\n",
    )
    report = _sync(conn, project)
    ids = _ids(report)
    assert ids["a.txt"] == "tag:news.example.org,2025-02-01:the-ferry-service-number-1-resumes-on-monday"
    assert ids["b.md"] == "urn:uuid:8c1f2d8e-0b0a-4a4e-9a55-1c2e3f4a5b6c"
    assert report.new == 2
    first = {p.article.source: p for p in report.published}["a.txt"]
    # Never edited yet: last updated when it was written, as far as anyone can know.
    assert first.identity.first_seen == NOW and first.updated == first.article.date


def test_the_id_survives_an_edit_and_updated_moves_only_on_a_real_change(
    project: Project, conn: sqlite3.Connection
) -> None:
    """Re-syncing unchanged files changes nothing; editing moves `updated` to now and keeps the id."""
    project.seed("a.txt", _story(1))
    first = _sync(conn, project).published[0]
    again = _sync(conn, project, NOW + timedelta(days=1))
    assert again.published[0].identity == first.identity and (again.changed, again.new) == (0, 0)
    project.seed("a.txt", _story(1, "Fares are unchanged."))
    later = NOW + timedelta(days=2)
    edited = _sync(conn, project, later)
    assert edited.changed == 1
    assert edited.published[0].id == first.id and edited.published[0].identity.slug == first.identity.slug
    assert edited.published[0].updated == later and first.updated != later


def test_a_rename_keeps_the_id_and_updated(project: Project, conn: sqlite3.Connection) -> None:
    """Same story text under a new name is the same article."""
    path = project.seed("a.txt", _story(1))
    first = _sync(conn, project).published[0]
    path.rename(project.seeds / "renamed.txt")
    report = _sync(conn, project, NOW + timedelta(days=1))
    assert report.renamed == 1 and report.new == 0
    moved = report.published[0]
    assert (moved.article.source, moved.identity) == ("renamed.txt", first.identity)


def test_duplicates_are_reported_and_the_known_one_kept(project: Project, conn: sqlite3.Connection) -> None:
    """A new copy of a known story is reported, even when its name sorts first."""
    project.seed("m.txt", _story(1))
    known = _ids(_sync(conn, project))["m.txt"]
    project.seed("a-copy.txt", _story(1))
    report = _sync(conn, project)
    assert _ids(report) == {"m.txt": known}
    assert [str(p) for p in report.problems] == [
        "seeds/a-copy.txt: body: same story text as seeds/m.txt; not published"
    ]


def test_removal_keeps_the_record_and_a_returning_file_gets_its_id_back(
    project: Project, conn: sqlite3.Connection
) -> None:
    """A removed file's id is never reused; the file coming back is the same article."""
    path = project.seed("a.txt", _story(1))
    first = _ids(_sync(conn, project))["a.txt"]
    text = path.read_text(encoding="utf-8")
    path.unlink()
    assert _sync(conn, project).removed == 1
    removed_at = conn.execute("SELECT removed_at FROM articles WHERE id = ?", (first,)).fetchone()[0]
    assert removed_at is not None
    project.seed("a.txt", text)
    report = _sync(conn, project)
    assert _ids(report) == {"a.txt": first} and report.new == 0


def test_a_present_but_invalid_file_keeps_its_record(project: Project, conn: sqlite3.Connection) -> None:
    """Breaking a file does not remove its article; fixing it brings back the same id."""
    path = project.seed("a.txt", _story(1))
    first = _ids(_sync(conn, project))["a.txt"]
    path.write_text("date 2025-02-30 Broken date.\n", encoding="utf-8")
    report = _sync(conn, project)
    assert report.published == [] and report.removed == 0
    path.write_text(_story(1), encoding="utf-8")
    assert _ids(_sync(conn, project)) == {"a.txt": first}


def test_an_explicit_id_used_twice_is_reported(project: Project, conn: sqlite3.Connection) -> None:
    """Two files claiming one explicit id: the first keeps it, the second is reported."""
    project.seed("a.md", "---\ntitle: One\ndate: 2025-02-03\nid: urn:x:1\n---\nFirst text.\n")
    project.seed("b.md", "---\ntitle: Two\ndate: 2025-02-03\nid: urn:x:1\n---\nSecond text.\n")
    report = _sync(conn, project)
    assert _ids(report) == {"a.md": "urn:x:1"}
    assert [str(p) for p in report.problems] == ["seeds/b.md: id: urn:x:1 is already used by seeds/a.md"]


def test_sync_from_cached_keys_matches_sync_from_articles(project: Project, tmp_path: Path) -> None:
    """The build syncs light keys from the parse cache; the outcome equals a sync of full Articles."""
    for n in range(1, 5):
        project.seed(f"s{n}.txt", _story(n))
    project.seed("dup.txt", _story(2))
    found, invalid = _scan(project)
    full = db.connect(tmp_path / "full.sqlite3")
    light = db.connect(tmp_path / "light.sqlite3")
    expected = articles.sync(full, found, NOW, present_invalid=invalid, host=HOST)
    settings = project.settings()
    with db.transaction(light):
        for seed in ingest.scan(settings)[0]:
            article, problems = ingest.parse_file(seed, settings)
            cache.put(light, seed, "h", article.model_dump_json() if article else None, problems)
    got = articles.sync_sources(light, cache.keys(light), NOW, present_invalid=invalid, host=HOST)
    assert got.claims == {p.article.source: p.id for p in expected.published}
    assert [str(p) for p in got.problems] == [str(p) for p in expected.problems]
    with db.transaction(light):
        cache.set_claims(light, dict(got.claims))
    restored = cache.load_articles(light, list(got.claims.values()))
    assert {a.source: a for a in restored.values()} == {
        p.article.source: p.article for p in expected.published
    }


def test_the_schema_version_is_recorded_and_a_newer_one_refused(project: Project) -> None:
    """Each component's version is kept; a database from a newer release is refused, not misread."""
    path = project.state / "publisher.sqlite3"
    conn = db.connect(path)
    versions = dict(conn.execute("SELECT component, version FROM schema_versions").fetchall())
    assert versions["articles"] == len(articles.MIGRATIONS) and versions["cache"] == len(cache.MIGRATIONS)
    conn.execute("UPDATE schema_versions SET version = 7 WHERE component = 'articles'")
    conn.close()
    with pytest.raises(StateError, match=r"articles schema version 7, newer than this release knows \(2\)"):
        db.connect(path)
