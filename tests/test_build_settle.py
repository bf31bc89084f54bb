"""The daemon's build leaves files that are still changing for a later build (half-written race)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import feedparser

from publisher.pipeline import build
from tests.conftest import NOW, Project


def _titles(project: Project) -> list[str]:
    parsed = feedparser.parse((project.feeds / "atom.xml").read_bytes())
    assert not parsed.bozo
    return sorted(entry.title for entry in parsed.entries)


def test_a_file_changed_after_the_settle_mark_waits_for_the_next_build(project: Project) -> None:
    """A new file and an edit made after `settled_before` are not read; the previous complete
    version stays published, and both go out once the mark has passed them."""
    project.seed("old.txt", "date 2025-02-19 The ferry timetable changes on Monday morning.\n")
    settings = project.settings()
    build(settings, NOW)
    old = project.seed("old.txt", "date 2025-02-19 The ferry timetable changes on Tuesday mor")
    new = project.seed("new.txt", "date 2025-02-20 The library opens late on Thurs")
    mark = os.stat(new).st_mtime - 1  # both files changed after the mark: still being written

    report = build(settings, NOW, settled_before=mark)

    assert report.unsettled == ["new.txt", "old.txt"]
    assert _titles(project) == ["The ferry timetable changes on Monday morning"]

    project.seed("old.txt", "date 2025-02-19 The ferry timetable changes on Tuesday morning.\n")
    project.seed("new.txt", "date 2025-02-20 The library opens late on Thursdays.\n")
    later = max(os.stat(old).st_mtime, os.stat(new).st_mtime) + 1
    report = build(settings, NOW, settled_before=later)

    assert report.unsettled == []
    assert _titles(project) == [
        "The ferry timetable changes on Tuesday morning",
        "The library opens late on Thursdays",
    ]


def test_an_embargoed_article_takes_its_address_from_what_goes_out(project: Project) -> None:
    """Seen first as a fragment before its date, finished before it: the page address comes from
    the finished text when it goes live, and no page ever exists under the fragment's address."""
    settings = project.settings()
    project.seed("later.txt", "date 2025-03-09 The harbour\n")
    build(settings, NOW)
    assert _titles(project) == []
    project.seed("later.txt", "date 2025-03-09 The harbour festival moves to the old quay this year.\n")
    build(settings, NOW)
    report = build(settings, datetime(2025, 3, 10, tzinfo=UTC))
    assert report.published == 1
    pages = sorted(p.name for p in (project.feeds / "articles").iterdir())
    assert pages == ["the-harbour-festival-moves-to-the-old-quay.html"]
    assert _titles(project) == ["The harbour festival moves to the old quay this year"]
