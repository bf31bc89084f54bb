"""Fail closed on lost state (issue 11, points 1 and 2): every command that uses the state folder,
the server and the daemon included, refuses to start when the database was lost, rather than
running on an empty one; `status` says so with exit 1. Commands run as users run them: a process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from publisher import output
from publisher.store import db
from tests.conftest import NOW, Project
from tests.support.serving import serve_process

# Every command that opens the state; serve and run would otherwise start and keep running.
COMMANDS = [
    ("serve", "--port", "0"),
    ("run",),
    ("subscribers", "list"),
    ("subscribers", "add", "bob@example.org"),
    ("digest", "--send"),
    ("digest", "--preview"),
    ("status",),
    ("build",),
    ("inbound",),
]


def publisher(project: Project, *args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    """`publisher --config … ARGS` as a process; a command that does not refuse would run on until
    the timeout (serve, run), which fails the test. `secret`: PUBLISHER_SECRET for it."""
    env = {**os.environ, "PUBLISHER_NOW": NOW.isoformat()}
    env.pop("PUBLISHER_SECRET", None)
    if secret is not None:
        env["PUBLISHER_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def state_files(project: Project) -> dict[str, bytes]:
    return {
        str(p.relative_to(project.state)): p.read_bytes()
        for p in sorted(project.state.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


@pytest.fixture
def lost(project: Project) -> Path:
    """A site that built and had a subscriber, whose database file is then gone (the marker stays)."""
    project.seed("one.txt", "date 2025-02-20 The harbour board met.\n")
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    database = project.settings().db_path
    for path in project.state.glob("publisher.sqlite3*"):
        if path != db.marker_path(database):
            path.unlink()
    return database


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_refuses_a_lost_database(project: Project, lost: Path, argv: tuple[str, ...]) -> None:
    before = state_files(project)
    result = publisher(project, *argv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == (
        f"Error: {lost}: the state database is missing, but this state folder held one "
        "(publisher.sqlite3.exists is there) (restore it from a backup, or run with --recreate-database "
        "to start over with no subscribers)\n"
    )
    assert result.stdout == ""
    assert not lost.exists()
    assert state_files(project) == before  # no database, no secret.key, nothing


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_every_command_refuses_an_empty_database_file(project: Project, argv: tuple[str, ...]) -> None:
    project.state.mkdir()
    database = project.settings().db_path
    database.write_bytes(b"")
    result = publisher(project, *argv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(
        f"Error: {database}: the state database is an empty file (0 bytes); refusing to create"
    )
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert database.stat().st_size == 0
    assert sorted(p.name for p in project.state.iterdir() if p.name != "lock") == ["publisher.sqlite3"]


def test_the_operator_can_start_over_and_serve(project: Project, lost: Path, tmp_path: Path) -> None:
    assert publisher(project, "--recreate-database", "subscribers", "list").returncode == 0
    assert lost.is_file()
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert httpx.get(f"{url}subscribe", timeout=10).status_code == 200


def test_a_new_project_still_starts(project: Project, tmp_path: Path) -> None:
    """No database ever (no marker): serve starts and makes what it needs; status says nothing is
    built, with exit 0."""
    status = publisher(project, "status")
    assert status.returncode == 0 and "no state database yet" in status.stdout
    project.feeds.mkdir()  # serve refuses a site with no feeds/ at all (test_serve_process.py)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert httpx.get(f"{url}subscribe", timeout=10).status_code == 200
    database = project.settings().db_path
    assert database.is_file() and db.marker_path(database).is_file()
    assert (project.state / "secret.key").is_file()


# --- the site secret is never replaced behind the operator's back -----------------------------


MISSING_KEY = (
    "the token secret is missing, but this site has signed links with one (every unsubscribe and "
    "confirmation link already mailed needs it); refusing to make a new one (restore it from a backup, "
    "or set PUBLISHER_SECRET to the secret it held; run with --new-secret-key to make a new one, which "
    "voids those links)\n"
)


def mailed(project: Project, secret: str | None = None) -> None:
    """A site that has mailed a digest (each message with its signed unsubscribe link)."""
    project.seed("one.txt", "date 2025-02-20 The harbour board met.\n")
    assert publisher(project, "subscribers", "add", "anna@example.org").returncode == 0
    assert publisher(project, "build").returncode == 0
    sent = publisher(project, "digest", "--send", "--backfill", "1", secret=secret)
    assert sent.returncode == 0 and "outbox/ 1," in sent.stdout, sent.stdout + sent.stderr


@pytest.mark.parametrize("argv", [("serve", "--port", "0"), ("run",), ("digest", "--send")], ids=" ".join)
def test_a_lost_secret_key_is_refused_not_replaced(
    project: Project, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    mailed(project)
    key = project.state / "secret.key"
    old = key.read_bytes()
    key.unlink()
    before = set(state_files(project))
    result = publisher(project, *argv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr == f"Error: {key}: {MISSING_KEY}"
    assert not key.exists() and set(state_files(project)) <= before | {
        "publisher.sqlite3-wal",
        "publisher.sqlite3-shm",
    }
    # Restored from the backup: it starts, and the links already mailed work.
    key.write_bytes(old)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert httpx.get(f"{url}subscribe", timeout=10).status_code == 200


def test_the_operator_can_ask_for_a_new_secret_key(project: Project, tmp_path: Path) -> None:
    mailed(project)
    key = project.state / "secret.key"
    old = key.read_bytes()
    key.unlink()
    assert publisher(project, "serve", "--port", "0").returncode == 1
    fresh = publisher(project, "--new-secret-key", "digest", "--send")
    assert fresh.returncode == 0, fresh.stderr
    assert "a new token secret will be made (--new-secret-key)" in fresh.stderr
    assert key.is_file() and key.read_bytes() != old
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert httpx.get(f"{url}subscribe", timeout=10).status_code == 200
    key.unlink()  # the new one is recorded: losing it is refused in turn
    assert publisher(project, "serve", "--port", "0").stderr == f"Error: {key}: {MISSING_KEY}"


def test_a_secret_from_the_environment_is_missed_too(project: Project) -> None:
    """Links signed with PUBLISHER_SECRET; started later without it (and no secret.key): refused."""
    mailed(project, secret="a-long-enough-secret-for-tokens")
    assert not (project.state / "secret.key").exists()
    result = publisher(project, "serve", "--port", "0")
    assert result.returncode == 1 and result.stderr.endswith(MISSING_KEY)
    assert not (project.state / "secret.key").exists()


def test_a_database_from_before_the_record_counts_its_sends(project: Project) -> None:
    """A database whose send ledger holds messages but that never recorded its secret (an older
    release): a missing secret.key is refused all the same."""
    mailed(project)
    conn = sqlite3.connect(project.settings().db_path)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'tokens.secret'")
    conn.close()
    (project.state / "secret.key").unlink()
    result = publisher(project, "serve", "--port", "0")
    assert result.returncode == 1 and result.stderr.endswith(MISSING_KEY)


# --- status counts what is out now ----------------------------------------------------------------


def story(title: str, *, draft: bool = False) -> str:
    flag = "draft: true\n" if draft else ""
    return f'---\ntitle: "{title}"\ndate: 2025-02-20\n{flag}---\n\nThe harbour board met about {title}.\n'


def test_status_counts_only_articles_that_are_out_now(project: Project) -> None:
    """An article withdrawn after it was published (made a draft again, or its file deleted) is no
    longer published, though it went live once; one whose build was killed is not out yet."""
    for name in ("one", "two", "three", "four"):
        project.seed(f"{name}.md", story(f"Story {name}"))
    assert project.cli("build").code == 0
    assert project.cli("status").out.splitlines()[0] == (
        "Articles:    4 published, 0 waiting (embargoed or draft), 0 removed"
    )
    project.seed("two.md", story("Story two", draft=True))
    (project.seeds / "three.md").unlink()
    assert project.cli("build").code == 0
    pages = sorted(p.stem for p in (project.feeds / "articles").glob("*.html"))
    assert len(pages) == 2
    result = project.cli("status")
    assert result.code == 0
    assert result.out.splitlines()[0] == "Articles:    2 published, 1 waiting (embargoed or draft), 1 removed"

    def killed(step: str, path: Path) -> None:
        if step == "rename" and path.name == "atom.xml":
            raise KeyboardInterrupt  # stands for kill -9 after the pages were renamed

    project.seed("five.md", story("Story five"))
    with output.faults(killed):
        assert project.cli("build").code == 130
    assert len(list((project.feeds / "articles").glob("*.html"))) == 3
    data = json.loads(project.cli("status", "--json").out)
    assert (data["published"], data["waiting"], data["removed"]) == (2, 2, 1)
    assert project.cli("build").code == 0
    data = json.loads(project.cli("status", "--json").out)
    assert (data["published"], data["waiting"], data["removed"]) == (3, 1, 1)


# --- serve refuses a site that was never built --------------------------------------------------


def test_serve_refuses_a_site_never_built(project: Project, tmp_path: Path) -> None:
    """Without feeds/ the server started and answered every request with a 404."""
    result = publisher(project, "serve", "--port", "0")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: {project.feeds}: the feeds folder does not exist, so there is nothing to serve "
        "(run `publisher build` first, or fix paths.feeds)\n"
    )
    project.feeds.write_text("not a folder", encoding="utf-8")
    result = publisher(project, "serve", "--port", "0")
    assert (result.returncode, result.stderr) == (
        1,
        f"Error: {project.feeds}: the feeds folder is not a folder (fix paths.feeds)\n",
    )
    project.feeds.unlink()
    assert publisher(project, "build").returncode == 0
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert httpx.get(f"{url}subscribe", timeout=10).status_code == 200


def test_serve_refuses_the_built_in_example_site(project: Project) -> None:
    """Without [site] title and base_url, confirmation mail would come from "Example News" with
    links to news.example.org: serve refuses to start (exit 2), as digest --send does."""
    assert publisher(project, "build").returncode == 0
    project.unset_site("base_url")
    result = publisher(project, "serve", "--port", "0")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: site.base_url: not set; the confirmation mail serve sends names the site and links to "
        "it, so set them in [site] (the built-in values are an example's)\n"
    )


@pytest.mark.parametrize("command", ["build", "run"])
def test_build_and_run_refuse_the_built_in_example_site(project: Project, command: str) -> None:
    """Ids and feed addresses are minted from [site] and never change: a build without it made
    permanent `tag:news.example.org,…` ids, kept after the operator set their own base_url."""
    project.unset_site("title", "base_url")
    project.seed("one.txt", "date 2025-02-20 A story.\n")
    result = publisher(project, command)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: site.title and site.base_url: not set; ")
    assert not project.feeds.exists() and not (project.state / "publisher.sqlite3").exists()
