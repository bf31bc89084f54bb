"""A mail server that cannot be reached is the connection's failure, never the messages': no
attempt is counted and no retry time moved, so the next run starts at once; connections failing
together are one round of a backoff, not a quick stop; every long wait is logged with its end."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta

import pytest

from publisher import pipeline
from publisher.errors import DeliveryError
from publisher.store import db
from tests.conftest import Project
from tests.support.smtp import HangUpServer, SilentServer, SmtpServer
from tests.test_delivery import SEND_AT, address, setup


def rows(project: Project) -> list[tuple[str, int, datetime]]:
    """(status, attempts, retry_at) of every ledger row."""
    conn = db.connect(project.settings().db_path)
    try:
        found = conn.execute("SELECT status, attempts, retry_at FROM ledger ORDER BY subscriber_id")
        return [(str(s), int(a), db.from_db_time(str(r))) for s, a, r in found]
    finally:
        conn.close()


class Records(logging.Handler):
    """The delivery log's records, collected on its own logger (the CLI calls in `setup` replace
    the root logger's handlers, pytest's capture included)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Records:
        logger = logging.getLogger("publisher.delivery")
        self.level_before = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("publisher.delivery")
        logger.removeHandler(self)
        logger.setLevel(self.level_before)

    def saying(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]


def closed_port() -> int:
    with SilentServer() as closed:
        return closed.port


def test_a_refused_run_leaves_every_message_due_at_once_and_uncounted(project: Project) -> None:
    """Connection refused until the run gives up: every row pending, 0 attempts, and due no later
    than the moment the run ended (the run's backoff is not written into the messages), so a new
    `--send` against a working server sends everything without waiting."""
    port = closed_port()
    setup(project, port, 6, max_attempts=3, retry_backoff=0.3)
    settings = project.settings()
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=rf"127\.0\.0\.1:{port}.*6 message\(s\) left pending"):
        pipeline.digest_send(settings, SEND_AT, backfill=5)
    ended = SEND_AT + timedelta(seconds=time.monotonic() - started)
    found = rows(project)
    assert [(status, attempts) for status, attempts, _ in found] == [("pending", 0)] * 6
    assert all(retry_at <= ended for _, _, retry_at in found), (found, ended)
    with SmtpServer() as server:
        working = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"port": server.port})})
        report = pipeline.digest_send(working, ended)  # the operator's next run, right after
        assert report.sent == 6 and report.pending == 0
        assert server.by_recipient() == {address(i): 1 for i in range(6)}
    assert [(status, attempts) for status, attempts, _ in rows(project)] == [("sent", 1)] * 6


def test_four_connections_failing_at_once_are_one_round_of_a_logged_backoff(project: Project) -> None:
    """Four connections hung up on together: one round, a pause, then the next round, and so on
    to max_attempts rounds (not a stop after the first four failures); each pause is logged with
    its reason, its length and its end."""
    with HangUpServer() as server:
        setup(project, server.port, 8, concurrency=4, max_attempts=3, retry_backoff=0.3)
        with Records() as log, pytest.raises(DeliveryError, match=r"stopped sending: .*8 message\(s\) left"):
            pipeline.digest_send(project.settings(), SEND_AT, backfill=5)
        accepted = server.accepted
    waits = [r.getMessage() for r in log.saying("before trying again")]
    assert len(waits) == 2, waits  # rounds 1 and 2 paused; round 3 stopped the run
    assert "round 1 of 3" in waits[0] and "waiting 0.3 s, until " in waits[0]
    assert "round 2 of 3" in waits[1] and "waiting 0.6 s, until " in waits[1]
    assert f"cannot talk to SMTP server 127.0.0.1:{server.port}" in waits[0]
    assert accepted > 4  # the server was tried again after the first round
    assert [(status, attempts) for status, attempts, _ in rows(project)] == [("pending", 0)] * 8


def test_a_wait_longer_than_two_seconds_says_why_and_until_when(project: Project) -> None:
    """retry_backoff 2.5: the pause after the first refused round is logged (WARNING) with the
    server's failure and the moment sending resumes."""
    port = closed_port()
    setup(project, port, 2, concurrency=1, max_attempts=2, retry_backoff=2.5)
    with Records() as log, pytest.raises(DeliveryError):
        pipeline.digest_send(project.settings(), SEND_AT, backfill=5)
    [wait] = log.saying("before trying again")
    assert wait.levelno == logging.WARNING
    text = wait.getMessage()
    assert f"cannot talk to SMTP server 127.0.0.1:{port}: Connection refused" in text
    until = re.search(r"until (\S+),", text)
    assert until is not None
    assert datetime.fromisoformat(until.group(1)) - SEND_AT >= timedelta(seconds=2)


def test_a_long_wait_for_a_deferred_message_is_logged_with_its_end(project: Project) -> None:
    """A 451 with retry_backoff 2.5: nothing else left to send, so the run waits for the retry;
    that wait is logged once with its end, and the message then goes out."""
    from tests.support.smtp import Behaviour

    behaviour = Behaviour(rcpt=lambda a, seen: "451 4.7.1 greylisted" if seen == 1 else None)
    with SmtpServer(behaviour) as server:
        setup(project, server.port, 1, concurrency=1, max_attempts=3, retry_backoff=2.5)
        with Records() as log:
            report = pipeline.digest_send(project.settings(), SEND_AT, backfill=5)
        assert report.sent == 1
    waits = [r.getMessage() for r in log.saying("to retry")]
    assert len(waits) == 1 and "waiting until " in waits[0], waits
