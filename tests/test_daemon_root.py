"""The daemon keeps watching seeds/ when the folder itself is removed and made again, or replaced by
a rename (`mv seeds seeds.old; mv seeds.new seeds`): inotify's watch follows the old folder, so the
new one went unwatched and nothing dropped into it was published until a restart. While seeds/ is
missing nothing is unpublished."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from tests.conftest import Project
from tests.test_daemon import Daemon, feed_titles, story
from tests.test_daemon import daemons as daemons  # the fixture

MODES = {
    "events": "[daemon]\nsettle = 0.1\n",
    "poll": "[daemon]\nsettle = 0.1\nwatch = 'poll'\npoll_interval = 0.1\n",
}


def start(project: Project, daemons: Callable[..., Daemon], mode: str) -> Daemon:
    project.configure(MODES[mode])
    project.seed("first.txt", story("The first story"))
    daemon = daemons("-v")  # the second start-up build logs only at debug level when nothing changed
    daemon.wait_log("built:", count=2)  # the start-up builds: the second runs once the watcher started
    project.seed("live.txt", story("The live story"))  # so this one is published by the watcher
    daemon.wait_for("the watcher", lambda: "The live story" in feed_titles(project))
    return daemon


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_folder_swapped_in_by_a_rename_is_watched(
    project: Project, daemons: Callable[..., Daemon], mode: str
) -> None:
    daemon = start(project, daemons, mode)
    fresh = project.root / "seeds.new"
    shutil.copytree(project.seeds, fresh)
    (fresh / "swapped.txt").write_text(story("The swapped-in story"), encoding="utf-8")
    project.seeds.rename(project.root / "seeds.old")
    fresh.rename(project.seeds)
    daemon.wait_for("the new folder's file", lambda: "The swapped-in story" in feed_titles(project))
    if mode == "events":  # polling follows the path, and so sees the new folder anyway
        daemon.wait_log("was replaced; watching it")
    project.seed("later.txt", story("The later story"))
    daemon.wait_for("a file dropped into the new folder", lambda: "The later story" in feed_titles(project))
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_folder_removed_and_made_again_is_watched_and_nothing_is_unpublished_meanwhile(
    project: Project, daemons: Callable[..., Daemon], mode: str
) -> None:
    daemon = start(project, daemons, mode)
    kept = project.root / "kept"
    shutil.copytree(project.seeds, kept)
    shutil.rmtree(project.seeds)
    daemon.wait_log("does not exist; waiting for it to appear")
    daemon.wait_log("the seeds folder does not exist")  # the build the removal asked for: refused
    assert sorted(feed_titles(project)) == ["The first story", "The live story"]
    (kept / "back.txt").write_text(story("The story after the gap"), encoding="utf-8")
    shutil.copytree(kept, project.seeds)
    daemon.wait_for("the new folder's file", lambda: "The story after the gap" in feed_titles(project))
    project.seed("later.txt", story("The later story"))
    daemon.wait_for("a file dropped into the new folder", lambda: "The later story" in feed_titles(project))
    assert sorted(feed_titles(project)) == [
        "The first story",
        "The later story",
        "The live story",
        "The story after the gap",
    ]
    assert "appeared; watching it" in daemon.log
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log
