"""Who did not get the digest, and why: the send summary, `digest --report` and `status`, against a
real SMTP server on 127.0.0.1 that refuses some recipients for good and defers others."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from publisher.delivery import report
from publisher.store import db, ledger
from tests.conftest import Project
from tests.support.smtp import Behaviour, SmtpServer
from tests.test_delivery import SEND_AT, address, connect, only_digest, setup

REFUSED = {address(1), address(4)}
DEFERRED = {address(2)}


def _answer(recipient: str, offered: int) -> str | None:
    if recipient in REFUSED:
        return "550 5.1.1 no such user"
    if recipient in DEFERRED:
        return "451 4.3.0 mailbox busy, try later"
    return None


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer(Behaviour(rcpt=_answer)) as running:
        yield running


def _send(project: Project, server: SmtpServer, readers: int, *args: str) -> tuple[int, str]:
    setup(project, server.port, readers, max_attempts=2, retry_backoff=0.01)
    result = project.cli("-v" if "-v" in args else "-q", "digest", "--send", "--backfill", "2", now=SEND_AT)
    return result.code, result.out


def test_the_summary_names_each_recipient_who_did_not_get_it_with_the_servers_answer(
    project: Project, server: SmtpServer
) -> None:
    code, out = _send(project, server, 6)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("Digest d-") and "sent 3, failed 3" in lines[0]
    assert lines[1].startswith("Not delivered (d-")
    # Each with the server's own words; a 451 that outlasted max_attempts is a failure too.
    assert lines[2:] == [
        f"  {address(1)}: failed: 550 5.1.1 no such user",
        f"  {address(2)}: failed: gave up after 2 attempts: 451 4.3.0 mailbox busy, try later",
        f"  {address(4)}: failed: 550 5.1.1 no such user",
    ]


def test_the_summary_stops_after_ten_names_and_points_at_the_report(
    project: Project, server: SmtpServer
) -> None:
    """A long list is cut with a count and the command that shows all; -v lists everyone."""
    REFUSED.update(address(i) for i in range(10, 25))
    try:
        code, out = _send(project, server, 30)
        assert code == 0
        named = [line for line in out.splitlines() if line.startswith("  ")]
        assert len(named) == 11
        digest_id = out.split()[1].rstrip(":")
        assert named[-1] == f"  … and 8 more (publisher digest --report {digest_id})"
        full = project.cli("digest", "--report", now=SEND_AT)
        assert full.code == 0
        assert sum(" failed " in line for line in full.out.splitlines()) == 18
    finally:
        REFUSED.difference_update(address(i) for i in range(10, 25))


def test_verbose_names_everyone_who_did_not_get_it(project: Project, server: SmtpServer) -> None:
    REFUSED.update(address(i) for i in range(10, 25))
    try:
        code, out = _send(project, server, 30, "-v")
    finally:
        REFUSED.difference_update(address(i) for i in range(10, 25))
    assert code == 0
    named = [line for line in out.splitlines() if line.startswith("  reader")]
    assert len(named) == 18 and "more (publisher digest --report" not in out


def test_report_prints_every_recipient_and_json_says_the_same(project: Project, server: SmtpServer) -> None:
    _send(project, server, 5)
    table = project.cli("digest", "--report", now=SEND_AT)
    assert table.code == 0, table.err
    rows = table.out.splitlines()
    assert rows[0].startswith("Digest d-") and "'" in rows[0]
    assert rows[0].endswith(" CET")  # the site's timezone (Europe/Paris), as status shows times
    assert rows[1] == "  2 sent, 3 failed"
    by_address = {row.split()[0]: row.split(maxsplit=2)[1:] for row in rows[2:]}
    assert by_address[address(0)][0] == "sent" and by_address[address(0)][1].startswith("250 ")
    assert by_address[address(1)] == ["failed", "550 5.1.1 no such user"]
    assert by_address[address(2)] == ["failed", "gave up after 2 attempts: 451 4.3.0 mailbox busy, try later"]

    as_json = project.cli("digest", "--report", "--json", now=SEND_AT)
    data = json.loads(as_json.out)
    assert data["counts"]["sent"] == 2 and data["counts"]["failed"] == 3
    outcomes = {r["email"]: r["outcome"] for r in data["recipients"]}
    assert outcomes == {
        address(0): "sent",
        address(1): "failed",
        address(2): "failed",
        address(3): "sent",
        address(4): "failed",
    }
    # The same report by its id.
    by_id = project.cli("digest", "--report", data["digest"], "--json", now=SEND_AT)
    assert json.loads(by_id.out) == data


def test_report_of_an_unknown_or_missing_digest_is_one_error_line(
    project: Project, server: SmtpServer
) -> None:
    setup(project, server.port, 1)
    none_yet = project.cli("digest", "--report", now=SEND_AT)
    assert none_yet.code == 1 and none_yet.err == "Error: no digest has been sent yet\n"
    unknown = project.cli("digest", "--report", "d-nope", now=SEND_AT)
    assert unknown.code == 1 and unknown.err.startswith("Error: digest d-nope: never sent")
    misuse = project.cli("digest", "--send", "--json", now=SEND_AT)
    assert misuse.code == 2 and "--json goes with --report" in misuse.err


def test_status_shows_the_last_sends_counts_and_who_did_not_get_it(
    project: Project, server: SmtpServer
) -> None:
    _send(project, server, 5)
    shown = project.cli("status", now=SEND_AT).out
    send_line = next(line for line in shown.splitlines() if line.startswith("Last send:"))
    assert send_line.endswith(": 2 sent, 3 failed")
    assert f"  {address(1)}: failed: 550 5.1.1 no such user" in shown.splitlines()
    data = json.loads(project.cli("status", "--json", now=SEND_AT).out)
    assert data["last_send"] == {"sent": 2, "failed": 3}
    assert data["last_send_problems"][0] == f"{address(1)}: failed: 550 5.1.1 no such user"


def test_a_row_left_waiting_for_its_retry_reads_deferred_with_its_time(
    project: Project, server: SmtpServer
) -> None:
    """What a run stopped between retries leaves (pending, with the server's 4xx on record) is
    reported as deferred, with the time of the next try; a row never tried reads pending."""
    _send(project, server, 3)
    conn = connect(project)
    try:
        digest_id = only_digest(conn)
        ids = {e.email: e.subscriber_id for e in ledger.entries(conn, digest_id)}
        later = SEND_AT + timedelta(minutes=5)
        with db.transaction(conn):
            ledger.defer(
                conn, digest_id, ids[address(2)], "451 4.3.0 mailbox busy", ledger.stamp(SEND_AT), later
            )
            conn.execute(
                "UPDATE ledger SET status = 'pending', reply = '' WHERE digest_id = ? AND subscriber_id = ?",
                (digest_id, ids[address(0)]),
            )
        found = report.build(conn, digest_id)
    finally:
        conn.close()
    assert found is not None
    outcomes = {line.email: (line.outcome, line.retry_at) for line in found.lines}
    assert outcomes[address(2)] == ("deferred", later)
    assert outcomes[address(0)][0] == "pending"
    assert [line.email for line in found.problems] == [address(1), address(2)]
