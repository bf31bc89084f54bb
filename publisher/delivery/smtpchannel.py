"""One SMTP connection driven without blocking, so one thread can keep several busy
(publisher.delivery.multiplex).

The connection is opened, greeted, secured and logged in by mailer.SmtpTransport as before
(blocking, with its timeout); then its socket is switched to non-blocking mode and the steps of
publisher.delivery.smtpwire's transaction are written and read as the socket allows. The outcomes are the
blocking driver's, word for word: a silent server times out after `smtp.timeout` seconds without
progress, a connection that hangs up before the first answer of a reused session is opened again
once (nothing of the message was accepted), and any other hang-up is a temporary failure.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Sequence

from publisher.delivery import smtpwire
from publisher.delivery.mailer import SmtpTransport, os_reason

_CHUNK = 65536


class Hangup(Exception):
    """The server closed the connection or reset it."""


class Channel:
    """A transaction at a time over one SmtpTransport's connection."""

    def __init__(self, transport: SmtpTransport) -> None:
        self.transport = transport
        self.timeout = float(transport.smtp_settings.timeout)
        self.sock: socket.socket | None = None
        self.deadline = 0.0
        self._out = bytearray()
        self._steps: smtpwire.Exchange | None = None
        self._replies = smtpwire.Replies()
        self._message: tuple[str, Sequence[str], bytes] = ("", (), b"")
        self._reused = False
        self._answered = False
        self.on_close: Callable[[], None] | None = None  # called before the socket is closed

    @property
    def wants_write(self) -> bool:
        return bool(self._out)

    def begin(self, sender: str, recipients: Sequence[str], data: bytes) -> None:
        """Start a transaction for `data`, a message already in DATA's form (dot-stuffed, ended
        by CRLF.CRLF), connecting first (blocking) when there is no connection. Raises what
        `SmtpTransport` raises for a connection or address problem."""
        self._message = (sender, recipients, data)
        self._start()

    def _start(self) -> None:
        sock, pipelined, self._reused = self.transport.connection()
        sock.setblocking(False)
        self.sock = sock
        self._out.clear()
        self._replies = smtpwire.Replies()
        self._answered = False
        self._steps = smtpwire.transaction(*self._message, pipelined, stuffed=True)
        self.deadline = time.monotonic() + self.timeout
        try:
            self._queue(next(self._steps))
        except (smtpwire.TemporaryFailure, smtpwire.PermanentFailure):
            self._steps = None
            raise
        try:
            self._flush()
        except Hangup as exc:  # a reused connection the server reset while it was idle
            self._lost(exc)

    def _queue(self, step: smtpwire.Step) -> None:
        assert self._steps is not None
        while step is not None:
            self._out += step
            step = self._steps.send(None)

    def _flush(self) -> None:
        assert self.sock is not None
        while self._out:
            try:
                sent = self.sock.send(self._out)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return
            except OSError as exc:
                raise Hangup(os_reason(exc)) from exc
            del self._out[:sent]
            self.deadline = time.monotonic() + self.timeout

    def _receive(self) -> bytes:
        assert self.sock is not None
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self.sock.recv(_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as exc:
                raise Hangup(os_reason(exc)) from exc
            if not chunk:
                if not chunks:
                    raise Hangup("connection unexpectedly closed")
                break
            chunks.append(chunk)
            if not isinstance(self.sock, ssl.SSLSocket) and len(chunk) < _CHUNK:
                break  # a TLS socket may hold decrypted bytes the selector cannot see: read them all
        if chunks:
            self.deadline = time.monotonic() + self.timeout
        return b"".join(chunks)

    def on_writable(self) -> None:
        try:
            self._flush()
        except Hangup as exc:
            self._lost(exc)

    def on_readable(self) -> str | None:
        """Read what arrived and move the transaction on: its final reply when it is over, None
        while it is not. Raises mailer's failures as the blocking driver does."""
        try:
            data = self._receive()
            for reply in self._replies.feed(data):
                self._answered = True
                assert self._steps is not None
                try:
                    self._queue(self._steps.send(reply))
                except StopIteration as done:
                    self._steps = None
                    return str(done.value)
                except (smtpwire.TemporaryFailure, smtpwire.PermanentFailure) as failure:
                    self._steps = None
                    if failure.close:
                        self.close(polite=False)
                    raise
            self._flush()
        except Hangup as exc:
            self._lost(exc)
            return None  # _lost reconnected and started again
        except smtpwire.ReplyTooLong as exc:
            self.close(polite=False)
            raise smtpwire.too_long() from exc
        return None

    def on_timeout(self) -> None:
        self.close(polite=False)
        raise self.transport.lost("timed out")

    def _lost(self, exc: Hangup) -> None:
        self.close(polite=False)
        if self._answered:
            raise self.transport.lost(str(exc)) from exc
        if not self._reused:
            raise self.transport.hung_up(str(exc)) from exc
        # An idle connection the server closed since the last message: open it again once, since
        # nothing of this message was sent yet.
        self._start()

    def close(self, polite: bool = True) -> None:
        """Close the connection; the next `begin` opens another. `polite`: say QUIT first (the
        blocking way, so only where waiting up to `smtp.timeout` holds nobody else up); else,
        after a hang-up, a timeout or a 421, just close the socket. `on_close` is told first,
        while the socket's file descriptor is still this socket's."""
        self._steps = None
        if self.sock is not None:
            if self.on_close is not None:
                self.on_close()
            if polite:
                with contextlib.suppress(OSError):
                    self.sock.settimeout(self.timeout)
            self.sock = None
        if polite:
            self.transport.close()
        else:
            self.transport.abort()
