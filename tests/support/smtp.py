"""SMTP servers on 127.0.0.1 for tests: aiosmtpd with a recording, configurable handler, and
misbehaving servers (refusing some recipients, hanging up mid-session, never answering).

`SmtpServer` runs aiosmtpd's protocol on its own event loop in a thread, on a socket bound before
the thread starts (port 0, so parallel test runs never collide). Every accepted message is kept as
`Received(sender, recipients, data)`; the handler's behaviour is set through `Behaviour`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    data: bytes


@dataclass
class Behaviour:
    """How the server misbehaves. Each hook gets the recipient address and how many times it was
    offered so far (1 on the first RCPT for it) and returns an SMTP reply or None for 250."""

    rcpt: Callable[[str, int], str | None] | None = None
    # Reply to MAIL FROM (None: 250).
    mail: Callable[[str], str | None] | None = None
    # Advertise PIPELINING (aiosmtpd reads commands in order, so pipelined ones just work).
    pipelining: bool = True
    # Close the connection (no reply) on the n-th MAIL FROM / after the n-th message's data
    # (counted over the server's life, 1-based).
    drop_on_mail: set[int] = field(default_factory=set)
    drop_after_data: set[int] = field(default_factory=set)
    # Stall (answer nothing, keep the connection open) after the n-th message's data.
    stall_after_data: set[int] = field(default_factory=set)
    # Answer the n-th message's data, then reset the idle connection (TCP RST) 0.1 s later.
    reset_after_data: set[int] = field(default_factory=set)
    # Reset the connection (TCP RST, no reply) on the n-th MAIL FROM.
    reset_on_mail: set[int] = field(default_factory=set)
    # Require AUTH with this (user, password) before MAIL (over plain TCP: tests only).
    login: tuple[str, str] | None = None
    # Called (in the server's thread) as each message's data arrives, before the reply.
    on_data: Callable[[], None] | None = None


def _reset(transport: Any) -> None:
    """Close with TCP RST (SO_LINGER with a zero timeout) instead of FIN."""
    if transport.is_closing():
        return  # the client has already said QUIT
    with contextlib.suppress(OSError):
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.server.lock:
            self.server.sessions += 1
        if self.server.behaviour.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, smtp: SMTP, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.server.lock:
            self.server.mails += 1
            n = self.server.mails
        if n in self.server.behaviour.drop_on_mail:
            smtp.transport.close()
            return "421 closing"
        if n in self.server.behaviour.reset_on_mail:
            _reset(smtp.transport)
            return "421 closing"
        hook = self.server.behaviour.mail
        answer = hook(address) if hook else None
        if answer:
            return answer
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, smtp: SMTP, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.server.lock:
            self.server.offered[address] += 1
            seen = self.server.offered[address]
        hook = self.server.behaviour.rcpt
        answer = hook(address, seen) if hook else None
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Any, envelope: Any) -> str:
        with self.server.lock:
            self.server.datas += 1
            n = self.server.datas
            self.server.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content))
            )
        if self.server.behaviour.on_data is not None:
            self.server.behaviour.on_data()
        if n in self.server.behaviour.reset_after_data:
            asyncio.get_running_loop().call_later(0.1, self.server.reset_idle, smtp.transport)
        if n in self.server.behaviour.drop_after_data:
            smtp.transport.close()
        elif n in self.server.behaviour.stall_after_data:
            await asyncio.sleep(3600)
        return f"250 queued as {n}"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in a thread; `.port`, `.received`, `.by_recipient()`."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.offered: Counter[str] = Counter()
        self.mails = 0
        self.sessions = 0  # EHLOs: one per connection smtplib opens
        self.resets = 0  # idle connections reset by reset_after_data
        self.datas = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        handler = _Handler(self)
        login = self.behaviour.login
        auth = {}
        if login is not None:
            auth = {
                "auth_required": True,
                "auth_require_tls": False,
                "authenticator": lambda server, session, envelope, mechanism, data: AuthResult(
                    success=(data.login.decode(), data.password.decode()) == login, handled=False
                ),
            }
        self._server = self.loop.run_until_complete(
            self.loop.create_server(
                lambda: SMTP(handler, hostname="mx.test", data_size_limit=0, **auth), sock=self.sock
            )
        )
        self._started.set()
        self.loop.run_forever()
        self._server.close()
        self.loop.run_until_complete(self._server.wait_closed())
        self.loop.close()

    def start(self) -> SmtpServer:
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def by_recipient(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for message in self.messages():
            counts.update(message.recipients)
        return counts

    def reset_idle(self, transport: Any) -> None:
        """reset_after_data's reset (in the server's thread), counted so a test can wait for it."""
        _reset(transport)
        self.resets += 1

    def wait_for_resets(self, count: int, timeout: float = 20.0) -> None:
        """Poll until `count` idle connections were reset (fails the test after `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.resets < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"server reset {self.resets} connections, expected {count}")
            time.sleep(0.01)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        """Poll until at least `count` messages arrived (fails the test after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.messages()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"server got {len(self.messages())} messages, expected {count}")
            time.sleep(0.01)


class SilentServer:
    """Accepts TCP connections (the kernel's backlog does) and never says a word."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def running(behaviour: Behaviour | None = None) -> Iterator[SmtpServer]:
    """Generator for fixtures: a started server, stopped afterwards."""
    server = SmtpServer(behaviour).start()
    try:
        yield server
    finally:
        server.stop()


class HangUpServer:
    """Accepts each TCP connection and closes it at once, before any greeting (a server that is
    up but cannot serve), counting the connections."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted += 1
            conn.close()

    def __enter__(self) -> HangUpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(10)
