"""A big change inside a running daemon: `publisher run` has threads (scheduler, watcher), so the
build's worker processes must come from a fork server, never from a fork of the daemon itself
(a fork copies locks other threads hold). 500 files dropped at once are parsed and rendered on
worker processes and published completely."""

from __future__ import annotations

import os
from collections.abc import Callable

import feedparser
import pytest

from tests.conftest import Project
from tests.test_daemon import Daemon, daemons, story

__all__ = ["daemons"]  # the fixture, used by name

MANY = 500


def article_pages(project: Project) -> set[str]:
    folder = project.feeds / "articles"
    return {p.name for p in folder.glob("*.html")} if folder.is_dir() else set()


def feed_entries(project: Project) -> set[str]:
    """Titles of every entry in atom.xml and its archives."""
    titles: set[str] = set()
    for path in project.feeds.rglob("*.xml"):
        parsed = feedparser.parse(path.read_bytes())
        if parsed.version.startswith("atom"):
            titles.update(entry.title for entry in parsed.entries)
    return titles


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="worker processes are used only with 2 cores or more")
def test_a_500_file_change_inside_the_daemon_builds_on_a_fork_server(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    project.configure("[daemon]\nsettle = 0.2\n")
    project.seed("first.txt", story("The first story"))
    daemon = daemons("-v")
    daemon.wait_for("the first build", lambda: len(article_pages(project)) == 1)
    titles = {f"Story number {i:03d}" for i in range(MANY)}
    staging = project.root / "staging"
    staging.mkdir()
    for i in range(MANY):
        (staging / f"s{i:03d}.txt").write_text(story(f"Story number {i:03d}", 3), encoding="utf-8")
    for path in sorted(staging.iterdir()):
        path.rename(project.seeds / path.name)  # whole files appear at once, as a sync tool does
    daemon.wait_for("the 500 new pages", lambda: len(article_pages(project)) == MANY + 1, deadline=180)
    daemon.wait_for("every entry in the feeds", lambda: titles <= feed_entries(project), deadline=60)
    log = daemon.log
    assert "parse: " in log and "worker processes (forkserver)" in log, log[-3000:]
    assert "render: " in log
    assert " fork)" not in log
    assert daemon.stop() == 0
    assert "ERROR" not in daemon.log and "Traceback" not in daemon.log
