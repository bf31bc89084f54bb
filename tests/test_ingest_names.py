"""A file or folder in seeds/ whose name is not UTF-8 is refused on its own, in one line; the other
files publish and nothing in seeds/ is touched. It used to crash the build (UnicodeEncodeError from
SQLite) and so stop all publishing, in the daemon too."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Project
from tests.test_daemon import Daemon, feed_titles, story
from tests.test_daemon import daemons as daemons  # the fixture

FILE_LINE = "seeds/caf\\xe9.txt: file: name is not valid UTF-8; rename it"
FOLDER_LINE = "seeds/d\\xe9sk: folder: name is not valid UTF-8; rename it; not read"


def seed_latin1_names(project: Project) -> None:
    """A file and a folder named in Latin-1 (as a Windows share or an old archive can), beside a good
    file; and a picture so named, which no article can name and which is left alone."""
    seeds = os.fsencode(project.seeds)
    with open(seeds + b"/caf\xe9.txt", "wb") as f:
        f.write(story("The coffee story").encode())
    os.mkdir(seeds + b"/d\xe9sk")
    with open(seeds + b"/d\xe9sk/in.txt", "wb") as f:
        f.write(story("The desk story").encode())
    with open(seeds + b"/caf\xe9.jpg", "wb") as f:
        f.write(b"\xff\xd8\xff")
    project.seed("good.txt", story("The good story"))


def snapshot(folder: Path) -> dict[bytes, tuple[bytes, int]]:
    found = {}
    for root, _dirs, files in os.walk(os.fsencode(folder)):
        for name in files:
            path = os.path.join(root, name)
            found[path] = (Path(os.fsdecode(path)).read_bytes(), os.stat(path).st_mtime_ns)
    return found


def test_check_build_and_status_refuse_the_name_and_publish_the_rest(project: Project) -> None:
    seed_latin1_names(project)
    before = snapshot(project.seeds)
    check = project.cli("check")
    assert check.code == 1
    assert check.out.splitlines() == [FILE_LINE, FOLDER_LINE, "3 files checked, 1 valid, 2 rejected"]
    build = project.cli("build")
    assert (build.code, build.err) == (0, "")
    assert build.out.splitlines()[:2] == [FILE_LINE, FOLDER_LINE]
    assert "2 rejected" in build.out.splitlines()[2]
    assert feed_titles(project) == ["The good story"]
    for argv in (["status"], ["status", "--check"]):  # as of the last build, and from seeds/ now
        status = project.cli(*argv)
        assert status.code == 1, argv
        assert "Files:       3 in seeds/, 2 rejected" in status.out
        assert f"  {FILE_LINE}" in status.out.splitlines()
        assert f"  {FOLDER_LINE}" in status.out.splitlines()
        assert "Traceback" not in status.err
    assert "Traceback" not in check.err + build.err
    assert snapshot(project.seeds) == before  # nothing in seeds/ renamed, moved or changed


def test_the_daemon_refuses_the_name_and_keeps_publishing(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    seed_latin1_names(project)
    daemon = daemons()
    daemon.wait_for("the first build", lambda: "The good story" in feed_titles(project))
    project.seed("later.txt", story("The later story"))
    daemon.wait_for("the dropped file", lambda: "The later story" in feed_titles(project))
    os.rename(os.fsencode(project.seeds / "later.txt"), os.fsencode(project.seeds) + b"/l\xe4ter.txt")
    daemon.wait_log("seeds/l\\xe4ter.txt: file: name is not valid UTF-8; rename it")
    assert daemon.stop() == 0
    assert FILE_LINE in daemon.log
    assert "Traceback" not in daemon.log
    assert "UnicodeEncodeError" not in daemon.log


def test_a_seeds_folder_whose_real_name_is_not_utf8_is_a_configuration_error(project: Project) -> None:
    os.mkdir(os.fsencode(project.root) + b"/r\xe9el")
    project.seeds.rmdir()
    project.seeds.symlink_to(os.fsdecode(b"r\xe9el"))
    result = project.cli("build")
    assert (result.code, result.out) == (2, "")
    assert result.err == (
        f"Error: {project.config_path}: paths.seeds: {project.root}/r\\xe9el is not a valid UTF-8 name; "
        "rename it\n"
    )


def test_a_name_that_is_not_utf8_does_not_blind_the_watcher(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """watchfiles raises on an event for such a name and loses the changes it held: the good file
    dropped with it is published all the same, and so is one dropped after."""
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("first.txt", story("The first story"))
    daemon = daemons()
    daemon.wait_for("the first build", lambda: "The first story" in feed_titles(project))
    project.seed("sentinel.txt", story("The sentinel story"))  # published: the watcher is live
    daemon.wait_for("the watcher", lambda: "The sentinel story" in feed_titles(project))
    with open(os.fsencode(project.seeds) + b"/caf\xe9.txt", "wb") as f:
        f.write(story("The coffee story").encode())
    project.seed("second.txt", story("The second story"))
    daemon.wait_for("the file dropped with it", lambda: "The second story" in feed_titles(project))
    daemon.wait_log(FILE_LINE)
    project.seed("third.txt", story("The third story"))
    daemon.wait_for("a file dropped later", lambda: "The third story" in feed_titles(project))
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log
