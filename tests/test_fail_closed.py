"""Fail closed (issue 11, points 1, 2, 3 and 5): when something the operator relies on is missing
or broken, publisher stops with one `Error:` line and changes nothing; "live" means in place."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from publisher import output
from publisher.store import db
from tests.conftest import NOW, Project
from tests.support.digests import markdown

LATER = NOW + timedelta(hours=1)


class Killed(BaseException):
    """Stands for kill -9: nothing below catches it, as nothing survives a real one."""


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def seed_articles(project: Project, count: int) -> None:
    for n in range(count):
        body = f"Story {n}: the harbour board met on day {n} and decided thing number {n}."
        project.seed(f"a{n}.md", markdown(f"Story number {n} about the harbour", f"2025-02-2{n % 8}", body))


def outbox(project: Project) -> list[Path]:
    return sorted((project.state / "outbox").rglob("*.eml")) + sorted(
        p for p in (project.state / "outbox").rglob("*") if p.is_file() and p.parent.name == "new"
    )


# --- point 1: the seeds folder and mass removal ---------------------------------------------------


def test_a_missing_seeds_folder_unpublishes_nothing(project: Project) -> None:
    seed_articles(project, 3)
    assert project.cli("build").code == 0
    before = snapshot(project.feeds)
    project.seeds.rename(project.root / "seeds.bak")
    result = project.cli("build", now=LATER)
    assert result.code == 1
    assert result.err == (
        f"Error: {project.seeds}: the seeds folder does not exist "
        "(check paths.seeds in the configuration, or mount the share it names)\n"
    )
    assert snapshot(project.feeds) == before
    assert project.cli("build", "--full", now=LATER).code == 1
    assert snapshot(project.feeds) == before


def test_seeds_that_is_not_a_folder_is_an_error(project: Project) -> None:
    shutil.rmtree(project.seeds)
    project.seeds.write_text("oops")
    result = project.cli("build")
    assert result.code == 1 and "the seeds folder is not a folder" in result.err
    assert not project.feeds.exists()


def test_an_unreadable_seeds_folder_is_an_error(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root, permissions do not stop a read: the refusal of the system is injected."""
    real = os.scandir

    def refuse(path: object = ".") -> object:
        if Path(str(path)) == project.seeds:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", refuse)
    result = project.cli("build")
    assert result.code == 1
    assert result.err == f"Error: {project.seeds}: the seeds folder cannot be read: Permission denied\n"
    assert not project.feeds.exists()


def test_a_build_that_would_remove_most_of_the_site_refuses(project: Project) -> None:
    seed_articles(project, 4)
    assert project.cli("build").code == 0
    before = snapshot(project.feeds)
    for n in range(3):
        (project.seeds / f"a{n}.md").unlink()
    result = project.cli("build", now=LATER)
    assert result.code == 1
    assert result.err == (
        f"Error: {project.seeds}: 3 of the 4 published articles' files are gone; refusing to unpublish "
        "more than half of the site at once, nothing was changed (if that is what you want, run "
        "`publisher build --allow-mass-removal`)\n"
    )
    assert snapshot(project.feeds) == before
    allowed = project.cli("build", "--allow-mass-removal", now=LATER)
    assert allowed.code == 0, allowed.err
    assert len(list((project.feeds / "articles").glob("*.html"))) == 1


def test_removing_half_of_the_site_is_allowed(project: Project) -> None:
    seed_articles(project, 4)
    assert project.cli("build").code == 0
    for n in range(2):
        (project.seeds / f"a{n}.md").unlink()
    assert project.cli("build", now=LATER).code == 0
    assert len(list((project.feeds / "articles").glob("*.html"))) == 2


# --- point 2: the database is never re-created over a lost one --------------------------------


def test_an_empty_database_file_is_never_replaced(project: Project) -> None:
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    database = project.settings().db_path
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(b"")
    for argv in (("subscribers", "list"), ("build",), ("digest", "--send"), ("status",)):
        result = project.cli(*argv)
        assert result.code == 1, argv
        assert result.err.startswith(
            f"Error: {database}: the state database is an empty file (0 bytes); refusing to create"
        ), result.err
        assert result.err.count("\n") == 1
        assert database.stat().st_size == 0


def test_an_empty_database_file_without_a_marker_is_refused_too(project: Project) -> None:
    project.state.mkdir()
    database = project.settings().db_path
    database.write_bytes(b"")
    result = project.cli("subscribers", "list")
    assert result.code == 1 and "the state database is an empty file" in result.err
    assert database.stat().st_size == 0


def test_a_lost_database_is_an_error_until_the_operator_says_so(project: Project) -> None:
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    database = project.settings().db_path
    marker = db.marker_path(database)
    assert marker.is_file()
    for path in project.state.glob("publisher.sqlite3*"):
        if path != marker:
            path.unlink()
    result = project.cli("subscribers", "list")
    assert result.code == 1
    assert result.err == (
        f"Error: {database}: the state database is missing, but this state folder held one "
        f"(publisher.sqlite3.exists is there) (restore it from a backup, or run with --recreate-database "
        "to start over with no subscribers)\n"
    )
    assert not database.exists()
    assert project.cli("build").code == 1 and not database.exists()
    fresh = project.cli("--recreate-database", "subscribers", "list")
    assert fresh.code == 0, fresh.err
    assert database.is_file() and marker.is_file()
    assert project.cli("subscribers", "list").code == 0


def test_recreate_leaves_a_database_with_data_alone(project: Project) -> None:
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("--recreate-database", "subscribers", "list").out.count("anna@example.org") == 1


# --- point 5: every SQLite error is one line naming the database ----------------------------------


def test_a_damaged_database_is_one_line(project: Project) -> None:
    assert project.cli("build").code == 0
    database = project.settings().db_path
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(b"this is not a database" * 100)
    for argv in (("subscribers", "list"), ("build",), ("digest", "--send")):
        result = project.cli(*argv)
        assert result.code == 1, argv
        assert result.err.startswith(f"Error: {database}: ") and result.err.count("\n") == 1, result.err


def test_sqlite_errors_inside_a_command_name_the_database(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk under state/ in the middle of a transaction: one line, not a traceback, and the
    original cause rather than "cannot rollback - no transaction is active"."""
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    real = db.connect

    def tiny(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        conn = real(path, readonly=readonly)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL
        return conn

    monkeypatch.setattr(db, "connect", tiny)
    rows = "\n".join(f"reader{i}@example.org,Reader number {i} " + "x" * 40 for i in range(3000))
    (project.root / "many.csv").write_text("email,name\n" + rows + "\n")
    result = project.cli("subscribers", "import", str(project.root / "many.csv"))
    assert result.code == 1
    database = project.settings().db_path
    assert result.err == (
        f"Error: {database}: database or disk is full (free space on the file system holding "
        f"{database.parent}; nothing was recorded)\n"
    )
    seeded = seed_and_build = project.cli("build")
    assert seed_and_build.code in (0, 1)
    if seeded.code == 1:
        assert seeded.err.startswith(f"Error: {database}: ")


def test_a_read_only_database_says_permissions_not_damage(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as a user who may not write the database: the line says so (nothing is damaged)."""
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    real = db.connect

    def read_only(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        conn = real(path, readonly=readonly)
        conn.execute("PRAGMA query_only = 1")  # SQLite's own SQLITE_READONLY, as for a 0444 file
        return conn

    monkeypatch.setattr(db, "connect", read_only)
    result = project.cli("subscribers", "add", "ben@example.org")
    assert result.code == 1
    database = project.settings().db_path
    assert result.err.startswith(f"Error: {database}: attempt to write a readonly database (this user may")
    assert "check their owner and permissions" in result.err and result.err.count("\n") == 1


# --- point 3: live means in place ---------------------------------------------------------------


def test_a_killed_build_puts_nothing_in_a_digest(project: Project) -> None:
    """A build killed after its pages were renamed but before the feeds were: its articles are not
    out, no digest mails them; the next build completes and the digest after it does."""
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("digest", "--send").code == 0  # the first run sets the baseline
    seed_articles(project, 3)

    def kill_at_atom(step: str, path: Path) -> None:
        if step == "rename" and path.name == "atom.xml":
            raise Killed

    with output.faults(kill_at_atom), pytest.raises(Killed):
        project.cli("build", now=LATER)
    assert len(list((project.feeds / "articles").glob("*.html"))) == 3  # pages went first
    result = project.cli("digest", "--send", now=LATER + timedelta(minutes=1))
    assert result.code == 0 and "nothing to send" in result.out
    assert project.cli("build", now=LATER + timedelta(minutes=2)).code == 0
    sent = project.cli("digest", "--send", now=LATER + timedelta(minutes=3))
    assert sent.code == 0 and "outbox/ 1," in sent.out, sent.out + sent.err


def test_a_full_disk_on_feeds_fails_the_build_and_mails_nothing(project: Project) -> None:
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("digest", "--send").code == 0
    seed_articles(project, 5)

    def full(step: str, path: Path) -> None:
        if step == "write" and path.suffix == ".html":
            raise OSError(errno.ENOSPC, "No space left on device")

    with output.faults(full):
        result = project.cli("build", now=LATER)
    assert result.code == 1
    assert result.err.startswith("Error: ") and "No space left on device" in result.err
    assert result.err.count("\n") == 1
    nothing = project.cli("digest", "--send", now=LATER + timedelta(minutes=1))
    assert nothing.code == 0 and "nothing to send" in nothing.out


def test_a_digest_leaves_out_an_article_whose_page_is_gone(project: Project) -> None:
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("digest", "--send").code == 0
    seed_articles(project, 2)
    assert project.cli("build", now=LATER).code == 0
    pages = sorted((project.feeds / "articles").glob("*.html"))
    pages[0].unlink()
    assert project.cli("digest", "--preview", now=LATER + timedelta(minutes=1)).code == 0
    text = (project.state / "preview" / "next-digest.txt").read_text()
    # By page address: a bare stem such as 'a0' can occur inside the digest's id.
    assert f"articles/{pages[1].name}" in text and f"articles/{pages[0].name}" not in text


def test_a_digest_whose_web_version_cannot_be_written_fails(project: Project) -> None:
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("digest", "--send").code == 0
    seed_articles(project, 2)
    assert project.cli("build", now=LATER).code == 0

    def full(step: str, path: Path) -> None:
        if path.parent.name == "digests":
            raise OSError(errno.ENOSPC, "No space left on device")

    with output.faults(full):
        result = project.cli("digest", "--send", now=LATER + timedelta(minutes=1))
    assert result.code == 1
    assert result.err.startswith(f"Error: {project.feeds / 'digests'}") and "No space left" in result.err
    assert not (project.state / "outbox").exists() or not any((project.state / "outbox").rglob("*.*"))
    again = project.cli("digest", "--send", now=LATER + timedelta(minutes=2))
    assert again.code == 0 and "outbox/ 1," in again.out, again.out + again.err
    assert any((project.feeds / "digests").glob("*.html"))
