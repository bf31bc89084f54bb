"""Sending digests through the ledger to a real SMTP server on 127.0.0.1: everyone once, and each
misbehaving server (451, 550, hang-ups, silence, stalls) ends as docs/delivery.md says."""

from __future__ import annotations

import email
import email.policy
import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import pytest

from publisher import pipeline
from publisher.store import db, ledger
from tests.conftest import NOW, Project
from tests.support.digests import markdown
from tests.support.smtp import Behaviour, SilentServer, SmtpServer


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as running:
        yield running


# Digests run a minute after the build: each in-process CLI call restarts the pinned clock, so a
# digest at NOW could see a clock earlier than the build's and miss articles made live at NOW+ε.
SEND_AT = NOW + timedelta(minutes=1)


def address(i: int) -> str:
    return f"reader{i:03d}@example.org"


def setup(project: Project, port: int, readers: int, **delivery: object) -> None:
    """A project with two live articles, `readers` subscribers and SMTP delivery to `port`."""
    options = {"concurrency": 2, "retry_backoff": 0.01, "max_attempts": 3, **delivery}
    lines = "\n".join(f"{k} = {v}" for k, v in options.items())
    project.configure(
        f"""
        [delivery]
        transport = "smtp"
        {lines}

        [smtp]
        host = "127.0.0.1"
        port = {port}
        timeout = 2.0
        """
    )
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    project.seed("two.md", markdown("Zoë Ñandú wins the café prize", "2025-02-28", "Another story."))
    assert project.cli("build").code == 0
    rows = ["email,name"] + [f"{address(i)},Reader {i}" for i in range(readers)]
    (project.root / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert project.cli("subscribers", "import", str(project.root / "people.csv")).code == 0


def connect(project: Project) -> sqlite3.Connection:
    return db.connect(project.settings().db_path)


def only_digest(conn: sqlite3.Connection) -> str:
    ids = [str(r[0]) for r in conn.execute("SELECT digest_id FROM ledger_digests")]
    assert len(ids) == 1
    return ids[0]


def statuses(project: Project) -> dict[str, str]:
    conn = connect(project)
    try:
        return {e.email: e.status for e in ledger.entries(conn, only_digest(conn))}
    finally:
        conn.close()


def test_every_subscriber_gets_the_digest_once(project: Project, server: SmtpServer) -> None:
    """Each active subscriber receives exactly one valid message addressed to them; a second
    --send has nothing to do."""
    setup(project, server.port, 12)
    result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
    assert result.code == 0, result.err
    assert "sent 12, failed 0, skipped 0" in result.out
    assert server.by_recipient() == {address(i): 1 for i in range(12)}
    tokens = set()
    for received in server.messages():
        message = email.message_from_bytes(received.data, policy=email.policy.default)
        assert all(part.defects == [] for part in message.walk())
        assert message["To"].addresses[0].addr_spec == received.recipients[0]
        assert received.sender == "news@news.example.org"
        tokens.add(str(message["List-Unsubscribe"]))
    assert len(tokens) == 12  # a link of its own for each reader
    assert set(statuses(project).values()) == {"sent"}
    again = project.cli("digest", "--send", now=SEND_AT)
    assert again.code == 0
    assert "nothing to send" in again.out
    assert len(server.messages()) == 12


def test_connections_work_side_by_side_with_one_message_in_flight_each(project: Project) -> None:
    """delivery.concurrency connections, one per worker thread: each is used, messages overlap,
    and never more rows are `sending` than there are connections (the duplicate window after a
    crash)."""
    in_flight: list[int] = []

    def count_sending() -> None:  # as the server takes each message in
        reader = sqlite3.connect(f"file:{project.settings().db_path}?mode=ro", uri=True)
        try:
            in_flight.append(
                reader.execute("SELECT count(*) FROM ledger WHERE status = 'sending'").fetchone()[0]
            )
        finally:
            reader.close()

    with SmtpServer(Behaviour(on_data=count_sending)) as server:
        setup(project, server.port, 40, concurrency=4)
        result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert result.code == 0, result.err
        assert server.by_recipient() == {address(i): 1 for i in range(40)}
        assert server.sessions == 4
    assert len(in_flight) == 40
    assert max(in_flight) <= 4
    assert max(in_flight) >= 2  # the connections really worked side by side


def test_temporary_refusals_are_retried_until_accepted(project: Project) -> None:
    """451 to some recipients on their first two offers: retried with backoff, all delivered once."""
    refused = {address(1), address(4)}
    behaviour = Behaviour(rcpt=lambda a, seen: "451 4.7.1 greylisted" if a in refused and seen <= 2 else None)
    with SmtpServer(behaviour) as server:
        setup(project, server.port, 6, max_attempts=4)
        result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert result.code == 0, result.err
        assert server.by_recipient() == {address(i): 1 for i in range(6)}
        assert server.offered[address(1)] == 3
    conn = connect(project)
    entries = {e.email: e for e in ledger.entries(conn, only_digest(conn))}
    conn.close()
    assert entries[address(1)].attempts == 3 and entries[address(1)].status == "sent"
    assert entries[address(0)].attempts == 1


def test_temporary_refusals_give_up_after_max_attempts(project: Project) -> None:
    """A recipient deferred every time is failed after max_attempts, with the server's reply."""
    behaviour = Behaviour(rcpt=lambda a, seen: "452 4.2.2 mailbox full" if a == address(2) else None)
    with SmtpServer(behaviour) as server:
        setup(project, server.port, 4, max_attempts=3)
        result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert result.code == 0, result.err
        assert "sent 3, failed 1" in result.out
        assert server.offered[address(2)] == 3
    conn = connect(project)
    entry = next(e for e in ledger.entries(conn, only_digest(conn)) if e.email == address(2))
    conn.close()
    assert entry.status == "failed"
    assert "gave up after 3 attempts: 452 4.2.2 mailbox full" in entry.reply


def test_permanent_refusal_fails_and_bounces_after_repeats(project: Project) -> None:
    """550 for one address: failed at once (no retry); bounced at the bounce_after-th digest and
    no longer sent to."""
    behaviour = Behaviour(rcpt=lambda a, seen: "550 5.1.1 no such user" if a == address(0) else None)
    with SmtpServer(behaviour) as server:
        setup(project, server.port, 3, bounce_after=2)
        first = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert "sent 2, failed 1" in first.out
        assert server.offered[address(0)] == 1
        for day, title in ((3, "Second week"), (10, "Third week")):
            later = NOW + timedelta(days=day)
            project.seed(f"w{day}.md", markdown(title, later.date().isoformat(), f"News of day {day}."))
            assert project.cli("build", now=later).code == 0
            assert project.cli("digest", "--send", now=later).code == 0
        assert server.offered[address(0)] == 2  # the third digest skipped the bounced address
        assert server.by_recipient()[address(1)] == 3
    listing = project.cli("subscribers", "list")
    bounced = next(line for line in listing.out.splitlines() if address(0) in line)
    assert "bounced" in bounced


def test_dropped_connections_are_survived(project: Project) -> None:
    """The server hangs up before one message's MAIL and after another's data: every recipient
    gets the digest; only the message whose data arrived before the hang-up can come twice."""
    with SmtpServer(Behaviour(drop_on_mail={3}, drop_after_data={6})) as server:
        setup(project, server.port, 10)
        result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert result.code == 0, result.err
        counts = server.by_recipient()
        assert set(counts) == {address(i) for i in range(10)}
        assert sum(counts.values()) <= 11
        assert sum(1 for n in counts.values() if n > 1) <= 1
    assert set(statuses(project).values()) == {"sent"}


def test_many_hang_ups_and_resets_across_four_connections(project: Project) -> None:
    """Connections closed or reset at a message's MAIL, again and again, on four connections
    (sockets closed and reopened side by side): the run completes and
    every recipient gets the digest exactly once (no message's data was ever cut off)."""
    behaviour = Behaviour(drop_on_mail={3, 7, 8, 13, 21, 22, 34}, reset_on_mail={5, 11, 12, 19, 27, 30})
    with SmtpServer(behaviour) as server:
        setup(project, server.port, 40, concurrency=4, max_attempts=5)
        result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert result.code == 0, result.err
        assert server.by_recipient() == {address(i): 1 for i in range(40)}
        assert server.sessions > 4
    assert set(statuses(project).values()) == {"sent"}


def test_a_stalled_server_times_out_and_the_message_is_retried(project: Project) -> None:
    """No answer after the data: the socket timeout ends the wait, the message is retried on a
    new connection, nobody is left out."""
    with SmtpServer(Behaviour(stall_after_data={2})) as server:
        setup(project, server.port, 4)
        settings = project.settings()
        fast = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"timeout": 0.5})})
        report = pipeline.digest_send(fast, SEND_AT, backfill=5)
        assert report.sent == 4 and report.failed == 0
        counts = server.by_recipient()
        assert set(counts) == {address(i) for i in range(4)}
        assert sum(counts.values()) <= 5


def test_a_silent_server_stops_the_run_with_everything_pending(project: Project) -> None:
    """A server that never says a word: each attempt times out, the run stops with one clear
    error line after max_attempts, and the next run against a working server delivers all."""
    with SilentServer() as silent:
        setup(project, silent.port, 5, max_attempts=2)
        settings = project.settings()
        fast = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"timeout": 0.3})})
        with pytest.raises(Exception, match=r"stopped sending: .*timed out.*5 message\(s\) left pending"):
            pipeline.digest_send(fast, SEND_AT, backfill=5)
    assert set(statuses(project).values()) == {"pending"}
    with SmtpServer() as server:
        working = fast.model_copy(update={"smtp": fast.smtp.model_copy(update={"port": server.port})})
        report = pipeline.digest_send(working, SEND_AT)
        assert report.sent == 5
        assert server.by_recipient() == {address(i): 1 for i in range(5)}


def test_the_cli_reports_an_unreachable_server_in_one_line(project: Project) -> None:
    """Connection refused: `Error: …` naming the server, exit 1, rows left pending."""
    with SilentServer() as closed:
        port = closed.port
    setup(project, port, 2, max_attempts=2)
    result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and errors[0].startswith("Error: digest ")
    assert f"127.0.0.1:{port}" in errors[0] and "left pending" in errors[0]
    assert "Traceback" not in result.err
    assert set(statuses(project).values()) == {"pending"}


def test_should_stop_leaves_a_consistent_ledger_and_the_next_run_finishes(
    project: Project, server: SmtpServer
) -> None:
    """Stopping between messages (SIGTERM in the daemon) leaves no row `sending`; a later run
    sends the rest and nobody gets two."""
    setup(project, server.port, 30)
    settings = project.settings()
    seen: list[int] = []
    report = pipeline.digest_send(
        settings,
        SEND_AT,
        backfill=5,
        progress=lambda p: seen.append(p.done),
        should_stop=lambda: len(seen) >= 3,
    )
    assert report.stopped and report.pending > 0
    assert "sending" not in statuses(project).values()
    unsubscribed = next(a for a, s in statuses(project).items() if s == "pending")
    assert project.cli("subscribers", "remove", unsubscribed).code == 0
    rest = pipeline.digest_send(settings, SEND_AT)
    assert rest.skipped == 1
    counts = server.by_recipient()
    assert unsubscribed not in counts
    assert counts == {address(i): 1 for i in range(30) if address(i) != unsubscribed}


def test_outbox_is_the_default_and_holds_one_file_per_message(project: Project) -> None:
    """Without [delivery], messages become Maildir files in state/outbox/new (tmp/ left empty)."""
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    for i in range(3):
        assert project.cli("subscribers", "add", address(i)).code == 0
    result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
    assert result.code == 0, result.err
    files = sorted((project.state / "outbox" / "new").iterdir())
    assert len(files) == 3
    assert list((project.state / "outbox" / "tmp").iterdir()) == []
    recipients = set()
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert all(part.defects == [] for part in message.walk())
        recipients.add(message["To"].addresses[0].addr_spec)
    assert recipients == {address(i) for i in range(3)}


def test_to_sends_one_test_copy_outside_the_ledger(project: Project, server: SmtpServer) -> None:
    """--to: one message to that address only; nothing recorded, so --send still sends to all."""
    setup(project, server.port, 3)
    result = project.cli("digest", "--to", "Editor@Example.NET", "--backfill", "5", now=SEND_AT)
    assert result.code == 0, result.err
    assert [m.recipients for m in server.messages()] == [("editor@example.net",)]
    conn = connect(project)
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    conn.close()
    assert project.cli("digest", "--send", "--backfill", "5", now=SEND_AT).code == 0
    assert server.by_recipient() == {"editor@example.net": 1, **{address(i): 1 for i in range(3)}}


def test_to_refuses_a_bad_address_in_one_line(project: Project, server: SmtpServer) -> None:
    setup(project, server.port, 1)
    result = project.cli("digest", "--to", "not an address", "--backfill", "5", now=SEND_AT)
    assert result.code == 1
    assert "Error: " in result.err and "Traceback" not in result.err
    assert server.messages() == []


def test_fast_links_are_the_digest_modules_links(project: Project) -> None:
    """delivery.token_links (secret read once per digest) gives exactly digest.recipient_links."""
    from publisher import digest, tokens
    from publisher.delivery import engine as delivery
    from publisher.store import subscribers

    for i in range(3):
        assert project.cli("subscribers", "add", address(i), "--name", f"Reader {i}").code == 0
    settings = project.settings()
    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe%20"
    fast = delivery.token_links(tokens.site_secret(settings), digest.unsubscribe_url(settings, ""), mailto)
    conn = connect(project)
    try:
        for subscriber in subscribers.active(conn):
            assert fast(subscriber) == digest.recipient_links(settings, subscriber)
    finally:
        conn.close()


def test_golden_eml_of_a_real_digest(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole message as the outbox holds it, from real seeds through the real templates
    (Date, Message-ID, boundary and the digest id's hash scrubbed; the signing secrets pinned so
    the unsubscribe token is stable; PUBLISHER_REGEN_GOLDEN=1 rewrites it)."""
    from tests.test_message import check_golden

    monkeypatch.setenv("PUBLISHER_SECRET", "golden-secret-" + "g" * 32)
    title = "Talks resume in Geneva — «café» edition"
    project.seed("one.md", markdown(title, "2025-02-27", "Ministers met.", "Zoë"))
    project.seed("two.md", markdown("Second story", "2025-02-28", "Another story entirely."))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com", "--name", "Ana Ñandú").code == 0
    conn = connect(project)
    with db.transaction(conn):
        conn.execute("UPDATE subscribers SET token_secret = 'pinned-token-secret'")
    conn.close()
    assert project.cli("digest", "--send", "--backfill", "5", now=SEND_AT).code == 0
    [path] = (project.state / "outbox" / "new").iterdir()
    data = path.read_bytes()
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert all(part.defects == [] for part in message.walk())
    assert str(message["To"]) == "Ana Ñandú <ana@example.com>"
    # The digest id ends in a hash of article ids minted at random: blank it (same length, so
    # the quoted-printable lines break at the same places).
    conn = connect(project)
    digest_id = only_digest(conn).encode()
    conn.close()
    check_golden("real-digest.eml", data.replace(digest_id, digest_id[:-8] + b"XXXXXXXX"))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_refused_login_stops_the_run_and_bounces_nobody(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """535 to AUTH concerns the whole session: the run stops at once with everything pending,
    and no subscriber's bounce count moves."""
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "wrong")
    with SmtpServer(Behaviour(login=("news", "right"))) as server:
        setup(project, server.port, 4)
        settings = project.settings()
        settings = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"username": "news"})})
        with pytest.raises(
            Exception, match=r"stopped sending: permanent failure: 535 .*4 message\(s\) left pending"
        ):
            pipeline.digest_send(settings, SEND_AT, backfill=5)
        assert server.messages() == []
    assert set(statuses(project).values()) == {"pending"}
    conn = connect(project)
    assert conn.execute("SELECT MAX(bounces) FROM subscribers").fetchone()[0] == 0
    conn.close()
