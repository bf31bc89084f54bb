"""The daemon's build leaves files that are still changing for a later build (half-written race)."""

from __future__ import annotations

import os

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
