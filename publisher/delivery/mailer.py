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
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from publisher.config import Settings
from publisher.delivery import smtpwire
from publisher.delivery.smtpwire import (
    ConnectionFailure,
    PermanentFailure,
    Scope,
    TemporaryFailure,
    reply_text,
)

__all__ = [
    "ConnectionFailure",
    "OutboxTransport",
    "PermanentFailure",
    "Scope",
    "SmtpTransport",
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
    if settings.delivery.transport == "smtp":
        return SmtpTransport(settings)
    return OutboxTransport(settings.state_dir / "outbox")


class SmtpTransport:
    """One reusable SMTP connection (smtplib), with a timeout on every socket operation."""

    def __init__(self, settings: Settings) -> None:
        self.smtp_settings = settings.smtp
        # A name for EHLO that is ours, not the machine's (which may be a container id).
        self.local_hostname = settings.site.host
        self._conn: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"{self.smtp_settings.host}:{self.smtp_settings.port}"

    def lost(self, reason: str) -> TemporaryFailure:
        """The failure for a connection gone once the server had answered (the message may
        have arrived): both drivers raise this one."""
        return TemporaryFailure(0, f"connection to {self.where} lost: {reason}")

    def hung_up(self, reason: str) -> ConnectionFailure:
        """The failure for a connection gone before the first answer of a message, when no
        transparent reconnect is left: nothing of the message was accepted."""
        return ConnectionFailure(0, f"SMTP server {self.where} hung up: {reason}")

    def connection(self) -> tuple[socket.socket, bool, bool]:
        """For publisher.delivery.smtpchannel, which drives the socket itself: (the connected socket,
        whether the server offers PIPELINING, whether it was open already), connecting first
        when there is no connection. Raises what `send` raises when it cannot connect."""
        reused = self._conn is not None
        if self._conn is None:
            self._conn = self._connect()
        sock = self._conn.sock
        if sock is None:  # closed under us: start again
            self.abort()
            return self.connection()
        return sock, self._conn.has_extn("pipelining"), reused

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
                f"the certificate of SMTP server {self.where} is not trusted: {exc.verify_message} "
                "(if a private CA signed it, point the environment variable SSL_CERT_FILE at that CA)",
                scope="session",
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._discard(conn)
            reason = os_reason(exc)
            raise ConnectionFailure(0, f"cannot talk to SMTP server {self.where}: {reason}") from exc
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
            self.abort()
            if not reused:
                raise self.hung_up(str(stale)) from stale
            # An idle connection the server closed since the last message: reconnect once, since
            # nothing of this message was sent yet.
            self._conn = self._connect()
            try:
                return self._transaction(self._conn, sender, recipients, message)
            except _StaleConnection as again:
                self.abort()
                raise self.hung_up(str(again)) from again

    def _transaction(self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], message: bytes) -> str:
        """Drive publisher.delivery.smtpwire's transaction over the blocking socket.

        smtplib's own `sendmail` runs two regular expressions over every message and parses each
        address with the email package; the transaction sends our ready-made bytes instead."""
        steps = smtpwire.transaction(sender, recipients, message, conn.has_extn("pipelining"))
        answered = False
        try:
            step = next(steps)
            while True:
                try:
                    if step is not None:
                        conn.send(step)
                        step = steps.send(None)
                        continue
                    reply = _reply(conn)
                except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
                    if not answered:
                        # Gone before its first answer: nothing of this message was accepted.
                        raise _StaleConnection(os_reason(exc)) from exc
                    raise
                answered = True
                step = steps.send(reply)
        except StopIteration as done:
            return str(done.value)
        except (TemporaryFailure, PermanentFailure) as failure:
            if failure.close:
                self.abort()
            raise
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.abort()
            raise self.lost(os_reason(exc)) from exc
        except (smtplib.SMTPResponseException, smtpwire.ReplyTooLong) as exc:
            self.abort()
            raise smtpwire.too_long() from exc

    def close(self) -> None:
        """Say QUIT and close (a connection that ends normally)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            self._discard(conn)

    def abort(self) -> None:
        """Close without QUIT: after a hang-up, a timeout or a 421, waiting for the server to
        answer QUIT could take another `smtp.timeout`."""
        conn, self._conn = self._conn, None
        self._discard(conn)


def _reply(conn: smtplib.SMTP) -> tuple[int, bytes]:
    """One (possibly multi-line) reply, read line by line from smtplib's buffered file and parsed
    by smtpwire.Replies, as the multiplexed driver parses it (no smtplib per-line bookkeeping)."""
    if conn.file is None:
        conn.file = conn.sock.makefile("rb")  # type: ignore[union-attr]
    replies = smtpwire.Replies()
    while True:
        line = conn.file.readline(smtpwire.MAXLINE + 1)
        if not line:
            raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")
        found = replies.feed(line)  # an over-long line ends without a newline: ReplyTooLong
        if found:
            return found[0]


class _StaleConnection(Exception):
    """The connection was gone before the first command of a transaction got an answer."""


def os_reason(exc: BaseException) -> str:
    """What went wrong with a socket, in a few words (\"timed out\", \"Connection reset by peer\")."""
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
