"""Transports: the outbox Maildir, and SMTP against aiosmtpd and misbehaving servers on 127.0.0.1
(reused connections, pipelined or not, each kind of refusal raised as the right failure)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from publisher.config import DeliverySettings, Settings, SmtpSettings
from publisher.delivery import transports
from publisher.delivery.transports import open_transport
from tests.support.smtp import Behaviour, SilentServer, SmtpServer

MESSAGE = (
    b"From: news@news.example.org\r\nTo: ana@example.com\r\nSubject: hi\r\n\r\n"
    b".a line starting with a dot\r\n.\r\n..two dots\r\nlast line\r\n"
)

Opener = Callable[[Settings], Any]


@pytest.fixture
def open_smtp() -> Opener:
    """Opens the SMTP transport as the sending engine does."""
    return open_transport


def smtp_settings(port: int, **smtp: object) -> Settings:
    return Settings(
        delivery=DeliverySettings(transport="smtp"),
        smtp=SmtpSettings(**{"host": "127.0.0.1", "port": port, "timeout": 2.0, **smtp}),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_reuses_one_connection_and_delivers_bytes_intact(open_smtp: Opener, pipelining: bool) -> None:
    """Many messages over one connection; dot-stuffing undone by the server gives back our bytes."""
    with SmtpServer(Behaviour(pipelining=pipelining)) as server:
        transport = open_smtp(smtp_settings(server.port))
        replies = [transport.send("news@news.example.org", [f"r{i}@example.org"], MESSAGE) for i in range(5)]
        transport.close()
        assert all(reply.startswith("250 ") for reply in replies)
        assert server.sessions == 1
        received = server.messages()
        assert [m.recipients for m in received] == [(f"r{i}@example.org",) for i in range(5)]
        assert all(m.data == MESSAGE for m in received)
        assert received[0].sender == "news@news.example.org"


@pytest.mark.parametrize("pipelining", [True, False])
def test_refusals_raise_the_right_failure_and_the_connection_stays_usable(
    open_smtp: Opener, pipelining: bool
) -> None:
    """550 to a recipient: PermanentFailure(recipient); 451: TemporaryFailure; both with the
    server's code and text; the next message goes out on the same connection."""

    def rcpt(address: str, seen: int) -> str | None:
        return {"gone@example.org": "550 5.1.1 no such user", "grey@example.org": "451 4.7.1 later"}.get(
            address
        )

    with SmtpServer(Behaviour(rcpt=rcpt, pipelining=pipelining)) as server:
        transport = open_smtp(smtp_settings(server.port))
        with pytest.raises(transports.PermanentFailure) as permanent:
            transport.send("news@news.example.org", ["gone@example.org"], MESSAGE)
        assert (permanent.value.code, permanent.value.reply, permanent.value.scope) == (
            550,
            "5.1.1 no such user",
            "recipient",
        )
        assert permanent.value.recipient
        with pytest.raises(transports.TemporaryFailure) as temporary:
            transport.send("news@news.example.org", ["grey@example.org"], MESSAGE)
        assert (temporary.value.code, temporary.value.reply) == (451, "4.7.1 later")
        assert not isinstance(temporary.value, transports.ConnectionFailure)
        assert transport.send("news@news.example.org", ["ok@example.org"], MESSAGE).startswith("250")
        transport.close()
        assert server.sessions == 1
        assert [m.recipients for m in server.messages()] == [("ok@example.org",)]


def test_a_refused_sender_is_a_session_failure_not_a_bounce(open_smtp: Opener) -> None:
    """5xx to MAIL FROM concerns every message: scope "session", never counted against a reader."""
    with SmtpServer(Behaviour(mail=lambda sender: "553 5.7.1 sender not allowed")) as server:
        transport = open_smtp(smtp_settings(server.port))
        with pytest.raises(transports.PermanentFailure) as refused:
            transport.send("news@news.example.org", ["ana@example.com"], MESSAGE)
        transport.close()
    assert refused.value.scope == "session" and not refused.value.recipient


def test_an_idle_connection_closed_by_the_server_is_reopened_transparently(open_smtp: Opener) -> None:
    """The server hangs up on a reused connection before anything of the message was sent:
    the transport reconnects once and the message goes out."""
    with SmtpServer(Behaviour(drop_on_mail={2})) as server:
        transport = open_smtp(smtp_settings(server.port))
        transport.send("news@news.example.org", ["a@example.org"], MESSAGE)
        transport.send("news@news.example.org", ["b@example.org"], MESSAGE)
        transport.close()
        assert [m.recipients for m in server.messages()] == [("a@example.org",), ("b@example.org",)]
        assert server.sessions == 2


def test_an_idle_connection_reset_by_the_server_is_reopened_transparently(open_smtp: Opener) -> None:
    """The server resets (RST) the connection while it is idle between messages: the next send
    fails at once, before anything of the message was accepted, so the transport reconnects once
    and the message goes out."""
    with SmtpServer(Behaviour(reset_after_data={1})) as server:
        transport = open_smtp(smtp_settings(server.port))
        transport.send("news@news.example.org", ["a@example.org"], MESSAGE)
        server.wait_for_resets(1)
        assert transport.send("news@news.example.org", ["b@example.org"], MESSAGE).startswith("250")
        transport.close()
        assert [m.recipients for m in server.messages()] == [("a@example.org",), ("b@example.org",)]
        assert server.sessions == 2


def test_a_hang_up_after_the_data_is_a_temporary_failure(open_smtp: Opener) -> None:
    """No reply to the end of data: the message may have arrived; it is a TemporaryFailure (the
    ledger retries it: the documented duplicate window) and the next send reconnects."""
    with SmtpServer(Behaviour(drop_after_data={1})) as server:
        transport = open_smtp(smtp_settings(server.port))
        with pytest.raises(transports.TemporaryFailure) as lost:
            transport.send("news@news.example.org", ["a@example.org"], MESSAGE)
        assert not isinstance(lost.value, transports.ConnectionFailure)
        assert transport.send("news@news.example.org", ["b@example.org"], MESSAGE).startswith("250")
        transport.close()


def test_a_silent_server_is_given_up_on_after_the_timeout(open_smtp: Opener) -> None:
    """No greeting ever: ConnectionFailure saying it timed out, after about `smtp.timeout`."""
    with SilentServer() as silent:
        transport = open_smtp(smtp_settings(silent.port, timeout=0.3))
        started = time.monotonic()
        with pytest.raises(transports.ConnectionFailure, match="timed out"):
            transport.send("news@news.example.org", ["a@example.org"], MESSAGE)
        assert time.monotonic() - started < 5  # bounded, not a speed assertion


def test_a_stall_mid_transaction_times_out(open_smtp: Opener) -> None:
    """The server stops answering after the data: TemporaryFailure (timed out), never a hang."""
    with SmtpServer(Behaviour(stall_after_data={1})) as server:
        transport = open_smtp(smtp_settings(server.port, timeout=0.3))
        with pytest.raises(transports.TemporaryFailure, match="timed out"):
            transport.send("news@news.example.org", ["a@example.org"], MESSAGE)
        transport.close()


def test_nobody_listening_is_a_connection_failure(open_smtp: Opener) -> None:
    with SilentServer() as closed:
        port = closed.port
    transport = open_smtp(smtp_settings(port))
    with pytest.raises(transports.ConnectionFailure, match=f"127.0.0.1:{port}"):
        transport.send("news@news.example.org", ["a@example.org"], MESSAGE)


def test_an_unknown_host_is_a_connection_failure(open_smtp: Opener) -> None:
    """A host name that does not resolve (RFC 2606 reserves .invalid): the connection's failure,
    saying so, never a message's."""
    transport = open_smtp(smtp_settings(25, host="publisher-test.invalid"))
    with pytest.raises(transports.ConnectionFailure, match=r"publisher-test\.invalid:25: cannot resolve"):
        transport.send("news@news.example.org", ["a@example.org"], MESSAGE)


def test_a_username_without_a_password_is_said_plainly(
    open_smtp: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBLISHER_SMTP_PASSWORD", raising=False)
    with SmtpServer() as server:
        transport = open_smtp(smtp_settings(server.port, username="news"))
        with pytest.raises(
            transports.PermanentFailure, match=r"\$PUBLISHER_SMTP_PASSWORD is empty"
        ) as failure:
            transport.send("news@news.example.org", ["a@example.org"], MESSAGE)
    assert failure.value.scope == "session"


@pytest.mark.parametrize(
    "bad", ["a@example.org>\r\nRCPT TO:<victim@example.net", "a b@example.org", "<a@x.org>"]
)
def test_envelope_addresses_cannot_inject_smtp_commands(open_smtp: Opener, bad: str) -> None:
    with SmtpServer() as server:
        transport = open_smtp(smtp_settings(server.port))
        with pytest.raises(transports.PermanentFailure):
            transport.send("news@news.example.org", [bad], MESSAGE)
        transport.close()
        assert server.messages() == []
        assert not any("victim" in a for a in server.offered)


def test_outbox_writes_one_complete_file_per_message_into_new(tmp_path: Path) -> None:
    """Maildir: written in tmp/, renamed into new/; unique names; envelope kept as headers."""
    settings = Settings(base_dir=tmp_path)
    transport = transports.open_transport(settings)
    names = {transport.send("news@news.example.org", [f"r{i}@example.org"], MESSAGE) for i in range(3)}
    transport.close()
    outbox = settings.state_dir / "outbox"
    assert {f"new/{p.name}" for p in (outbox / "new").iterdir()} == names
    assert list((outbox / "tmp").iterdir()) == []
    assert (outbox / "cur").is_dir()
    first = (outbox / sorted(names)[0]).read_bytes()
    assert first.startswith(b"Return-Path: <news@news.example.org>\r\nX-Original-To: r")
    assert first.endswith(MESSAGE)


def test_outbox_that_cannot_be_written_is_a_temporary_failure(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "outbox").write_text("a file where the folder should be")
    transport = transports.open_transport(Settings(base_dir=tmp_path))
    with pytest.raises(transports.TemporaryFailure, match="cannot write to outbox"):
        transport.send("news@news.example.org", ["a@example.org"], MESSAGE)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_the_password_from_the_environment(
    open_smtp: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AUTH with smtp.username and $PUBLISHER_SMTP_PASSWORD; a wrong password is a session failure."""
    with SmtpServer(Behaviour(login=("news", "s3cret"))) as server:
        monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "s3cret")
        transport = open_smtp(smtp_settings(server.port, username="news"))
        assert transport.send("news@news.example.org", ["a@example.org"], MESSAGE).startswith("250")
        transport.close()
        monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "wrong")
        refused = open_smtp(smtp_settings(server.port, username="news"))
        with pytest.raises(transports.PermanentFailure) as failure:
            refused.send("news@news.example.org", ["b@example.org"], MESSAGE)
        assert failure.value.scope == "session" and failure.value.code == 535
        assert [m.recipients for m in server.messages()] == [("a@example.org",)]
