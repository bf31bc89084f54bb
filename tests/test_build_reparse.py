"""The parse cache never outlives what it was parsed under: a change to a setting that shapes how a
file parses re-reads every file, and `publisher build --full` trusts nothing the cache holds."""

from __future__ import annotations

import sqlite3

import feedparser

from tests.conftest import Project

LONG = (
    "date 2025-02-20 The harbour board met on Tuesday evening and decided, after a very long debate "
    "about the budget, that volunteers would restore the old lighthouse next spring.\n\n"
    "A second paragraph about the lighthouse.\n"
)


def titles(project: Project) -> list[str]:
    return [entry.title for entry in feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries]


def test_an_ingest_setting_changed_in_the_file_reparses(project: Project) -> None:
    project.seed("long.txt", LONG)
    assert project.cli("build").code == 0
    assert len(titles(project)[0]) > 60
    project.configure("[ingest]\ntitle_max_chars = 30\n")
    assert project.cli("build").code == 0
    (title,) = titles(project)
    assert len(title) <= 30 and title.startswith("The harbour board"), title
    page = next((project.feeds / "articles").glob("*.html")).read_text(encoding="utf-8")
    assert f"<title>{title}" in page or title in page


def test_a_site_setting_that_shapes_parsing_reparses(project: Project) -> None:
    """A plain-text article's date is midnight in the site's timezone: changing the timezone
    changes every such date, cache or not."""
    project.seed("long.txt", LONG)
    assert project.cli("build").code == 0
    before = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0].published
    assert before.startswith("2025-02-19T23:00:00") or "+01:00" in before, before  # Europe/Paris
    config = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(config.replace('"Europe/Paris"', '"America/New_York"'), encoding="utf-8")
    assert project.cli("build").code == 0
    after = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0].published
    assert after != before and ("05:00" in after or "-05:00" in after), after


def test_build_full_reparses_every_file(project: Project) -> None:
    """A damaged cache row (a bad disk, a hand edit, a bug in an older release) is repaired by
    `build --full`, which reads every file again instead of trusting the cache."""
    project.seed("long.txt", LONG)
    project.seed("two.md", '---\ntitle: "Ferry timetable"\ndate: 2025-02-21\n---\n\nThe ferry runs.\n')
    assert project.cli("build").code == 0
    good = {p.name: p.read_bytes() for p in project.feeds.rglob("*") if p.is_file()}
    conn = sqlite3.connect(project.settings().db_path)
    with conn:
        changed = conn.execute(
            "UPDATE parse_articles SET json = replace(json, 'Ferry timetable', 'TAMPERED title') "
            "WHERE path = 'two.md'"
        ).rowcount
        conn.execute("UPDATE parse_cache SET title = 'TAMPERED title' WHERE path = 'two.md'")
    conn.close()
    assert changed == 1
    assert project.cli("build", "--full").code == 0
    assert "TAMPERED" not in (project.feeds / "atom.xml").read_text(encoding="utf-8")
    assert "Ferry timetable" in titles(project)
    repaired = {p.name: p.read_bytes() for p in project.feeds.rglob("*") if p.is_file()}
    assert repaired == good
    conn = sqlite3.connect(project.settings().db_path)
    assert "TAMPERED" not in str(conn.execute("SELECT json FROM parse_articles").fetchall())
    conn.close()


def test_a_site_file_deleted_by_hand_is_written_again_by_the_next_build(project: Project) -> None:
    """`rm feeds/atom.xml; publisher build` said "0 written" and left the feed missing."""
    project.seed("long.txt", LONG)
    assert project.cli("build").code == 0
    for name in ("atom.xml", "rss.xml", "feed.json", "atom.xsl", "style.css"):
        before = (project.feeds / name).read_bytes()
        (project.feeds / name).unlink()
        result = project.cli("build")
        assert result.code == 0, result.err
        assert (project.feeds / name).read_bytes() == before, name
    assert len(titles(project)) == 1
