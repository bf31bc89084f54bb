"""Mail transports: how a finished message leaves this machine, and what can go wrong.

A transport takes whole messages (CRLF line ends, already encoded) and returns the server's final
reply (or the outbox file name); each failure is one of the classes below, which the sending
engine (publisher.delivery.sender) maps to a ledger outcome. `open_transport(settings)` returns the
one `delivery.transport` names:

- `outbox` (publisher.delivery.transports.outbox): a Maildir in `state/outbox`.
- `smtp` (publisher.delivery.transports.smtp): one reused connection to `[smtp]` through smtplib.

A new transport is a module here with a class that has `send` and `close`, a `Literal` value in
`DeliverySettings.transport`, and a branch in `open_transport`. A Transport is used by one thread at
a time; the engine opens one per worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from publisher.config import Settings
from publisher.errors import DeliveryError

__all__ = [
    "ConnectionFailure",
    "PermanentFailure",
    "Scope",
    "TemporaryFailure",
    "Transport",
    "open_transport",
    "reply_text",
]


class Transport(Protocol):
    """Sends whole messages (CRLF line ends, already encoded) to the given recipients."""

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str: ...

    def close(self) -> None: ...


def open_transport(settings: Settings) -> Transport:
    """The transport `settings.delivery.transport` names; SMTP connects lazily on the first send."""
    # Imported here: both modules import the failure classes from this package.
    if settings.delivery.transport == "smtp":
        from publisher.delivery.transports.smtp import SmtpTransport

        return SmtpTransport(settings)
    from publisher.delivery.transports.outbox import OutboxTransport

    return OutboxTransport(settings.state_dir / "outbox")


def _describe(kind: str, code: int, reply: str) -> str:
    # Code 0: no SMTP reply at all (a connection, TLS or settings problem); don't print a fake code.
    return f"{kind}: {code} {reply}".rstrip() if code else f"{kind}: {reply}".rstrip()


def reply_text(raw: bytes | str) -> str:
    """A server's reply on one line (multi-line replies joined by spaces)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


class TemporaryFailure(DeliveryError):
    """The server answered 4xx, hung up or went silent: the message may be retried later."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(_describe("temporary failure", code, reply))
        self.code = code
        self.reply = reply


class ConnectionFailure(TemporaryFailure):
    """The server could not be reached, greeted or secured: nothing of any message left this
    machine, so it is the connection's failure, never a message's."""


Scope = Literal["recipient", "message", "session"]


class PermanentFailure(DeliveryError):
    """The server answered 5xx. `scope` says what it refused: this recipient (RCPT: a bounce),
    this message (DATA: content or policy), or the whole session (login, greeting, MAIL FROM,
    an untrusted certificate): then no message can go out and it is nobody's bounce."""

    def __init__(self, code: int, reply: str, *, scope: Scope) -> None:
        super().__init__(_describe("permanent failure", code, reply))
        self.code = code
        self.reply = reply
        self.scope = scope

    @property
    def recipient(self) -> bool:
        return self.scope == "recipient"
