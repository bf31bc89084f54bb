"""`publisher inbound` over a real Maildir holding real returned mail: bounces as Postfix, Gmail
and Microsoft send them, ARF complaints, mailto unsubscribe requests (and forged ones), wrapped
around the digest messages publisher really sent. Handled messages move to cur/ with the Seen
flag, nothing is deleted, anything else is left byte for byte, and a second pass changes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.store import db
from publisher.store import subscribers as store
from tests.conftest import NOW, Project
from tests.support import returned
from tests.support.digests import markdown
from tests.test_daemon import Daemon, daemons  # noqa: F401 (a fixture)

SEND_AT = NOW + timedelta(minutes=1)
LATER = NOW + timedelta(hours=3)
READERS = ["ann@example.org", "bob@example.net", "cy@example.com", "dee@example.org", "eli@example.net"]


class Maildir:
    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("new", "cur", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.serial = 0

    def deliver(self, data: bytes) -> Path:
        self.serial += 1
        name = f"17408{self.serial:05d}.M{self.serial}P1.mx"
        (self.root / "tmp" / name).write_bytes(data)
        return (self.root / "tmp" / name).rename(self.root / "new" / name)

    def listing(self) -> dict[str, list[str]]:
        return {sub: sorted(p.name for p in (self.root / sub).iterdir()) for sub in ("new", "cur")}


def sent_to(project: Project) -> dict[str, bytes]:
    """Each recipient's digest message, as the outbox holds it (the bytes that went out)."""
    found: dict[str, bytes] = {}
    for path in (project.state / "outbox" / "new").iterdir():
        data = path.read_bytes()
        to = re.search(rb"^To: (?:.*<)?([^<>\s]+@[^<>\s]+?)>?\r$", data, re.M)
        assert to is not None
        found[to.group(1).decode()] = data
    return found


def token_of(message: bytes) -> str:
    found = re.search(rb"subject=unsubscribe%20([A-Za-z0-9_-]{40})", message)
    assert found is not None
    return found.group(1).decode()


def state(project: Project) -> dict[str, tuple[str, int]]:
    conn = db.connect(project.settings().db_path)
    try:
        return {s.email: (s.status, s.bounces) for s in store.all_subscribers(conn)}
    finally:
        conn.close()


@pytest.fixture
def site(project: Project) -> Project:
    project.configure('[inbound]\nmaildir = "mail"\n[delivery]\nbounce_after = 2\n')
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    (project.root / "people.csv").write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    assert project.cli("subscribers", "import", str(project.root / "people.csv")).code == 0
    assert project.cli("digest", "--send", "--backfill", "5", now=SEND_AT).code == 0
    return project


def test_one_pass_handles_each_kind_and_leaves_the_rest(site: Project) -> None:
    mail = Maildir(site.root / "mail")
    sent = sent_to(site)
    handled = [
        mail.deliver(returned.postfix_bounce(sent["bob@example.net"], "bob@example.net")),
        mail.deliver(returned.gmail_bounce(sent["cy@example.com"], "cy@example.com")),
        mail.deliver(returned.microsoft_delay(sent["eli@example.net"], "eli@example.net")),
        mail.deliver(returned.arf_complaint(sent["ann@example.org"], "ann@example.org")),
        mail.deliver(
            returned.unsubscribe_request(token_of(sent["dee@example.org"]), sender="dee@example.org")
        ),
    ]
    left = [
        mail.deliver(returned.plain("Loved the piece on Geneva")),
        # From and To say bob wants out, but without his token nobody is unsubscribed.
        mail.deliver(returned.unsubscribe_request("A" * 40, sender="bob@example.net")),
        mail.deliver(returned.plain("unsubscribe me", to="unsubscribe@news.example.org")),
    ]
    left_bytes = {p.name: p.read_bytes() for p in left}
    result = site.cli("inbound", now=LATER)
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"{site.root / 'mail'}: 2 unsubscribed, 1 complaint, 2 bounces, 1 delayed, 2 unmatched, 1 left alone"
    )
    assert state(site) == {
        "ann@example.org": ("unsubscribed", 0),  # complaint: out at once
        "bob@example.net": ("active", 1),  # one permanent failure of bounce_after = 2
        "cy@example.com": ("active", 1),
        "dee@example.org": ("unsubscribed", 0),  # the mailto request
        "eli@example.net": ("active", 0),  # delayed is not a failure
    }
    listing = mail.listing()
    assert listing["new"] == sorted(p.name for p in left)
    assert listing["cur"] == sorted(f"{p.name}:2,S" for p in handled)
    for path in left:
        assert path.read_bytes() == left_bytes[path.name]
    for path in handled:  # moved, never changed
        assert not path.exists()
        assert (mail.root / "cur" / f"{path.name}:2,S").stat().st_size > 0

    # A second pass: nothing new is handled, nothing moves, nobody changes.
    again = site.cli("inbound", now=LATER + timedelta(minutes=5))
    assert again.code == 0
    assert "0 unsubscribed, 0 complaints, 0 bounces, 0 delayed, 2 unmatched, 1 left alone" in again.out
    assert mail.listing() == listing


def test_permanent_failures_of_bounce_after_digests_bounce_the_subscriber_once_each(site: Project) -> None:
    """Two reports of one digest's failure (the same DSN delivered twice, and Microsoft's report of
    it) count once; a failure of the next digest reaches bounce_after = 2."""
    mail = Maildir(site.root / "mail")
    first = sent_to(site)["bob@example.net"]
    mail.deliver(returned.postfix_bounce(first, "bob@example.net", serial="AAA1"))
    mail.deliver(returned.postfix_bounce(first, "bob@example.net", serial="AAA2"))
    mail.deliver(returned.microsoft_bounce(first, "bob@example.net"))
    assert site.cli("inbound", now=LATER).code == 0
    assert state(site)["bob@example.net"] == ("active", 1)

    site.seed("two.md", markdown("Markets calm", "2025-02-28", "Traders sat on their hands."))
    assert site.cli("build", now=LATER).code == 0
    outbox = site.state / "outbox" / "new"
    before = set(outbox.iterdir())
    assert site.cli("digest", "--send", now=LATER + timedelta(minutes=1)).code == 0
    second = next(
        p.read_bytes() for p in set(outbox.iterdir()) - before if b"bob@example.net" in p.read_bytes()
    )
    mail.deliver(returned.gmail_bounce(second, "bob@example.net"))
    result = site.cli("inbound", now=LATER + timedelta(hours=1))
    assert "1 bounce, 1 subscriber now bounced" in result.out
    # (the second digest, accepted by the server, had reset the count of failures in a row)
    assert state(site)["bob@example.net"][0] == "bounced"


def test_a_message_handled_but_not_moved_is_only_moved_next_time(site: Project) -> None:
    """A pass stopped between its commit and the move (the message back in new/): the next pass
    recognises the bytes, moves it, and counts nothing twice."""
    mail = Maildir(site.root / "mail")
    sent = sent_to(site)
    path = mail.deliver(returned.postfix_bounce(sent["bob@example.net"], "bob@example.net"))
    data = path.read_bytes()
    assert site.cli("inbound", now=LATER).code == 0
    (mail.root / "cur" / f"{path.name}:2,S").rename(path)  # as if the move never happened
    assert path.read_bytes() == data
    result = site.cli("inbound", now=LATER)
    assert "0 bounces" in result.out and "1 handled before" in result.out
    assert state(site)["bob@example.net"] == ("active", 1)
    assert mail.listing()["cur"] == [f"{path.name}:2,S"]


def test_reports_without_our_token_or_message_id_are_left_alone(site: Project) -> None:
    """A DSN for a message we never sent (a Message-ID and links not ours) names nobody, even for
    an address that is a subscriber's: it stays in new/."""
    mail = Maildir(site.root / "mail")
    foreign = (
        b"From: someone@example.org\r\nTo: bob@example.net\r\nSubject: hi\r\n"
        b"Message-ID: <abc@example.org>\r\nDate: Sat, 1 Mar 2025 12:00:00 +0000\r\n\r\nhello\r\n"
    )
    path = mail.deliver(returned.postfix_bounce(foreign, "bob@example.net"))
    result = site.cli("inbound", now=LATER)
    assert "0 bounces" in result.out and "1 unmatched" in result.out
    assert path.exists() and state(site)["bob@example.net"] == ("active", 0)


def test_yahoo_style_complaint_with_headers_only(site: Project) -> None:
    mail = Maildir(site.root / "mail")
    sent = sent_to(site)
    mail.deliver(returned.arf_complaint(sent["eli@example.net"], "eli@example.net", style="yahoo"))
    result = site.cli("inbound", now=LATER)
    assert "1 unsubscribed, 1 complaint" in result.out
    assert state(site)["eli@example.net"] == ("unsubscribed", 0)


def test_a_missing_maildir_is_one_line_and_changes_nothing(project: Project) -> None:
    project.configure('[inbound]\nmaildir = "nowhere"\n')
    result = project.cli("inbound")
    assert result.code == 1
    assert result.err == (
        f"Error: {project.root / 'nowhere'}: not a Maildir (no new/, cur/, tmp/) "
        "(inbound.maildir must name the folder holding new/, cur/ and tmp/)\n"
    )
    assert not (project.root / "nowhere").exists()


def test_without_a_mailbox_inbound_says_what_to_set(project: Project) -> None:
    result = project.cli("inbound")
    assert result.code == 2
    assert result.err == (
        "Error: nothing to read: set inbound.maildir or inbound.imap_host (see docs/inbound.md)\n"
    )


def test_imap_without_a_user_is_a_config_error(project: Project) -> None:
    project.configure('[inbound]\nimap_host = "imap.example.org"\n')
    result = project.cli("inbound")
    assert result.code == 2
    assert "inbound: imap_host is set but imap_user is not" in result.err


def test_the_daemon_makes_a_pass_at_start_and_every_interval(
    site: Project,
    daemons: Callable[..., Daemon],  # noqa: F811
) -> None:
    mail = Maildir(site.root / "mail")
    sent = sent_to(site)
    config = site.config_path.read_text().replace('maildir = "mail"', 'maildir = "mail"\ninterval = 1')
    site.config_path.write_text(config)
    mail.deliver(returned.unsubscribe_request(token_of(sent["dee@example.org"]), sender="dee@example.org"))
    daemon = daemons(now=LATER)
    daemon.wait_for("dee unsubscribed", lambda: state(site)["dee@example.org"][0] == "unsubscribed")
    mail.deliver(returned.arf_complaint(sent["ann@example.org"], "ann@example.org"))
    daemon.wait_for("ann unsubscribed", lambda: state(site)["ann@example.org"][0] == "unsubscribed")
    assert daemon.stop() == 0
    assert "inbound: " in daemon.log and "1 complaint" in daemon.log
    assert mail.listing()["new"] == []


def test_verp_ties_a_bare_bounce_to_its_reader_and_digest(project: Project) -> None:
    """With inbound.verp, each message's envelope sender carries its digest and a tag made for its
    reader; a DSN that returns nothing of the original is tied by it, and a forged tag is not."""
    project.configure('[inbound]\nmaildir = "mail"\nverp = true\n')
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    (project.root / "people.csv").write_text("email\n" + "\n".join(READERS) + "\n", encoding="utf-8")
    assert project.cli("subscribers", "import", str(project.root / "people.csv")).code == 0
    assert project.cli("digest", "--send", "--backfill", "5", now=SEND_AT).code == 0
    envelopes = {}
    for address, data in sent_to(project).items():
        found = re.match(rb"Return-Path: <([^>]+)>\r\n", data)
        assert found is not None
        envelopes[address] = found.group(1).decode()
    assert re.fullmatch(r"news\+[0-9a-f]{8}\.[a-z2-7]{26}@news\.example\.org", envelopes["bob@example.net"])
    assert len(set(envelopes.values())) == len(READERS)  # one per reader
    mail = Maildir(project.root / "mail")
    mail.deliver(returned.bare_dsn(envelopes["bob@example.net"], "bob@example.net"))
    # cy's report sent to bob's envelope: the tag was not made for cy.
    forged = mail.deliver(returned.bare_dsn(envelopes["bob@example.net"], "cy@example.com"))
    result = project.cli("inbound", now=LATER)
    assert "1 bounce" in result.out and "1 unmatched" in result.out
    assert state(project)["bob@example.net"] == ("active", 1)
    assert state(project)["cy@example.com"] == ("active", 0)
    assert forged.exists()
    conn = db.connect(project.settings().db_path)
    try:
        (digest_id,) = conn.execute("SELECT digest_id FROM inbound_bounces").fetchone()
        assert digest_id == conn.execute("SELECT id FROM digests").fetchone()[0]
    finally:
        conn.close()
