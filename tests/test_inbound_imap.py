"""`publisher inbound` against a real IMAP server: the test's own dovecot on 127.0.0.1, implicit
TLS with a certificate from a private CA (trusted through SSL_CERT_FILE), a password from the
environment. Handled messages get \\Seen and $PublisherHandled and move to inbound.imap_move_to;
the rest stay unseen and untouched; nothing is expunged. Skipped where dovecot is not installed."""

from __future__ import annotations

import imaplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.support import imap, returned
from tests.test_inbound import LATER, Maildir, sent_to, site, state, token_of  # noqa: F401

pytestmark = pytest.mark.skipif(not imap.available(), reason="dovecot is not installed (dovecot-imapd)")


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[imap.Dovecot]:
    with imap.Dovecot(tmp_path / "dovecot") as server:
        yield server


def configure(project: Project, server: imap.Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    project.configure(
        f"""
        [inbound]
        imap_host = "127.0.0.1"
        imap_port = {server.port}
        imap_user = "{imap.USER}"
        imap_password_env = "TEST_IMAP_PASSWORD"
        imap_move_to = "Processed"
        timeout = 10
        """.replace("[inbound]", "[inbound]\n", 1)
    )
    monkeypatch.setenv("TEST_IMAP_PASSWORD", imap.PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certs.ca_file))


def folder(server: imap.Dovecot, name: str) -> list[tuple[bytes, bytes]]:
    """(flags, bytes) of each message in `name`, read without changing anything."""
    context = ssl.create_default_context(cafile=str(server.certs.ca_file))
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.port, ssl_context=context, timeout=10)
    try:
        conn.login(imap.USER, imap.PASSWORD)
        typ, _ = conn.select(f'"{name}"', readonly=True)
        if typ != "OK":
            return []
        _, found = conn.uid("SEARCH", "ALL")
        out = []
        for uid in found[0].split():
            _, data = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
            head, body = data[0]  # type: ignore[misc]
            out.append((bytes(head), bytes(body)))
        return out
    finally:
        conn.logout()


def test_a_pass_over_imap_handles_moves_and_leaves_alone(
    site: Project,  # noqa: F811
    dovecot: imap.Dovecot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The site's fixture configured a Maildir; this project reads IMAP only.
    site.extra_config = site.extra_config.replace('[inbound]\nmaildir = "mail"\n', "")
    configure(site, dovecot, monkeypatch)
    sent = sent_to(site)
    bounce = returned.postfix_bounce(sent["bob@example.net"], "bob@example.net")
    request = returned.unsubscribe_request(token_of(sent["dee@example.org"]), sender="dee@example.org")
    other = returned.plain("Loved the piece on Geneva")
    for number, data in enumerate((bounce, request, other), 1):
        dovecot.deliver(data, f"17408000{number}.M{number}P1.mx")
    result = site.cli("inbound", now=LATER)
    assert result.code == 0, result.err
    assert result.out.strip().endswith(
        "1 unsubscribed, 0 complaints, 1 bounce, 0 delayed, 0 unmatched, 1 left alone"
    )
    assert result.out.startswith(f"imaps://news@127.0.0.1:{dovecot.port}/INBOX: ")
    assert state(site)["bob@example.net"] == ("active", 1)
    assert state(site)["dee@example.org"] == ("unsubscribed", 0)
    inbox = folder(dovecot, "INBOX")
    assert [body for _, body in inbox] == [other]
    assert b"\\Seen" not in inbox[0][0]  # untouched: still unread
    processed = folder(dovecot, "Processed")
    assert sorted(body for _, body in processed) == sorted([bounce, request])
    assert all(b"\\Seen" in flags and b"$PublisherHandled" in flags for flags, _ in processed)

    again = site.cli("inbound", now=LATER)
    assert again.code == 0
    assert "0 unsubscribed, 0 complaints, 0 bounces, 0 delayed, 0 unmatched, 1 left alone" in again.out
    assert len(folder(dovecot, "Processed")) == 2 and len(folder(dovecot, "INBOX")) == 1


def test_a_wrong_password_or_an_untrusted_certificate_is_one_line(
    project: Project, dovecot: imap.Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(project, dovecot, monkeypatch)
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong")
    result = project.cli("inbound")
    assert result.code == 1
    assert result.err.startswith("Error: IMAP server 127.0.0.1 refused: ") and result.err.count("\n") == 1
    monkeypatch.setenv("TEST_IMAP_PASSWORD", imap.PASSWORD)
    monkeypatch.delenv("SSL_CERT_FILE")
    result = project.cli("inbound")
    assert result.code == 1
    assert result.err.startswith(
        f"Error: the certificate of IMAP server 127.0.0.1:{dovecot.port} is not trusted"
    )
    monkeypatch.delenv("TEST_IMAP_PASSWORD")
    result = project.cli("inbound")
    assert result.err == "Error: inbound.imap_user is set but $TEST_IMAP_PASSWORD is empty\n"
