"""`publisher run` as a real process against a project in tmp_path: watching, settling, embargoes,
signals, the lock. Every wait polls with a deadline; nothing sleeps for a fixed time to get a result."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from tests.conftest import Project

DEADLINE = 60.0  # seconds; generous for a loaded machine, never reached when things work


class Daemon:
    """A `publisher run` subprocess whose log goes to a file the test can read at any time."""

    def __init__(self, project: Project, *args: str, now: datetime | None = None) -> None:
        self.project = project
        self.log_path = project.root / f"daemon-{time.monotonic_ns()}.log"
        env = dict(os.environ)
        env.pop("PUBLISHER_NOW", None)
        if now is not None:
            env["PUBLISHER_NOW"] = now.isoformat()
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-X",
                "faulthandler",
                "-m",
                "publisher",
                "--config",
                str(project.config_path),
                *args,
                "run",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, what: str, predicate: Callable[[], bool], deadline: float = DEADLINE) -> None:
        end = time.monotonic() + deadline
        while not predicate():
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited ({self.proc.returncode}) waiting for {what}:\n{self.log}")
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {what}:\n{self.log}")
            time.sleep(0.02)

    def wait_log(self, text: str, count: int = 1) -> None:
        self.wait_for(repr(text), lambda: self.log.count(text) >= count)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to the log
            self.proc.wait(DEADLINE)
            pytest.fail(f"the daemon did not stop on SIGTERM:\n{self.log}")
        finally:
            self.kill()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def daemons(project: Project) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*args: str, now: datetime | None = None) -> Daemon:
        daemon = Daemon(project, *args, now=now)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def feed_titles(project: Project) -> list[str]:
    path = project.feeds / "atom.xml"
    if not path.exists():
        return []
    return [entry.title for entry in feedparser.parse(path.read_bytes()).entries]


def story(title: str, paragraphs: int = 1) -> str:
    body = "\n\n".join(f"Paragraph {i} of the story about {title}." for i in range(1, paragraphs))
    return f"date 2025-02-20 {title}.\n\n{body}\n"


def test_a_dropped_file_appears_in_the_feed_and_sigterm_exits_cleanly(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("first.txt", story("The first story"))
    daemon = daemons("--log-format", "json")
    daemon.wait_for("the first build", lambda: "The first story" in feed_titles(project))
    project.seed("second.txt", story("The second story"))
    daemon.wait_for("the dropped file", lambda: "The second story" in feed_titles(project))
    assert daemon.stop() == 0
    lines = [json.loads(line) for line in daemon.log.splitlines()]  # every line is one JSON object
    events = [line["event"] for line in lines]
    assert events[0].startswith("daemon started")
    assert "SIGTERM received: stopping" in events
    assert events[-1] == "daemon stopped"
    assert [line for line in lines if line["level"] not in ("info", "debug")] == []


def test_a_slow_writer_is_never_published_half_written(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """The file grows in pieces with pauses shorter than `settle`; no version of atom.xml we see may
    hold the story without its last paragraph."""
    project.configure("[daemon]\nsettle = 1.0\n")
    project.seed("other.txt", story("Something else"))
    daemon = daemons()
    daemon.wait_for("the first build", lambda: "Something else" in feed_titles(project))
    seen: list[bytes] = []
    done = threading.Event()

    def watch_feed() -> None:
        atom = project.feeds / "atom.xml"
        while not done.is_set():
            data = atom.read_bytes()  # written atomically: every read is one whole version
            if not seen or seen[-1] != data:
                seen.append(data)

    observer = threading.Thread(target=watch_feed)
    observer.start()
    try:
        text = story("The slow story", paragraphs=12)
        pieces = [text[i : i + 40] for i in range(0, len(text), 40)]
        with (project.seeds / "slow.txt").open("w", encoding="utf-8") as f:
            for piece in pieces:
                f.write(piece)
                f.flush()
                time.sleep(0.02)  # the slow writer itself, not a wait for a result
        daemon.wait_for("the slow file", lambda: "The slow story" in feed_titles(project))
    finally:
        done.set()
        observer.join()
    seen.append((project.feeds / "atom.xml").read_bytes())  # the version the wait above saw
    with_story = [v for v in seen if b"The slow story" in v]
    assert with_story, "the story never showed up in an observed atom.xml"
    for version in with_story:
        assert b"Paragraph 11 of the story" in version
    assert daemon.stop() == 0


def test_an_embargoed_article_goes_live_at_its_time(project: Project, daemons: Callable[..., Daemon]) -> None:
    """Dated a few seconds ahead: not in the first build, in the feed once its moment passes, with
    no file event in between."""
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("now.txt", story("Already out"))
    daemon = daemons()
    daemon.wait_for("the first build", lambda: "Already out" in feed_titles(project))
    moment = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    project.seed(
        "later.md",
        f"---\ntitle: Under embargo\ndate: {moment.isoformat()}\n---\nNot to be read before its time.\n",
    )
    daemon.wait_log("next embargoed article goes live at")
    assert "Under embargo" not in feed_titles(project)
    daemon.wait_for("the embargo to end", lambda: "Under embargo" in feed_titles(project))
    assert datetime.now(UTC) >= moment
    assert "embargo ends" in daemon.log
    assert daemon.stop() == 0


def test_a_pinned_clock_drives_the_embargo(project: Project, daemons: Callable[..., Daemon]) -> None:
    """PUBLISHER_NOW a few seconds before midnight in the site's zone: a plain-text article dated the
    next day goes live at that midnight."""
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("tomorrow.txt", "date 2025-03-02 Tomorrow's story is here.\n")
    project.seed("today.txt", "date 2025-03-01 Today's story is here.\n")
    # Europe/Paris is UTC+1 in March: midnight there is 23:00 UTC.
    daemon = daemons(now=datetime(2025, 3, 1, 22, 59, 57, tzinfo=UTC))
    daemon.wait_for("the first build", lambda: "Today's story is here" in feed_titles(project))
    assert "Tomorrow's story is here" not in feed_titles(project)
    daemon.wait_for("midnight", lambda: "Tomorrow's story is here" in feed_titles(project))
    assert daemon.stop() == 0


def test_a_second_instance_and_a_cron_digest_are_refused_with_exit_code_3(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    first = daemons()
    first.wait_log("daemon started")
    second = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "run"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert second.returncode == 3
    assert second.stderr.strip() == (
        f"Error: {project.state.resolve()} is in use by another publisher process "
        f"(pid {first.proc.pid}, publisher run) "
        "(let it finish or stop the daemon; --wait SECONDS waits for the lock)"
    )
    # A cron digest while the daemon runs: refused the same way, instead of a double send.
    cron = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "digest", "--send"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert cron.returncode == 3
    assert f"(pid {first.proc.pid}, publisher run)" in cron.stderr
    assert first.stop() == 0


def test_a_failing_build_is_logged_and_the_daemon_carries_on(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("one.txt", story("Story one"))
    daemon = daemons()
    daemon.wait_for("the first build", lambda: "Story one" in feed_titles(project))
    atom = project.feeds / "atom.xml"
    atom.unlink()
    atom.mkdir()  # the feed cannot be replaced: every build fails until this is gone
    project.seed("two.txt", story("Story two"))
    daemon.wait_log("ERROR daemon: build failed:")
    failure = next(line for line in daemon.log.splitlines() if "build failed" in line)
    assert "atom.xml" in failure and "Traceback" not in daemon.log
    atom.rmdir()
    project.seed("three.txt", story("Story three"))
    daemon.wait_for("recovery", lambda: {"Story two", "Story three"} <= set(feed_titles(project)))
    daemon.wait_log("build works again after 1 failure")
    assert daemon.stop() == 0


def test_sighup_reloads_the_configuration(project: Project, daemons: Callable[..., Daemon]) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("one.txt", story("Story one"))
    daemon = daemons()
    daemon.wait_for("the first build", lambda: "Story one" in feed_titles(project))
    project.config_path.write_text(project.config_path.read_text().replace("Test Gazette", "Renamed Gazette"))
    daemon.proc.send_signal(signal.SIGHUP)

    def retitled() -> bool:
        return feedparser.parse((project.feeds / "atom.xml").read_bytes()).feed.title == "Renamed Gazette"

    daemon.wait_for("the new title", retitled)
    project.config_path.write_text("[site]\ntimezone = 'Mars/Olympus'\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP: configuration not reloaded:")
    project.seed("two.txt", story("Story two"))  # still running on the last good configuration
    daemon.wait_for("a later drop", lambda: "Story two" in feed_titles(project))
    assert daemon.stop() == 0


def test_a_start_and_a_reload_log_one_build_line_each(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """The daemon builds twice at start and after SIGHUP (the second catches files dropped during
    the first); when the second finds nothing changed it says so only at debug level."""
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("one.txt", story("Story one"))
    daemon = daemons()
    daemon.wait_log("first start: no digest owed")  # logged after the second build
    assert daemon.log.count("built: ") == 1, daemon.log
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("no digest owed; next at", count=2)  # the reloaded daemon's start job is done
    assert daemon.log.count("built: ") == 2, daemon.log
    project.seed("two.txt", story("Story two"))  # later builds are logged as before
    daemon.wait_log("built: 1 new")
    assert daemon.stop() == 0
    verbose = daemons("-v")
    verbose.wait_log("no digest owed; next at")
    assert "built: nothing changed" in verbose.log  # still there, at debug level
    assert verbose.stop() == 0


def test_status_after_a_reload_gives_the_real_start_and_the_reload(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """A SIGHUP is not a restart: `status` keeps the daemon's start and names the reload beside it."""
    project.configure("[daemon]\nsettle = 0.1\n")
    began = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
    daemon = daemons(now=began)
    daemon.wait_log("first start: no digest owed")
    before = json.loads(project.cli("status", "--json", now=None).out)
    assert before["daemon_reloaded"] is None and before["daemon_holder"]
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("no digest owed; next at", count=2)
    after = json.loads(project.cli("status", "--json", now=None).out)
    assert after["daemon_started"] == before["daemon_started"]
    assert after["daemon_reloaded"] is not None and after["daemon_reloaded"] >= after["daemon_started"]
    assert after["daemon_stopped"] is None
    text = project.cli("status", now=began + timedelta(minutes=5)).out
    line = next(x for x in text.splitlines() if x.startswith("Daemon:"))
    assert "running (pid" in line and ", started 2025-03-03 07:00 CET" in line, line
    assert ", configuration reloaded 2025-03-03 07:00 CET" in line, line
    assert daemon.stop() == 0
    stopped = json.loads(project.cli("status", "--json", now=None).out)
    assert stopped["daemon_stopped"] is not None

    again = daemons(now=began + timedelta(minutes=30))  # a real start forgets the last reload
    again.wait_log("no digest owed; next at")
    fresh = json.loads(project.cli("status", "--json", now=None).out)
    assert fresh["daemon_reloaded"] is None and fresh["daemon_started"] > before["daemon_started"]
    assert again.stop() == 0


def serving_daemon(project: Project, daemons: Callable[..., Daemon]) -> tuple[Daemon, int]:
    """A daemon with `daemon.serve` on a free port, one story seeded; (it, the port) once serving."""
    with socket.socket() as probe:  # a free port for the config (it wants 1-65535, not 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    project.configure(f"[daemon]\nsettle = 0.1\nserve = true\n\n[serve]\nhost = '127.0.0.1'\nport = {port}\n")
    project.seed("one.txt", story("Served story"))
    daemon = daemons()
    daemon.wait_log(f"serving on http://127.0.0.1:{port}/")
    return daemon, port


def test_daemon_serve_runs_the_http_server_inside_the_daemon(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    daemon, port = serving_daemon(project, daemons)
    daemon.wait_for("the first build", lambda: "Served story" in feed_titles(project))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/atom.xml", timeout=10) as response:
        assert response.status == 200
        body = response.read()
    assert [e.title for e in feedparser.parse(body).entries] == ["Served story"]
    assert daemon.stop() == 0
    assert "Traceback" not in daemon.log


def test_sighup_with_a_server_that_cannot_start_keeps_the_running_one(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """A template the server needs, broken after the start: the reload is refused with one line
    and the server of the last good configuration answers on; a port in use is refused too."""
    daemon, port = serving_daemon(project, daemons)
    (project.root / "templates").mkdir(exist_ok=True)
    (project.root / "templates" / "subscribe.html.j2").write_text("{% if %}", encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("the previous one carries on")
    refusal = next(line for line in daemon.log.splitlines() if "not reloaded" in line)
    assert "subscribe.html.j2" in refusal and "Traceback" not in daemon.log
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/subscribe", timeout=10) as response:
        assert response.status == 200
    (project.root / "templates" / "subscribe.html.j2").unlink()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = project.config_path.read_text(encoding="utf-8")
        project.config_path.write_text(config.replace(f"port = {port}", f"port = {taken.getsockname()[1]}"))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_log("the previous one carries on", count=2)
        daemon.wait_log(f"serving on http://127.0.0.1:{port}/", count=2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/subscribe", timeout=10) as response:
        assert response.status == 200
    assert daemon.proc.poll() is None and "Traceback" not in daemon.log
    # Neither refused reload is a reload, nor a new start, in what status reports.
    state = json.loads(project.cli("status", "--json", now=None).out)
    assert state["daemon_reloaded"] is None and state["daemon_stopped"] is None, state
    assert daemon.stop() == 0


def test_a_bad_digest_schedule_stops_run_before_it_starts(project: Project) -> None:
    project.configure('[digest]\nschedule = "0 25 * * *"\n')
    result = project.cli("run")
    assert result.code == 2
    expected = f"Error: {project.config_path}: digest.schedule: hour: 25 is out of range 0-23"
    assert result.err.strip() == expected
    assert not (project.state / "lock").exists()


def test_a_database_error_is_one_logged_line_and_the_daemon_carries_on(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """Issue 11 point 5: a SQLite failure in a daemon job is one log line naming the database
    file and the cause; the daemon keeps running, and a missing seeds folder is the same."""
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("one.txt", story("Story one"))
    daemon = daemons("-v")
    daemon.wait_for("the first build", lambda: "Story one" in feed_titles(project))
    # Both start-up builds done (the second logs at debug level): no job holds the database open,
    # whose WAL a closing connection would checkpoint back over the damage below.
    daemon.wait_log("built:", count=2)
    daemon.wait_log("no digest owed")  # the start job's digest check, which reads it too
    database = project.settings().db_path
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(b"not a database at all " * 200)
    project.seed("two.txt", story("Story two"))
    daemon.wait_log("ERROR daemon: build failed:")
    failure = next(line for line in daemon.log.splitlines() if "build failed" in line)
    assert str(database) in failure and "Traceback" not in daemon.log
    assert daemon.proc.poll() is None
    assert daemon.stop() == 0
