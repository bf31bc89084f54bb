"""The first protocol of every connection: answers plain GETs and HEADs of cached files itself, and
hands the connection to uvicorn's protocol at the first request it does not answer.

Even inside uvicorn's protocol (publisher.server.fast), a 304 paid for uvicorn's per-request
set-up: the scope dict, the header list, the URL parse, the flow-control and keep-alive
bookkeeping. Feed readers poll, so that cost is most of a feed server's work. This protocol does
only what such a request needs: httptools parses it, the callbacks keep the headers the answer
depends on, and `Answers` gives the bytes.

It works one `data_received` at a time. When every request in the data is complete and answerable,
the answers are written in order, together. Otherwise nothing is written, and the data goes,
with the connection, to uvicorn's protocol, which parses it afresh and answers all of it, the
fast way where it can. That covers a request split over two reads, a body, an upgrade, a parse
error (uvicorn's 400), any dynamic route, a file not yet cached or changed on disk. Nothing is
buffered here, so no request can grow in memory on this side.

What uvicorn's protocol does for a connection, this one does too: it joins the server's
connection set (graceful shutdown closes it), counts requests, closes after `Connection: close`
or HTTP/1.0 and after the keep-alive timeout of quiet, stops reading while the client is not
reading what it was sent, and writes uvicorn's access-log line when that log is on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.utils import get_remote_addr

from publisher.server.answers import AVOID, WANTED, Answer, Answers, log_answer
from publisher.server.fast import MAX_HEAD, uvicorn_protocol
from publisher.server.static import FeedFiles

log = logging.getLogger("publisher.server")

# Answers to requests pipelined in one read are written together while they stay under this; the
# first is always answered here.
PIPELINED_BYTES = 1024 * 1024

# name -> its str form, so the callback decodes only the value.
_NAMES = {name: name.decode("latin-1") for name in WANTED}


class FrontProtocol(asyncio.Protocol):
    """One HTTP connection until its first request the app must answer (see the module's doc)."""

    # Set on the subclass `protocol_for` makes: what it answers from, and whom it hands over to.
    answers: Answers
    successor: Any

    def __init__(
        self,
        config: Config,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.access_logger = logging.getLogger("uvicorn.access")
        self.access_log = config.access_log and self.access_logger.isEnabledFor(logging.INFO)
        self.timeout_keep_alive = config.timeout_keep_alive
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.quiet_since = 0.0
        self.paused = False
        # The request being parsed, and the answers to the complete ones in this data.
        self.url = b""
        self.headers: dict[str, str] = {}
        self.plain = True  # every request so far in this data can be answered here
        self.open = False  # a request has begun and not ended
        self.closing = False  # an answered request asked to close the connection
        self.forwarded = False  # a request in this data carries X-Forwarded-For
        self.head_bytes = 0  # of the request being parsed: URL and header lines
        self.out: list[bytes] = []
        self.pending = 0  # bytes in `out`
        self.answered: list[Answer] = []

    # -- the connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.server_state.connections.add(self)
        self._quiet()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def shutdown(self) -> None:
        """Called by uvicorn for a graceful stop: no request is ever in progress here."""
        if self.transport is not None:
            self.transport.close()

    def pause_writing(self) -> None:
        # The client is not reading what we write: read no more requests until it does.
        self.paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
            self._quiet()  # time spent waiting on the client is not quiet

    def data_received(self, data: bytes) -> None:
        answers = self.answers
        repeat = answers.repeat(data, self.server_state.default_headers)
        if repeat is not None:
            # The very same bytes as a request answered before, for an unchanged file.
            self._queue(*repeat)
        else:
            try:
                self.parser.feed_data(data)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade):
                # After a request that closes the connection, what follows is never answered.
                if not self.closing:
                    self.plain = False
            if not self.plain or (self.open and not self.closing):
                self._hand_off(data)
                return
            if len(self.answered) == 1 and not self.forwarded:
                answers.remember(data, self.answered[0])
            self.forwarded = False
        self._send()

    def _send(self) -> None:
        transport = self.transport
        assert transport is not None
        out = self.out
        if out:
            self.out = []
            self.pending = 0
            if len(out) == 1:
                transport.write(out[0])
            else:
                transport.writelines(out)  # one system call where the loop can (uvloop can)
            self.server_state.total_requests += len(self.answered)
            if self.access_log:
                client = get_remote_addr(transport)
                for answer in self.answered:
                    log_answer(self.access_logger, client, answer)
            self.answered.clear()
        if self.closing:
            transport.close()
        else:
            self._quiet()

    # -- the parser's callbacks --------------------------------------------------------------------

    # After an answer that closes the connection, llhttp may go on to parse what follows (an
    # HTTP/1.0 request with `Connection: keep-alive` is answered with a close): it is ignored, as
    # uvicorn never starts a request pipelined behind a closing answer.

    def on_message_begin(self) -> None:
        if not self.closing:
            self.open = True
            self.url = b""
            self.headers = {}
            self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        if not self.closing:
            self.url += url
            self.head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.closing:
            return
        # A head past the bound is refused by uvicorn's protocol, whatever the reads it came in.
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEAD:
            self.plain = False
            return
        name = name.lower()
        wanted = _NAMES.get(name)
        if wanted is not None:
            self.headers[wanted] = value.decode("latin-1")
        elif name in AVOID:
            self.plain = False  # a body, an expectation or an upgrade
        elif name == b"x-forwarded-for":
            # A proxy's client address, which the app's log line shows: the app's path answers it
            # while the access log is on, and it is never remembered for a repeat.
            self.forwarded = True
            self.plain = self.plain and not self.access_log

    def on_message_complete(self) -> None:
        self.open = False
        if not self.plain or self.closing:
            return
        parser = self.parser
        version = parser.get_http_version()
        keep_alive = parser.should_keep_alive() and version != "1.0"
        found = self.answers.answer(parser.get_method(), self.url, self.headers, keep_alive, version)
        if found is None:
            self.plain = False
            return
        answer, entry = found
        body = answer.body(entry)
        head = self.answers.head(answer, self.server_state.default_headers)
        if self.out and self.pending + len(head) + len(body or b"") > PIPELINED_BYTES:
            # Many or big answers to requests pipelined in one read: uvicorn's protocol writes
            # them one at a time, each when the client has taken the one before.
            self.plain = False
            return
        self._queue(head, body, answer)

    def _queue(self, head: bytes, body: bytes | None, answer: Answer) -> None:
        """An answer to write with the others from this read (`_send`)."""
        self.out.append(head)
        if body:
            self.out.append(body)
        self.pending += len(head) + len(body or b"")
        self.answered.append(answer)
        self.closing = not answer.keep_alive

    # -- keep-alive and hand-over ------------------------------------------------------------------

    def _quiet(self) -> None:
        # One timer per connection, re-armed lazily when it fires: the same closing rule as
        # uvicorn's (the timeout of quiet after the last answer) without two timer operations
        # per request.
        self.quiet_since = self.loop.time()
        if self.timer is None:
            self.timer = self.loop.call_later(self.timeout_keep_alive, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if self.paused:
            # Answers are still going out to a slow reader, with its next requests unread: not
            # quiet, and closing now would reset the connection and lose what was sent.
            self.timer = self.loop.call_later(self.timeout_keep_alive, self._expire)
            return
        left = self.quiet_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._expire)
        elif self.transport is not None:
            self.transport.close()

    def _hand_off(self, data: bytes) -> None:
        """uvicorn's protocol takes the connection, starting with `data`, which it parses afresh."""
        transport = self.transport
        assert transport is not None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server_state.connections.discard(self)
        successor = self.successor(
            config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop
        )
        transport.set_protocol(successor)
        successor.connection_made(transport)
        # Never while paused: reading stops then, so no data comes to hand over.
        successor.data_received(data)


def protocol_for(files: FeedFiles, dynamic: tuple[str, ...]) -> type[asyncio.Protocol] | str:
    """The `http` protocol to give uvicorn: each connection starts in `FrontProtocol` and goes on
    in uvicorn's own protocol with the fast path (publisher.server.fast); or "httptools", uvicorn's
    plain one, when this uvicorn lacks what the subclass builds on."""
    answers = Answers(files, dynamic)
    successor = uvicorn_protocol(answers)
    if successor is None:
        log.warning("this uvicorn's HTTP protocol is not one publisher knows; serving without the fast path")
        return "httptools"
    return type("Front", (FrontProtocol,), {"answers": answers, "successor": successor})
