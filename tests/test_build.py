"""`publisher build` end to end: what lands in feeds/, what changes when seeds/ changes, and what
does not (determinism, nothing rewritten, identities stable, drafts and embargoes honoured)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
from conftest import BASE_CONFIG, NOW, SAMPLE, Project
from lxml import etree

from publisher import pipeline

ATOM = "{http://www.w3.org/2005/Atom}"


def _story(n: int, extra: str = "") -> str:
    return (
        f"date 2025-02-{n:02d} Harbour council meeting {n} agreed on a budget.\n\nItem {n} passed. {extra}\n"
    )


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _entries(project: Project) -> dict[str, dict[str, str]]:
    """atom.xml entries by id: title, updated, link."""
    root = etree.fromstring((project.feeds / "atom.xml").read_bytes())
    found = {}
    for entry in root.iter(f"{ATOM}entry"):
        found[entry.findtext(f"{ATOM}id") or ""] = {
            "title": entry.findtext(f"{ATOM}title") or "",
            "updated": entry.findtext(f"{ATOM}updated") or "",
            "link": entry.find(f"{ATOM}link").get("href"),  # type: ignore[union-attr]
        }
    return found


def _page(project: Project, link: str) -> Path:
    return project.feeds / link.removeprefix("https://news.example.org/")


def test_build_writes_every_output_and_the_sample_survives_in_each(project: Project) -> None:
    """Atom, RSS and JSON Feed parse cleanly; pages exist; `Erdoğan` and curly quotes come out intact."""
    project.seed(SAMPLE.name, SAMPLE.read_bytes())
    project.seed(
        "b.md", "---\ntitle: “Quoted” news from Erdoğan\ndate: 2025-02-20\ntags: [world]\n---\nText.\n"
    )
    result = project.cli("build")
    assert result.code == 0, result.err
    assert "2 published" in result.out and "0 rejected" in result.out
    names = set(_tree(project.feeds))
    assert {"atom.xml", "rss.xml", "feed.json", "index.html", "style.css"} <= names
    assert sum(1 for n in names if n.startswith("articles/")) == 2
    for name in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse((project.feeds / name).read_bytes())
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert len(parsed.entries) == 2
    doc = json.loads((project.feeds / "feed.json").read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1" and len(doc["items"]) == 2
    for name in ("atom.xml", "rss.xml", "feed.json", "index.html"):
        text = (project.feeds / name).read_text(encoding="utf-8")
        assert "Erdoğan" in text and "“Quoted”" in text, name
    sample_page = next(p for p in (project.feeds / "articles").iterdir() if "harbour-official" in p.name)
    body = sample_page.read_text(encoding="utf-8")
    assert "Erdoğan" in body and "doesn’t" in body
    assert "ISLANDERS SAY FERRY FIRM" not in body  # page furniture stays out


def test_two_fresh_builds_give_byte_identical_trees(project: Project, tmp_path: Path) -> None:
    """Same seeds, separate state folders: every file in feeds/ is byte for byte the same."""
    project.seed(SAMPLE.name, SAMPLE.read_bytes())
    for n in range(1, 6):
        project.seed(f"s{n}.txt", _story(n))
    twin = Project(tmp_path / "twin")
    shutil.copytree(project.seeds, twin.seeds)
    twin.config_path.write_text(BASE_CONFIG, encoding="utf-8")
    assert project.cli("build").code == 0
    assert twin.cli("build", now=NOW + timedelta(hours=3)).code == 0
    assert _tree(project.feeds) == _tree(twin.feeds)


def test_a_build_that_changes_nothing_rewrites_nothing(project: Project) -> None:
    """Second build: nothing written, no file's mtime moves, no file parsed again; same for --full."""
    for n in range(1, 4):
        project.seed(f"s{n}.txt", _story(n))
    settings = project.settings()
    first = pipeline.build(settings, NOW)
    assert first.parsed == 3 and first.written
    before = _mtimes(project.feeds)
    again = pipeline.build(settings, NOW + timedelta(minutes=5))
    assert (again.parsed, again.written, again.skipped, again.published) == (0, [], True, 3)
    full = pipeline.build(settings, NOW + timedelta(minutes=6), full=True)
    assert full.written == [] and full.unchanged == len(before)
    assert _mtimes(project.feeds) == before


def test_touching_a_file_reads_it_but_neither_parses_nor_writes(project: Project) -> None:
    """A new mtime with the same bytes is recognised by the content hash."""
    path = project.seed("s1.txt", _story(1))
    settings = project.settings()
    pipeline.build(settings, NOW)
    os.utime(path, ns=(path.stat().st_mtime_ns + 5_000_000_000,) * 2)
    report = pipeline.build(settings, NOW)
    assert (report.parsed, report.written) == (0, [])


def test_edit_keeps_the_id_and_moves_updated_rename_keeps_both(project: Project) -> None:
    """Editing rewrites one page and the feeds; renaming changes no id, no date, no page."""
    project.seed("s1.txt", _story(1))
    project.seed("s2.txt", _story(2))
    settings = project.settings()
    pipeline.build(settings, NOW)
    before = _entries(project)
    project.seed("s1.txt", _story(1, "A correction was added."))
    later = NOW + timedelta(days=1)
    report = pipeline.build(settings, later)
    assert report.changed == 1 and report.parsed == 1
    after = _entries(project)
    assert after.keys() == before.keys()
    edited = next(i for i in after if after[i]["updated"] != before[i]["updated"])
    assert after[edited]["updated"].startswith("2025-03-02")
    page = _page(project, after[edited]["link"])
    assert "A correction was added." in page.read_text(encoding="utf-8")
    assert f"articles/{page.name}" in report.written and "index.html" in report.written
    untouched = [n for n in report.written if n.startswith("articles/") and n != f"articles/{page.name}"]
    assert untouched == []

    (project.seeds / "s2.txt").rename(project.seeds / "renamed.txt")
    report = pipeline.build(settings, later + timedelta(days=1))
    assert report.renamed == 1 and report.new == 0
    assert _entries(project) == after
    assert not [n for n in report.written if n.startswith("articles/")]


def test_removal_removes_the_entry_and_the_page(project: Project) -> None:
    """A deleted file's entry leaves every feed and its page is deleted from feeds/."""
    project.seed("s1.txt", _story(1))
    gone = project.seed("s2.txt", _story(2))
    settings = project.settings()
    pipeline.build(settings, NOW)
    entries = _entries(project)
    page = next(_page(project, e["link"]) for e in entries.values() if "meeting 2" in e["title"])
    assert page.exists()
    gone.unlink()
    report = pipeline.build(settings, NOW)
    assert report.removed == 1 and report.published == 1
    assert not page.exists() and f"articles/{page.name}" in report.written
    assert len(_entries(project)) == 1
    assert page.name not in (project.feeds / "index.html").read_text(encoding="utf-8")
    assert seeds_untouched(project)


def seeds_untouched(project: Project) -> bool:
    return [p.name for p in project.seeds.iterdir()] == ["s1.txt"]


def test_drafts_never_and_future_articles_once_their_moment_comes(project: Project) -> None:
    """The embargoed article is reported as next_embargo, appears once now passes it, and goes live then."""
    project.seed("draft.md", "---\ntitle: Secret plan\ndate: 2025-02-01\ndraft: true\n---\nNot yet.\n")
    project.seed("now.txt", _story(1))
    project.seed("later.txt", "date 2025-03-05 The bridge reopens to traffic next week.\n")
    settings = project.settings()
    report = pipeline.build(settings, NOW)
    embargo = datetime(2025, 3, 5, tzinfo=UTC) - timedelta(hours=1)  # midnight in Europe/Paris
    assert (report.published, report.next_embargo) == (1, embargo)
    assert [e["title"] for e in _entries(project).values()] == [
        "Harbour council meeting 1 agreed on a budget"
    ]
    assert pipeline.build(settings, embargo - timedelta(seconds=1)).skipped
    report = pipeline.build(settings, embargo)
    assert not report.skipped and report.published == 2 and report.next_embargo is None
    titles = sorted(e["title"] for e in _entries(project).values())
    assert titles == [
        "Harbour council meeting 1 agreed on a budget",
        "The bridge reopens to traffic next week",
    ]
    assert "Secret plan" not in (project.feeds / "index.html").read_text(encoding="utf-8")
    with sqlite3.connect(settings.db_path) as conn:
        live = dict(conn.execute("SELECT source, live_at FROM articles"))
    assert live["later.txt"] == embargo.isoformat(timespec="microseconds")
    assert live["draft.md"] is None


def test_cli_reports_problems_and_strict_fails_on_rejected_files(project: Project) -> None:
    """Rejected files are printed like check does; exit 0 unless --strict; duplicates keep being reported."""
    project.seed("good.txt", _story(1))
    project.seed("zcopy.txt", _story(1))
    project.seed("bad.txt", "no date here\n")
    result = project.cli("build")
    assert result.code == 0
    lines = result.out.splitlines()
    assert any(line.startswith("seeds/bad.txt: date: missing") for line in lines)
    assert "seeds/zcopy.txt: body: same story text as seeds/good.txt; not published" in lines
    assert lines[-1].startswith("1 published, ") and ", 2 rejected, " in lines[-1]
    again = project.cli("build", "--strict")
    assert again.code == 1
    assert "seeds/zcopy.txt: body: same story text as seeds/good.txt; not published" in again.out.splitlines()
    assert ", 0 written, " in again.out


def test_full_build_repairs_a_damaged_page_and_removes_strays(project: Project) -> None:
    """--full rewrites an output edited by hand and deletes pages no article owns."""
    project.seed("s1.txt", _story(1))
    settings = project.settings()
    pipeline.build(settings, NOW)
    page = next((project.feeds / "articles").iterdir())
    good = page.read_bytes()
    page.write_bytes(b"vandalised")
    stray = project.feeds / "articles" / "old.html"
    stray.write_bytes(b"<html></html>")
    assert pipeline.build(settings, NOW).written == []  # an ordinary build trusts its records
    report = pipeline.build(settings, NOW, full=True)
    assert sorted(report.written) == [f"articles/{page.name}", "articles/old.html"]
    assert page.read_bytes() == good and not stray.exists()


def test_changing_a_template_rerenders_every_page(project: Project) -> None:
    """The operator's template folder wins; a change there reaches every page without --full."""
    project.seed("s1.txt", _story(1))
    project.seed("s2.txt", _story(2))
    settings = project.settings()
    pipeline.build(settings, NOW)
    custom = project.root / "templates"
    custom.mkdir()
    (custom / "style.css").write_text("body { color: black; }\n", encoding="utf-8")
    report = pipeline.build(settings, NOW)
    assert report.written == ["style.css"]
    (custom / "article.html.j2").write_text(
        '{% extends "base.html.j2" %}{% block main %}<p>{{ entry.title }}</p>{% endblock %}', encoding="utf-8"
    )
    report = pipeline.build(settings, NOW)
    assert sorted(report.written) == sorted(
        f"articles/{p.name}" for p in (project.feeds / "articles").iterdir()
    )


def test_a_newer_schema_is_refused_without_a_traceback(project: Project) -> None:
    """A state database from a newer release: one Error line, nothing written."""
    project.seed("s1.txt", _story(1))
    assert project.cli("build").code == 0
    with sqlite3.connect(project.state / "publisher.sqlite3") as conn:
        conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'cache'")
    result = project.cli("build")
    assert result.code == 1
    assert result.err.startswith("Error: state database has cache schema version 99, newer than this release")


def test_an_edit_within_the_same_clock_tick_is_still_seen(project: Project) -> None:
    """Same size, same mtime, different bytes right after a build (git's racy-clean case)."""
    path = project.seed("s1.txt", _story(1, "Version A."))
    settings = project.settings()
    pipeline.build(settings, NOW)
    stamp = path.stat().st_mtime_ns
    path.write_text(_story(1, "Version B."), encoding="utf-8")
    os.utime(path, ns=(stamp, stamp))
    report = pipeline.build(settings, NOW)
    assert (report.parsed, report.changed) == (1, 1)
    assert any("Version B." in p.read_text(encoding="utf-8") for p in (project.feeds / "articles").iterdir())
