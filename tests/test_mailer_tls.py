"""SMTP with `security = "starttls"` and `"tls"` against aiosmtpd on 127.0.0.1 with a certificate
from a throw-away private CA: messages arrive over an encrypted session, login happens only after
encryption, and an untrusted certificate or a server without STARTTLS stops the send with one
clear error before any message leaves (never a fall-back to plain text)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from publisher.config import DeliverySettings, Settings, SmtpSettings
from publisher.delivery import transports
from publisher.delivery.transports import open_transport
from publisher.store import db, ledger
from tests.conftest import NOW, Project
from tests.support.digests import markdown
from tests.support.smtp_tls import Certificates, TlsServer, make_certificates

MESSAGE = (
    b"From: news@news.example.org\r\nTo: ana@example.com\r\nSubject: hi\r\n\r\n"
    b".a line starting with a dot\r\nlast line\r\n"
)
SENDER = "news@news.example.org"

Opener = Callable[[Settings], Any]


@pytest.fixture
def open_smtp() -> Opener:
    """Opens the SMTP transport as the sending engine does."""
    return open_transport


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trusted(certs: Certificates, monkeypatch: pytest.MonkeyPatch) -> Certificates:
    """The client trusts the private CA as an operator would make it: SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))
    return certs


@pytest.fixture
def untrusted(certs: Certificates, monkeypatch: pytest.MonkeyPatch) -> Certificates:
    """The client knows only the system's CAs, which never signed our throw-away one."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return certs


def smtp_settings(port: int, security: str, **smtp: object) -> Settings:
    return Settings(
        delivery=DeliverySettings(transport="smtp"),
        smtp=SmtpSettings.model_validate(
            {"host": "127.0.0.1", "port": port, "security": security, "timeout": 5.0, **smtp}
        ),
    )


@pytest.mark.parametrize("pipelining", [True, False])
def test_starttls_delivers_over_an_encrypted_session(
    open_smtp: Opener, trusted: Certificates, pipelining: bool
) -> None:
    """The server refuses MAIL before STARTTLS; both messages arrive intact over one TLS session."""
    with TlsServer(trusted, "starttls", pipelining=pipelining) as server:
        transport = open_smtp(smtp_settings(server.port, "starttls"))
        replies = [transport.send(SENDER, [f"r{i}@example.org"], MESSAGE) for i in range(2)]
        transport.close()
        received = server.messages()
    assert [reply.split()[:4] for reply in replies] == [
        ["250", "queued", "as", "1"],
        ["250", "queued", "as", "2"],
    ]
    assert [(m.sender, m.recipients, m.data) for m in received] == [
        (SENDER, (f"r{i}@example.org",), MESSAGE) for i in range(2)
    ]
    assert all(m.tls is not None and m.tls.startswith("TLSv1.") for m in received), received


def test_implicit_tls_delivers_over_an_encrypted_session(open_smtp: Opener, trusted: Certificates) -> None:
    """`security = "tls"`: TLS from the first byte (port 465 style); the message arrives intact."""
    with TlsServer(trusted, "tls") as server:
        transport = open_smtp(smtp_settings(server.port, "tls"))
        reply = transport.send(SENDER, ["ana@example.com"], MESSAGE)
        transport.close()
        received = server.messages()
    assert reply.startswith("250 ")
    assert [(m.sender, m.recipients, m.data) for m in received] == [(SENDER, ("ana@example.com",), MESSAGE)]
    assert received[0].tls is not None and received[0].tls.startswith("TLSv1.")


def test_login_over_starttls_with_the_password_from_the_environment(
    open_smtp: Opener, trusted: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server offers AUTH only once encrypted and requires it: our login happens over TLS
    with the password from $PUBLISHER_SMTP_PASSWORD, and the message is accepted."""
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "s3cret pass")
    with TlsServer(trusted, "starttls", login=("news", "s3cret pass")) as server:
        transport = open_smtp(smtp_settings(server.port, "starttls", username="news"))
        transport.send(SENDER, ["ana@example.com"], MESSAGE)
        transport.close()
        received = server.messages()
        logins = list(server.handler.logins)
    assert logins == [("news", True)]
    assert [(m.login, m.data) for m in received] == [("news", MESSAGE)]
    assert received[0].tls is not None


def test_a_wrong_password_over_starttls_is_a_session_failure(
    open_smtp: Opener, trusted: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """535 after STARTTLS: PermanentFailure for the session (nobody's bounce), nothing sent."""
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "wrong")
    with TlsServer(trusted, "starttls", login=("news", "right")) as server:
        transport = open_smtp(smtp_settings(server.port, "starttls", username="news"))
        with pytest.raises(transports.PermanentFailure) as refused:
            transport.send(SENDER, ["ana@example.com"], MESSAGE)
        transport.close()
        assert server.messages() == [] and server.handler.mails == 0
    assert (refused.value.code, refused.value.scope) == (535, "session")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_certificate_stops_the_send_in_one_clear_error(
    open_smtp: Opener, untrusted: Certificates, security: str
) -> None:
    """A certificate no trusted CA signed: a permanent, session-wide failure (retrying cannot fix
    a setting) naming the server, the reason and the remedy (a PublisherError, so the CLI prints
    one line); no MAIL command ever reaches the server."""
    with TlsServer(untrusted, security) as server:  # type: ignore[arg-type]
        transport = open_smtp(smtp_settings(server.port, security))
        with pytest.raises(transports.PermanentFailure) as failed:
            transport.send(SENDER, ["ana@example.com"], MESSAGE)
        transport.close()
        assert server.messages() == [] and server.handler.mails == 0
    assert failed.value.scope == "session"
    text = str(failed.value)
    assert text.startswith(f"permanent failure: the certificate of SMTP server 127.0.0.1:{server.port} ")
    assert "unable to get local issuer certificate" in text and "SSL_CERT_FILE" in text
    assert "\n" not in text


def test_starttls_not_offered_fails_instead_of_sending_in_the_clear(
    open_smtp: Opener, trusted: Certificates
) -> None:
    """`security = "starttls"` against a server that never offers STARTTLS: a clear failure and
    no MAIL FROM (hence no message) sent unencrypted."""
    with TlsServer(trusted, "plain") as server:
        transport = open_smtp(smtp_settings(server.port, "starttls"))
        with pytest.raises(transports.ConnectionFailure) as failed:
            transport.send(SENDER, ["ana@example.com"], MESSAGE)
        transport.close()
        assert server.messages() == [] and server.handler.mails == 0
    assert str(failed.value) == (
        f"temporary failure: cannot talk to SMTP server 127.0.0.1:{server.port}: "
        "STARTTLS extension not supported by server."
    )


def test_implicit_tls_against_a_plain_server_fails_clearly(open_smtp: Opener, trusted: Certificates) -> None:
    """`security = "tls"` against a plain-text server (a wrong port, say): the handshake fails
    with one ConnectionFailure; nothing is sent."""
    with TlsServer(trusted, "plain") as server:
        transport = open_smtp(smtp_settings(server.port, "tls"))
        with pytest.raises(
            transports.ConnectionFailure, match=rf"cannot talk to SMTP server 127.0.0.1:{server.port}: "
        ):
            transport.send(SENDER, ["ana@example.com"], MESSAGE)
        transport.close()
        assert server.messages() == [] and server.handler.mails == 0


# The digest runs a minute after the build (see tests/test_delivery.py for why).
SEND_AT = NOW + timedelta(minutes=1)


@pytest.fixture
def tls_project(project: Project, untrusted: Certificates) -> Iterator[tuple[Project, TlsServer]]:
    with TlsServer(untrusted, "starttls") as server:
        project.configure(
            f"""
            [delivery]
            transport = "smtp"
            max_attempts = 2
            retry_backoff = 0.01

            [smtp]
            host = "127.0.0.1"
            port = {server.port}
            security = "starttls"
            timeout = 5.0
            """
        )
        project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
        assert project.cli("build").code == 0
        people = project.root / "people.csv"
        people.write_text("email,name\nana@example.org,Ana\nbo@example.org,Bo\n", encoding="utf-8")
        assert project.cli("subscribers", "import", str(people)).code == 0
        yield project, server


def ledger_statuses(db_path: Path) -> list[str]:
    conn = db.connect(db_path)
    try:
        ids = [str(r[0]) for r in conn.execute("SELECT digest_id FROM ledger_digests")]
        return sorted(e.status for digest_id in ids for e in ledger.entries(conn, digest_id))
    finally:
        conn.close()


def test_the_cli_reports_an_untrusted_certificate_in_one_line_and_sends_nothing(
    tls_project: tuple[Project, TlsServer],
) -> None:
    """`digest --send` against an untrusted STARTTLS server: exit 1, one `Error:` line naming the
    server and the certificate problem, no traceback, every ledger row still pending."""
    project, server = tls_project
    result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.err
    assert f"127.0.0.1:{server.port} is not trusted" in errors[0] and "SSL_CERT_FILE" in errors[0]
    assert "Traceback" not in result.err
    assert server.messages() == [] and server.handler.mails == 0
    assert ledger_statuses(project.settings().db_path) == ["pending", "pending"]
