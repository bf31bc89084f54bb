"""Mail transports: the only module that speaks SMTP (smtplib) or writes the outbox Maildir.

`open_transport(settings)` returns a `Transport` chosen by `settings.delivery.transport`:

- `outbox` (the default): each message becomes one file in the Maildir `state/outbox`, written to
  `tmp/`, fsynced, then renamed into `new/`, so a reader never sees half a message.
- `smtp`: one connection to `settings.smtp`, opened on first use and reused for every message;
  security none | starttls | tls, optional login (password from the environment), and a socket
  timeout on every read and write so a silent server never hangs the sender.

`send()` returns the server's final reply (or the outbox file name) and raises `TemporaryFailure`
(4xx, dropped connection, timeout: worth retrying), `ConnectionFailure` (a temporary failure before
the message transaction began: the server could not be reached or greeted, so nothing was sent) or
`PermanentFailure` (5xx). A Transport is used by one thread at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from publisher.config import Settings
from publisher.errors import DeliveryError


def _describe(kind: str, code: int, reply: str) -> str:
    # Code 0: no SMTP reply at all (a connection, TLS or settings problem); don't print a fake code.
    return f"{kind}: {code} {reply}".rstrip() if code else f"{kind}: {reply}".rstrip()


class TemporaryFailure(DeliveryError):
    """The server answered 4xx, hung up or went silent: the message may be retried later."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(_describe("temporary failure", code, reply))
        self.code = code
        self.reply = reply


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

    @property
    def recipient(self) -> bool:
        return self.scope == "recipient"


class Transport(Protocol):
    """Sends whole messages (CRLF line ends, already encoded) to the given recipients."""

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str: ...

    def close(self) -> None: ...


def open_transport(settings: Settings) -> Transport:
    """The transport `settings.delivery.transport` names; SMTP connects lazily on the first send."""
    if settings.delivery.transport == "smtp":
        return SmtpTransport(settings)
    return OutboxTransport(settings.state_dir / "outbox")


def reply_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


class SmtpTransport:
    """One reusable SMTP connection (smtplib), with a timeout on every socket operation."""

    def __init__(self, settings: Settings) -> None:
        self.smtp_settings = settings.smtp
        # A name for EHLO that is ours, not the machine's (which may be a container id).
        self.local_hostname = settings.site.host
        self._conn: smtplib.SMTP | None = None

    @property
    def _where(self) -> str:
        return f"{self.smtp_settings.host}:{self.smtp_settings.port}"

    def _connect(self) -> smtplib.SMTP:
        s = self.smtp_settings
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                conn = smtplib.SMTP_SSL(
                    s.host,
                    s.port,
                    local_hostname=self.local_hostname,
                    timeout=s.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, local_hostname=self.local_hostname, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
            if s.username:
                password = s.password
                if password is None:
                    conn.close()
                    raise PermanentFailure(
                        0, f"smtp.username is set but ${s.password_env} is empty", scope="session"
                    )
                conn.login(s.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            self._discard(conn)
            raise PermanentFailure(exc.smtp_code, reply_text(exc.smtp_error), scope="session") from exc
        except smtplib.SMTPResponseException as exc:
            self._discard(conn)
            if 400 <= exc.smtp_code < 500:
                raise ConnectionFailure(exc.smtp_code, reply_text(exc.smtp_error)) from exc
            raise PermanentFailure(exc.smtp_code, reply_text(exc.smtp_error), scope="session") from exc
        except ssl.SSLCertVerificationError as exc:
            # A setting to fix, not a passing fault: retrying cannot make the certificate trusted.
            self._discard(conn)
            raise PermanentFailure(
                0,
                f"the certificate of SMTP server {self._where} is not trusted: {exc.verify_message} "
                "(if a private CA signed it, point the environment variable SSL_CERT_FILE at that CA)",
                scope="session",
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._discard(conn)
            reason = _os_reason(exc)
            raise ConnectionFailure(0, f"cannot talk to SMTP server {self._where}: {reason}") from exc
        return conn

    @staticmethod
    def _discard(conn: smtplib.SMTP | None) -> None:
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
        try:
            return self._transaction(self._conn, sender, recipients, message)
        except _StaleConnection as stale:
            self.close()
            if not reused:
                raise ConnectionFailure(0, f"SMTP server {self._where} hung up: {stale}") from stale
            # An idle connection the server closed since the last message: reconnect once, since
            # nothing of this message was sent yet.
            self._conn = self._connect()
            try:
                return self._transaction(self._conn, sender, recipients, message)
            except _StaleConnection as again:
                self.close()
                raise ConnectionFailure(0, f"SMTP server {self._where} hung up: {again}") from again

    def _transaction(self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], message: bytes) -> str:
        """MAIL, RCPT, DATA and the message, pipelined (RFC 2920) when the server offers it.

        smtplib's own `sendmail` runs two regular expressions over every message and parses each
        address with the email package; our messages already have CRLF line ends, so only the dot
        stuffing is needed, and a rendered message carries it done (see `_data`)."""
        for address in (sender, *recipients):
            if not ENVELOPE.fullmatch(address):
                raise PermanentFailure(0, f"{address!r} cannot be used in an SMTP command", scope="message")
        commands = [f"MAIL FROM:<{sender}>\r\n", *(f"RCPT TO:<{r}>\r\n" for r in recipients), "DATA\r\n"]
        pipelined = conn.has_extn("pipelining")
        try:
            try:
                conn.send("".join(commands) if pipelined else commands[0])
                code, reply = _reply(conn)
            except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                raise _StaleConnection(_os_reason(exc)) from exc
            failure: DeliveryError | None = None
            if code != 250:
                # The server refuses the sender itself: no subscriber's fault.
                failure = (
                    PermanentFailure(code, reply_text(reply), scope="session")
                    if code >= 500
                    else TemporaryFailure(code, reply_text(reply))
                )
            for command in commands[1:-1]:
                if failure is not None and not pipelined:
                    break
                if not pipelined:
                    conn.send(command)
                code, reply = _reply(conn)
                if failure is None and code not in (250, 251):
                    failure = (
                        PermanentFailure(code, reply_text(reply), scope="recipient")
                        if code >= 500
                        else TemporaryFailure(code, reply_text(reply))
                    )
            if failure is None or pipelined:
                if not pipelined:
                    conn.send(commands[-1])
                code, reply = _reply(conn)
                if code == 354 and failure is not None:
                    # A server that said yes to DATA after refusing: send an empty message's end.
                    conn.send(b".\r\n")
                    _reply(conn)
                elif code != 354 and failure is None:
                    failure = (
                        PermanentFailure(code, reply_text(reply), scope="message")
                        if code >= 500
                        else TemporaryFailure(code, reply_text(reply))
                    )
            if failure is not None:
                if getattr(failure, "code", 0) == 421:
                    self.close()
                else:
                    self._rset(conn)
                raise failure
            conn.send(_data(message))
            code, reply = _reply(conn)
            if code != 250:
                # Refused at the end of DATA (content or policy): not counted as a bounce.
                if code >= 500:
                    raise PermanentFailure(code, reply_text(reply), scope="message")
                if code == 421:
                    self.close()
                raise TemporaryFailure(code, reply_text(reply))
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close()
            raise TemporaryFailure(0, f"connection to {self._where} lost: {_os_reason(exc)}") from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            raise TemporaryFailure(exc.smtp_code, reply_text(exc.smtp_error)) from exc
        return f"{code} {reply_text(reply)}"

    def _rset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            self._discard(conn)


# What an envelope address may hold: no spaces, brackets or control characters (no injection).
ENVELOPE = re.compile(r"[^\s<>\x00-\x1f\x7f]+@[^\s<>\x00-\x1f\x7f@]+")


def _data(message: bytes) -> bytes:
    """The message as DATA sends it: dot-stuffed, ended by CRLF.CRLF. A message rendered by
    publisher.message carries this form ready (`smtp_data`, stuffed piece by piece once per
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


_MAXLINE = 8192  # as smtplib's own limit on a reply line


def _reply(conn: smtplib.SMTP) -> tuple[int, bytes]:
    """One (possibly multi-line) reply, read like smtplib's getreply() from the same buffered
    file, without its per-line bookkeeping (this runs four times per message)."""
    if conn.file is None:
        conn.file = conn.sock.makefile("rb")  # type: ignore[union-attr]
    lines = []
    while True:
        line = conn.file.readline(_MAXLINE + 1)
        if not line:
            raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")
        if len(line) > _MAXLINE:
            raise smtplib.SMTPResponseException(500, b"line too long")
        lines.append(line[4:].strip())
        if line[3:4] != b"-":
            break
    try:
        code = int(line[:3])
    except ValueError:
        code = -1
    return code, b"\n".join(lines)


class _StaleConnection(Exception):
    """The connection was gone before the first command of a transaction got an answer."""


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class OutboxTransport:
    """A Maildir: each message written to tmp/, fsynced, then renamed into new/ (one file each)."""

    _counter = itertools.count()
    _lock = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = root
        self._ready = False

    def _prepare(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._ready = True

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        try:
            if not self._ready:
                self._prepare()
            with self._lock:
                serial = next(self._counter)
            # Maildir's unique name: time, process and serial, host.
            name = f"{os.getpid()}_{serial}_{os.urandom(4).hex()}.{socket.gethostname().replace('/', '_')}"
            tmp = self.root / "tmp" / name
            envelope = "".join(f"X-Original-To: {r}\r\n" for r in recipients if _safe_header(r))
            with tmp.open("xb") as fh:
                fh.write(f"Return-Path: <{sender}>\r\n".encode() if _safe_header(sender) else b"")
                fh.write(envelope.encode())
                fh.write(message)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.root / "new" / name)
        except OSError as exc:
            raise TemporaryFailure(0, f"cannot write to outbox {self.root}: {exc.strerror or exc}") from exc
        return f"new/{name}"

    def close(self) -> None:
        pass


def _safe_header(value: str) -> bool:
    return value.isprintable() and "\r" not in value and "\n" not in value and ">" not in value
