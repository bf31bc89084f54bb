"""One SMTP mail transaction as a sans-I/O generator, shared by the blocking and the multiplexed
drivers: what to send, which replies to wait for, and what each reply means.

`transaction()` yields bytes to write (no reply awaited yet) or None (the next reply, please) and
is sent back (code, text) for each None. It returns the final reply, or raises one of mailer's
failures: `TemporaryFailure` (4xx), `PermanentFailure` with the scope of what was refused. After
a refusal it asks the server to RSET, so the connection can carry the next message; a failure
whose `close` attribute is true means the connection must not be reused (421, or RSET refused).

`Replies` splits raw bytes from the server into replies, multi-line ones included, like
smtplib's getreply(). Dot-stuffing happens once per digest in publisher.delivery.message (`smtp_data`);
`data_block` stuffs any other bytes.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Sequence
from typing import Literal

from publisher.errors import DeliveryError


def _describe(kind: str, code: int, reply: str) -> str:
    # Code 0: no SMTP reply at all (a connection, TLS or settings problem); don't print a fake code.
    return f"{kind}: {code} {reply}".rstrip() if code else f"{kind}: {reply}".rstrip()


def reply_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


class TemporaryFailure(DeliveryError):
    """The server answered 4xx, hung up or went silent: the message may be retried later."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(_describe("temporary failure", code, reply))
        self.code = code
        self.reply = reply
        self.close = False  # the connection must not carry another message


class ConnectionFailure(TemporaryFailure):
    """The server could not be reached, greeted or logged in to: no message left this machine."""


Scope = Literal["recipient", "message", "session"]


class PermanentFailure(DeliveryError):
    """The server answered 5xx. `scope` says what it refused: this recipient (RCPT: a bounce),
    this message (DATA: content or policy), or the whole session (login, greeting, MAIL FROM):
    then no message can go out and it is nobody's bounce."""

    def __init__(self, code: int, reply: str, *, scope: Scope) -> None:
        super().__init__(_describe("permanent failure", code, reply))
        self.code = code
        self.reply = reply
        self.scope = scope
        self.close = False

    @property
    def recipient(self) -> bool:
        return self.scope == "recipient"


Failure = TemporaryFailure | PermanentFailure
Step = bytes | None
Reply = tuple[int, bytes]
Exchange = Generator[Step, Reply | None, str]

# What an envelope address may hold: no spaces, brackets or control characters (no injection).
ENVELOPE = re.compile(r"[^\s<>\x00-\x1f\x7f]+@[^\s<>\x00-\x1f\x7f@]+")
MAXLINE = 8192  # as smtplib's own limit on a reply line


def data_block(message: bytes) -> bytes:
    """The message as DATA sends it: dot-stuffed, ended by CRLF.CRLF. A message rendered by
    publisher.delivery.message carries this form ready (`smtp_data`, stuffed piece by piece once per
    digest); any other bytes are stuffed here."""
    ready: bytes | None = getattr(message, "smtp_data", None)
    if ready is not None:
        return ready
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def _refusal(code: int, reply: bytes, scope: Scope) -> Failure:
    if code >= 500:
        return PermanentFailure(code, reply_text(reply), scope=scope)
    return TemporaryFailure(code, reply_text(reply))


def transaction(
    sender: str, recipients: Sequence[str], message: bytes, pipelined: bool, stuffed: bool = False
) -> Exchange:
    """MAIL, RCPT, DATA and the message; pipelined (RFC 2920) when the server offers it.
    `stuffed`: the message is already in DATA's form (publisher.delivery.message's `render_wire`)."""
    for address in (sender, *recipients):
        if not ENVELOPE.fullmatch(address) or not address.isascii():
            raise PermanentFailure(0, f"{address!r} cannot be used in an SMTP command", scope="message")
    commands = [
        f"MAIL FROM:<{sender}>\r\n".encode("ascii"),
        *(f"RCPT TO:<{r}>\r\n".encode("ascii") for r in recipients),
        b"DATA\r\n",
    ]
    yield b"".join(commands) if pipelined else commands[0]
    code, reply = yield None  # type: ignore[misc]
    failure: Failure | None = None
    if code != 250:
        # The server refuses the sender itself: no subscriber's fault.
        failure = _refusal(code, reply, "session")
    for command in commands[1:-1]:
        if failure is not None and not pipelined:
            break
        if not pipelined:
            yield command
        code, reply = yield None  # type: ignore[misc]
        if failure is None and code not in (250, 251):
            failure = _refusal(code, reply, "recipient")
    if failure is None or pipelined:
        if not pipelined:
            yield commands[-1]
        code, reply = yield None  # type: ignore[misc]
        if code == 354 and failure is not None:
            # A server that said yes to DATA after refusing: send an empty message's end.
            yield b".\r\n"
            yield None
        elif code != 354 and failure is None:
            failure = _refusal(code, reply, "message")
    if failure is not None:
        failure.close = failure.code == 421
        if not failure.close:
            yield b"RSET\r\n"
            rset, _ = yield None  # type: ignore[misc]
            failure.close = rset != 250
        raise failure
    yield message if stuffed else data_block(message)
    code, reply = yield None  # type: ignore[misc]
    if code != 250:
        # Refused at the end of DATA (content or policy): not counted as a bounce.
        failure = _refusal(code, reply, "message")
        failure.close = code == 421
        raise failure
    return f"{code} {reply_text(reply)}"


class ReplyTooLong(Exception):
    """A reply line longer than MAXLINE: the server is not speaking SMTP."""


def too_long() -> TemporaryFailure:
    """The failure both drivers raise for ReplyTooLong (as smtplib's 500 for a long line)."""
    return TemporaryFailure(500, "line too long")


class Replies:
    """Complete replies out of the bytes received so far."""

    def __init__(self) -> None:
        self._partial = b""  # an unfinished line
        self._lines: list[bytes] = []  # the lines so far of an unfinished multi-line reply

    def feed(self, data: bytes) -> list[Reply]:
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the data ended with a whole line
        if len(self._partial) > MAXLINE:
            raise ReplyTooLong("line too long")
        found: list[Reply] = []
        for line in lines:
            if len(line) >= MAXLINE:
                raise ReplyTooLong("line too long")
            self._lines.append(line[4:].strip())
            if line[3:4] != b"-":
                try:
                    code = int(line[:3])
                except ValueError:
                    code = -1
                found.append((code, b"\n".join(self._lines)))
                self._lines = []
        return found
