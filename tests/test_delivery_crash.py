"""Signals to a real `publisher digest --send` process mid-digest (200 recipients). SIGKILL, twice,
then a run to the end: every recipient has the digest, and only messages that were `sending` at a
kill (at most one per connection) came twice. SIGTERM: a clean stop, and no duplicates at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta

from publisher.store import db
from tests.conftest import NOW, Project
from tests.support.digests import markdown
from tests.support.smtp import Behaviour, SmtpServer

SEND_AT = NOW + timedelta(minutes=1)
READERS = 200
CONCURRENCY = 4


def start_send(project: Project, now: datetime = SEND_AT) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PUBLISHER_NOW": now.isoformat()}
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), "-q"]
    return subprocess.Popen(
        [*command, "digest", "--send", "--backfill", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def sending_rows(project: Project) -> set[str]:
    conn = db.connect(project.settings().db_path)
    try:
        rows = conn.execute(
            "SELECT s.email FROM ledger l JOIN subscribers s ON s.id = l.subscriber_id "
            "WHERE l.status = 'sending'"
        )
        return {str(r[0]) for r in rows}
    finally:
        conn.close()


def prepare(project: Project, port: int) -> list[str]:
    """SMTP to `port` at 150 messages/s (so a signal lands mid-digest), one article, READERS people."""
    project.configure(
        f"""
        [delivery]
        transport = "smtp"
        concurrency = {CONCURRENCY}
        rate_limit = 150

        [smtp]
        host = "127.0.0.1"
        port = {port}
        timeout = 5
        """
    )
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    people = [f"reader{i:03d}@example.org" for i in range(READERS)]
    (project.root / "people.csv").write_text("email\n" + "\n".join(people) + "\n", encoding="utf-8")
    assert project.cli("subscribers", "import", str(project.root / "people.csv")).code == 0
    return people


def test_sigterm_stops_between_messages_and_the_next_run_finishes_without_duplicates(
    project: Project,
) -> None:
    """SIGTERM: the run finishes the messages in hand, leaves no row `sending`, exits 1 saying
    what is pending; the next run sends the rest, and nobody gets two."""
    with SmtpServer() as server:
        people = prepare(project, server.port)
        process = start_send(project)
        server.wait_for(40, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 1, err.decode()
        assert b"pending: run `publisher digest --send` to resume" in err
        assert sending_rows(project) == set()
        assert len(server.messages()) < READERS
        final = start_send(project)
        final.communicate(timeout=60)
        assert final.returncode == 0
    assert server.by_recipient() == dict.fromkeys(people, 1)


def test_sigkill_mid_send_then_resume_reaches_everyone_once(project: Project) -> None:
    with SmtpServer() as server:
        people = prepare(project, server.port)
        in_flight_at_kills: set[str] = set()
        for kill_after in (30, 110):
            process = start_send(project)
            try:
                server.wait_for(kill_after, timeout=60)
            finally:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
            assert process.returncode == -signal.SIGKILL
            assert len(server.messages()) < READERS, "the kill came after the end"
            in_flight = sending_rows(project)
            assert len(in_flight) <= CONCURRENCY
            in_flight_at_kills |= in_flight

        final = start_send(project)
        out, err = final.communicate(timeout=60)
        assert final.returncode == 0, err.decode()
        assert out == b""  # -q: the summary only when something did not go out

    counts = Counter(server.by_recipient())
    assert set(counts) == set(people), "somebody was skipped"
    twice = {who for who, n in counts.items() if n > 1}
    assert all(n <= 2 for n in counts.values())
    assert twice <= in_flight_at_kills, "a duplicate outside the documented window"
    assert len(twice) <= 2 * CONCURRENCY
    assert sending_rows(project) == set()


def test_a_message_resent_after_sigkill_is_byte_identical_to_the_first_copy(project: Project) -> None:
    """The server takes a message's data in, and the sender is killed before the answer reaches
    it: that message is certainly in the duplicate window. The next run, minutes later, sends it
    again, and the server receives exactly the same bytes both times (Date, Message-ID, boundary,
    links: nothing derived from the moment of sending)."""
    process: list[subprocess.Popen[bytes]] = []
    killed = threading.Event()

    def kill_on_the_20th() -> None:  # in the server, after the data, before the 250
        if len(server.messages()) == 20 and not killed.is_set():
            killed.set()
            process[0].send_signal(signal.SIGKILL)
            process[0].wait(10)

    with SmtpServer(Behaviour(on_data=kill_on_the_20th)) as server:
        prepare(project, server.port)
        process.append(start_send(project))
        assert process[0].wait(60) == -signal.SIGKILL
        in_flight = sending_rows(project)
        assert in_flight, "the killed run left no message in flight"
        later = start_send(project, SEND_AT + timedelta(minutes=7))
        _, err = later.communicate(timeout=60)
        assert later.returncode == 0, err.decode()
    copies: dict[str, list[bytes]] = {}
    for message in server.messages():
        copies.setdefault(message.recipients[0], []).append(message.data)
    twice = {who: data for who, data in copies.items() if len(data) > 1}
    assert twice and set(twice) <= in_flight
    for who, (first, second) in twice.items():
        assert first == second, f"{who}: the resent copy differs from the first"
    assert len(copies) == READERS
