"""The watcher's settle rule: a file is handed over only once its size and mtime have stood still."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from publisher.daemon.watch import SeedWatcher, Settler, wait_until_quiet
from tests.conftest import Project


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_file_still_growing_is_not_handed_over(tmp_path: Path) -> None:
    ticks = Ticks()
    settler = Settler(0.5, clock=ticks)
    path = tmp_path / "a.txt"
    path.write_text("date 2025-03-01 first part")
    settler.changed(path)
    assert settler.due() == 0.5
    ticks.t += 0.5
    with path.open("a") as f:  # the copy goes on, but no event has reached us (polling, say)
        f.write(" and more")
    assert settler.poll() is None  # the size moved: wait again
    assert settler.due() == 0.5
    ticks.t += 0.5
    assert settler.poll() == [path]
    assert settler.due() is None


def test_settled_files_wait_for_the_ones_still_changing(tmp_path: Path) -> None:
    """A build reads the whole folder, so it must not start while another copy is half done."""
    ticks = Ticks()
    settler = Settler(0.5, clock=ticks)
    done, busy = tmp_path / "done.txt", tmp_path / "busy.txt"
    done.write_text("complete")
    busy.write_text("partial")
    settler.changed(done)
    ticks.t += 0.3
    settler.changed(busy)
    ticks.t += 0.2
    assert settler.poll() is None  # done.txt settled, busy.txt not yet due
    assert settler.ready == {done}
    assert settler.due() == pytest.approx(0.3)
    ticks.t += 0.3
    assert settler.poll() == sorted([done, busy])


def test_a_deleted_file_settles_as_gone(tmp_path: Path) -> None:
    ticks = Ticks()
    settler = Settler(0.2, clock=ticks)
    path = tmp_path / "gone.txt"
    settler.changed(path)
    ticks.t += 0.2
    assert settler.poll() == [path]


def test_zero_settle_hands_over_at_once(tmp_path: Path) -> None:
    settler = Settler(0.0, clock=Ticks())
    path = tmp_path / "x.txt"
    path.write_text("x")
    settler.changed(path)
    assert settler.due() == 0.0
    assert settler.poll() == [path]


def test_hidden_temporary_and_editor_files_are_not_relevant(project: Project) -> None:
    watcher = SeedWatcher(project.settings(), lambda paths: None)
    seeds = project.settings().seeds_dir
    (seeds / "desk").mkdir()
    assert watcher.relevant(seeds / "story.txt")
    assert watcher.relevant(seeds / "desk" / "story.md")
    assert watcher.relevant(seeds / "desk")  # a folder moved in
    for junk in (
        ".story.txt.swp",
        "story.txt~",
        "#story.txt#",
        "story.txt.part",
        ".hidden/story.txt",
        "4913",
    ):
        assert not watcher.relevant(seeds / junk), junk
    assert not watcher.relevant(seeds / "notes.pdf")


def test_the_start_up_build_waits_for_a_quiet_folder(project: Project) -> None:
    project.configure("[daemon]\nsettle = 30\n")
    settings = project.settings()
    stop = threading.Event()
    busy = project.seed("busy.txt", "date 2025-03-01 Being copied")
    assert not wait_until_quiet(settings, stop, limit=0)  # written just now: not quiet
    old = time.time() - 60
    os.utime(busy, (old, old))
    assert wait_until_quiet(settings, stop, limit=0)
    future = time.time() + 86_400  # a copied mtime from the future is not a copy in progress
    os.utime(busy, (future, future))
    assert wait_until_quiet(settings, stop, limit=0)


def test_a_missing_seeds_folder_is_waited_for_not_watched(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    """The log never says "watching" a folder that is not there; it says so when it appears."""
    project.configure("[daemon]\nwatch = 'poll'\npoll_interval = 0.1\n")
    seeds = project.settings().seeds_dir
    seeds.rename(seeds.with_name("seeds.away"))
    caplog.set_level("INFO", logger="publisher")
    watcher = SeedWatcher(project.settings(), lambda paths: None)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while "waiting for it to appear" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "does not exist; waiting for it to appear" in caplog.text
        assert "watching" not in caplog.text
        seeds.with_name("seeds.away").rename(seeds)
        while "appeared; watching it" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "appeared; watching it" in caplog.text
    finally:
        watcher.stop()
