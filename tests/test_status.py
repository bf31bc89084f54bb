"""`publisher status`: published and rejected files, digest times, subscribers, the daemon."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from publisher.lock import state_lock
from publisher.store import db
from tests.conftest import NOW, Project


def test_a_fresh_project_says_nothing_has_run(project: Project) -> None:
    result = project.cli("status")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == "Articles:    0 published, 0 waiting (embargoed or draft), 0 removed"
    assert lines[1] == "Files:       0 in seeds/, 0 rejected"
    assert "Last digest: never" in lines
    # NOW is Saturday 2025-03-01 13:00 in Paris; the default schedule is Mondays 08:00.
    assert "Next digest: 2025-03-03 08:00 CET (in 43 h) (schedule '0 8 * * 1')" in lines
    assert "Subscribers: none" in lines
    assert "Daemon:      never run" in lines
    assert lines[-1].startswith("State:       ") and "no state database yet" in lines[-1]
    assert not (project.state / "publisher.sqlite3").exists()  # status writes nothing


def test_after_a_build_it_counts_articles_rejects_and_subscribers(project: Project) -> None:
    project.seed("good.txt", "date 2025-02-20 A good story.\n")
    project.seed("later.txt", "date 2025-03-05 A story for next week.\n")
    project.seed("bad.txt", "no date line here\n")
    project.cli("build")
    assert project.cli("subscribers", "add", "one@example.org").code == 0
    assert project.cli("subscribers", "add", "two@example.org").code == 0
    assert project.cli("subscribers", "remove", "two@example.org").code == 0

    result = project.cli("status")
    assert result.code == 1  # a file is rejected
    lines = result.out.splitlines()
    assert lines[0] == "Articles:    1 published, 1 waiting (embargoed or draft), 0 removed"
    assert lines[1] == "Files:       3 in seeds/, 1 rejected (as of the last build)"
    assert lines[2].startswith("  seeds/bad.txt: ")
    assert "Subscribers: 1 active, 0 pending, 1 unsubscribed, 0 bounced" in lines

    data = json.loads(project.cli("status", "--json").out)
    assert (data["published"], data["waiting"], data["files"]) == (1, 1, 3)
    assert data["rejected"] == [lines[2].strip()]
    assert data["subscribers"] == {"active": 1, "pending": 0, "unsubscribed": 1, "bounced": 0}
    assert data["next_digest"] == "2025-03-03T07:00:00+00:00"
    assert data["daemon_holder"] is None


def test_it_shows_how_much_the_state_folder_holds(project: Project) -> None:
    """The database, the outbox and the previews all count; a missing folder is 0 bytes."""
    assert "State size:  0 bytes" in project.cli("status").out.splitlines()
    project.seed("good.txt", "date 2025-02-20 A good story.\n")
    assert project.cli("build").code == 0
    (project.state / "outbox" / "new").mkdir(parents=True)
    (project.state / "outbox" / "new" / "m1").write_bytes(b"x" * 2_500_000)
    database = (project.state / "publisher.sqlite3").stat().st_size
    data = json.loads(project.cli("status", "--json").out)
    # SQLite's -wal and -shm files beside the database count too, and change size as it is read.
    assert 2_500_000 + database <= data["state_bytes"] < 2_500_000 + database + 5_000_000
    shown = next(line for line in project.cli("status").out.splitlines() if line.startswith("State size:"))
    assert shown.startswith("State size:  2.") and shown.endswith(" MB")


def test_it_names_the_process_holding_the_state_folder(project: Project) -> None:
    settings = project.settings()
    with state_lock(settings, purpose="publisher run"):
        result = project.cli("status")
        data = json.loads(project.cli("status", "--json").out)
    assert f"Daemon:      running (pid {os.getpid()}, publisher run)" in result.out
    assert data["daemon_holder"] == f"pid {os.getpid()}, publisher run"


def test_it_shows_the_daemons_last_work_and_the_last_digest_slot(project: Project) -> None:
    from publisher.daemon import record

    conn = db.connect(project.settings().db_path)
    try:
        record.started(conn, 4242, datetime(2025, 3, 1, 9, 0, tzinfo=UTC))
        record.worked(
            conn, "build", datetime(2025, 3, 1, 11, 58, tzinfo=UTC), False, "feeds/atom.xml: disk full"
        )
        record.handle_slot(conn, datetime(2025, 2, 24, 7, 0, tzinfo=UTC), "skipped", NOW)
    finally:
        conn.close()
    lines = project.cli("status").out.splitlines()
    assert (
        "Daemon:      not running (last started 2025-03-01 10:00 CET (3 h ago); did not stop cleanly)"
        in lines
    )
    assert "Last work:   build 2025-03-01 12:58 CET (2 min ago), FAILED: feeds/atom.xml: disk full" in lines
    assert "Last slot:   2025-02-24 08:00 CET (5 days ago): skipped" in lines


def test_check_reads_seeds_afresh_instead_of_the_last_build(project: Project) -> None:
    project.seed("good.txt", "date 2025-02-20 A good story.\n")
    project.cli("build")
    project.seed("bad.txt", "no date line here\n")  # after the build
    assert "Files:       1 in seeds/, 0 rejected (as of the last build)" in project.cli("status").out
    result = project.cli("status", "--check")
    assert result.code == 1
    assert "Files:       2 in seeds/, 1 rejected" in result.out.splitlines()
    assert "  seeds/bad.txt: date: missing: " in result.out


def test_a_front_matter_id_given_twice_is_a_rejection_in_status_as_in_the_build(project: Project) -> None:
    article = "---\ntitle: {title}\ndate: 2025-02-2{day}\nid: tag:news.example.org,2025:same\n---\n{title}.\n"
    project.seed("a.md", article.format(title="First", day=1))
    project.seed("b.md", article.format(title="Second", day=2))
    built = project.cli("build")
    assert "1 rejected" in built.out
    result = project.cli("status")
    assert result.code == 1
    assert "Files:       2 in seeds/, 1 rejected (as of the last build)" in result.out
    assert "  seeds/b.md: id: tag:news.example.org,2025:same is already used by seeds/a.md" in result.out
