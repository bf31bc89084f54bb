"""The SMTP transport: the only module that imports smtplib.

One `SmtpTransport` is one connection to `[smtp]`, opened on the first message and reused for
every later one: security none | starttls | tls (certificates verified with the system's CAs, or
`SSL_CERT_FILE`), an optional login (the password from the environment) and smtplib's socket
timeout on every read and write, so a silent or never-greeting server is given up on after
`smtp.timeout` seconds. smtplib speaks the protocol (commands, replies, dot-stuffing); this module
only says what each answer means for the message, as one of the failures of
publisher.delivery.transports.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence

from publisher.config import Settings
from publisher.delivery.transports import (
    ConnectionFailure,
    PermanentFailure,
    Scope,
    TemporaryFailure,
    reply_text,
)

# What an envelope address may hold: no spaces, brackets or control characters, so an address can
# never add a command to the session.
_ENVELOPE = re.compile(r"[^\s<>\x00-\x1f\x7f]+@[^\s<>\x00-\x1f\x7f@]+")


class _Stale(Exception):
    """The connection was gone before the server answered anything of this message."""


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

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        for address in (sender, *recipients):
            if not _ENVELOPE.fullmatch(address) or not address.isascii():
                raise PermanentFailure(0, f"{address!r} cannot be used in an SMTP command", scope="message")
        reused = self._conn is not None and self._conn.sock is not None
        if not reused:
            self.abort()
            self._conn = self._connect()
        assert self._conn is not None
        try:
            return self._transaction(self._conn, sender, recipients, message)
        except _Stale as stale:
            self.abort()
            if not reused:
                raise ConnectionFailure(0, f"SMTP server {self.where} hung up: {stale}") from stale
        # An idle connection the server closed since the last message: reconnect once, since
        # nothing of this message was accepted.
        self._conn = self._connect()
        try:
            return self._transaction(self._conn, sender, recipients, message)
        except _Stale as again:
            self.abort()
            raise ConnectionFailure(0, f"SMTP server {self.where} hung up: {again}") from again

    def _transaction(self, conn: smtplib.SMTP, sender: str, recipients: Sequence[str], message: bytes) -> str:
        """MAIL, RCPT and DATA with smtplib's commands (as its `sendmail` does), telling apart the
        refusals of the session, a recipient and the message, and a connection that was gone
        before its first answer (nothing sent: safe to retry at once) from one lost later."""
        reply: bytes | str
        try:
            code, reply = conn.mail(sender)
        except smtplib.SMTPServerDisconnected as exc:
            raise _Stale(_reason(exc)) from exc
        try:
            if code != 250:
                # The server refuses the sender itself: no subscriber's fault.
                self._refused(conn, code, reply, "session")
            for recipient in recipients:
                code, reply = conn.rcpt(recipient)
                if code not in (250, 251):
                    self._refused(conn, code, reply, "recipient")
            try:
                code, reply = conn.data(message)
            except smtplib.SMTPDataError as exc:
                code, reply = exc.smtp_code, exc.smtp_error
            if code != 250:
                # Refused at DATA or at its end (content or policy): not the subscriber's bounce.
                self._refused(conn, code, reply, "message")
        except smtplib.SMTPResponseException as exc:  # a reply line too long: not SMTP
            self.abort()
            raise TemporaryFailure(exc.smtp_code, reply_text(exc.smtp_error)) from exc
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.abort()
            raise TemporaryFailure(0, f"connection to {self.where} lost: {_reason(exc)}") from exc
        return f"{code} {reply_text(reply)}"

    def _refused(self, conn: smtplib.SMTP, code: int, reply: bytes | str, scope: Scope) -> None:
        """Raise the failure for a refusal, leaving the connection ready for the next message
        (RSET), or closed when the server is closing it (421) or will not reset."""
        try:
            usable = code != 421 and conn.rset()[0] == 250
        except (smtplib.SMTPException, OSError):
            usable = False
        if not usable:
            self.abort()
        if code >= 500:
            raise PermanentFailure(code, reply_text(reply), scope=scope)
        raise TemporaryFailure(code, reply_text(reply))

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
                    raise PermanentFailure(
                        0, f"smtp.username is set but ${s.password_env} is empty", scope="session"
                    )
                conn.login(s.username, password)
        except PermanentFailure:
            _discard(conn)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _discard(conn)
            raise PermanentFailure(exc.smtp_code, reply_text(exc.smtp_error), scope="session") from exc
        except smtplib.SMTPResponseException as exc:
            _discard(conn)
            if 400 <= exc.smtp_code < 500:
                raise ConnectionFailure(exc.smtp_code, reply_text(exc.smtp_error)) from exc
            raise PermanentFailure(exc.smtp_code, reply_text(exc.smtp_error), scope="session") from exc
        except ssl.SSLCertVerificationError as exc:
            # A setting to fix, not a passing fault: retrying cannot make the certificate trusted.
            _discard(conn)
            raise PermanentFailure(
                0,
                f"the certificate of SMTP server {self.where} is not trusted: {exc.verify_message} "
                "(if a private CA signed it, point the environment variable SSL_CERT_FILE at that CA)",
                scope="session",
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            _discard(conn)
            raise ConnectionFailure(0, f"cannot talk to SMTP server {self.where}: {_reason(exc)}") from exc
        return conn

    def close(self) -> None:
        """Say QUIT and close (a connection that ends normally)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            _discard(conn)

    def abort(self) -> None:
        """Close without QUIT: after a hang-up, a timeout or a 421, waiting for the server to
        answer QUIT could take another `smtp.timeout`."""
        conn, self._conn = self._conn, None
        _discard(conn)


def _discard(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()


def _reason(exc: BaseException) -> str:
    """What went wrong with a socket, in a few words ("timed out", "Connection refused")."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).removeprefix("Connection unexpectedly closed: ")
    return text or type(exc).__name__
