"""Fast answers: a GET or HEAD of a cached file in feeds/ answered without the ASGI app.

Under uvicorn, a small response's cost is mostly the ASGI machinery around it: a scope dict, an
asyncio task and an event per request, and the `send` messages through each middleware layer. Feed
readers mostly poll, so most of a feed server's answers are `304 Not Modified`, and that fixed cost
made a 304 cost more than half of a full 368 KB response.

`Answers` decides such an answer (through `FeedFiles.quick`) and gives its bytes: header lines
built once per file version (the same ones the app sends), with only the `Date` line added per
request. Each connection starts in `publisher.server.front`, which answers what it can with it;
`uvicorn_protocol` is the subclass of uvicorn's httptools protocol a connection goes on in once
the front has handed it over, and it answers with it too, from the parser's callbacks.

Everything else goes to the ASGI app unchanged: other methods, the dynamic routes, a request with a
body or `Expect`, an upgrade, a long or percent-encoded URL, a file not yet cached or changed on
disk, a folder, a refusal, a 412, a request pipelined behind one the app is still answering, and
any request while the client is not reading what we write (the app's path waits for it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from publisher.server.security import MAX_URL
from publisher.server.static import Entry, FeedFiles, Version

log = logging.getLogger("publisher.server")

# Request headers the answer depends on; the fast path reads no others.
WANTED = frozenset(
    (b"accept-encoding", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since")
)
# Headers that announce a body, an expectation or a protocol change: such requests take the app's path.
AVOID = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect"))


def _lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def wire_block(entry: Entry, status: int, use_gzip: bool, cache_control: str) -> bytes:
    """The header lines of an answer, with the blank line that ends them, cached on the entry."""
    key = (status, use_gzip)
    block = entry.wire.get(key)
    if block is None:
        block = entry.wire[key] = _lines(entry.headers(status, use_gzip, cache_control)) + b"\r\n"
    return block


# What the subclass relies on in uvicorn's protocol; without any of it, uvicorn runs unchanged.
_NEEDS = (
    "_start_asgi_task",
    "_unset_keepalive_if_required",
    "on_response_complete",
    "timeout_keep_alive_handler",
)


# The most a request's line and headers may take (nginx's default is 32 KiB too).
MAX_HEAD = 32 * 1024

# A repeat of the very same request bytes reuses its answer (see `Answers.repeat`): requests up to
# this size, this many remembered.
REPEAT_BYTES = 2048
REPEATS = 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """A fast answer, all but its Date line; `file` and `version` say which file version it is for."""

    file: str
    version: Version
    status: int
    rest: bytes  # the header lines after Date, with the blank line that ends them
    gzip: bool
    send_body: bool  # a 200 to a GET
    keep_alive: bool
    # For the access log.
    method: bytes
    url: bytes
    http_version: str

    def body(self, entry: Entry) -> bytes | None:
        if not self.send_body:
            return None
        return entry.gzipped if self.gzip and entry.gzipped is not None else entry.body


class Answers:
    """The fast answer to a request, shared by both protocols: what `FeedFiles.quick` decides, as
    the bytes to write."""

    def __init__(self, files: FeedFiles, dynamic: tuple[str, ...]) -> None:
        self.files = files
        self.dynamic = dynamic
        # The Date line: uvicorn replaces its default-headers list once a second.
        self._dated: tuple[object, bytes] = (None, b"")
        self._repeats: dict[bytes, _Known] = {}
        self._proved: dict[str, Entry] = {}  # file -> its entry, proved current this loop turn

    def answer(
        self, method: bytes, url: bytes, headers: dict[str, str], keep_alive: bool, http_version: str
    ) -> tuple[Answer, Entry] | None:
        """The answer to a GET or HEAD from the cache, and the entry it reads; None when the app
        must answer. `headers` holds the WANTED ones, lower-case."""
        if method != b"GET" and method != b"HEAD":
            return None
        if len(url) > MAX_URL or b"%" in url:
            return None
        try:
            if url[:1] == b"/" and b"?" not in url and b"#" not in url:
                path = url.decode("ascii")  # origin form without a query: the URL is the path
            else:
                path = httptools.parse_url(url).path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        if path.startswith(self.dynamic):
            return None
        found = self.files.quick(path, headers)
        if found is None:
            return None
        file, entry, status, use_gzip = found
        rest = wire_block(entry, status, use_gzip, self.files.cache_control)
        answer = Answer(
            file=file,
            version=entry.version,
            status=status,
            rest=rest if keep_alive else b"connection: close\r\n" + rest,
            gzip=use_gzip,
            send_body=status == 200 and method == b"GET",
            keep_alive=keep_alive,
            method=method,
            url=url,
            http_version=http_version,
        )
        return answer, entry

    def head(self, answer: Answer, defaults: list[tuple[bytes, bytes]]) -> bytes:
        """The status line and headers of `answer`, with uvicorn's current default headers (Date)."""
        if defaults is not self._dated[0]:
            self._dated = (defaults, _lines(defaults))
        return STATUS_LINE[answer.status] + self._dated[1] + answer.rest

    # Feed readers poll with the same request each time, byte for byte, and the answer depends only
    # on those bytes and the file's version. So a request that was answered here, alone in what one
    # read returned, is remembered with its answer; the same bytes again need no parsing, only the
    # proof that the file is still that version. Remembered answers hold no file content.

    def remember(self, request: bytes, answer: Answer) -> None:
        if len(request) > REPEAT_BYTES:
            return
        if len(self._repeats) >= REPEATS:
            del self._repeats[next(iter(self._repeats))]
        self._repeats[request] = _Known(answer)

    def repeat(
        self, request: bytes, defaults: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, bytes | None, Answer] | None:
        """(head, body or None, the answer) remembered for exactly these bytes, while the file is
        unchanged; else None."""
        known = self._repeats.get(request) if len(request) <= REPEAT_BYTES else None
        if known is None:
            return None
        answer = known.answer
        entry = self._proved.get(answer.file)
        if entry is None or entry.version != answer.version:
            entry = self._prove(answer.file, answer.version)
            if entry is None:
                del self._repeats[request]
                return None
        if known.defaults is not defaults:
            known.defaults, known.head = defaults, self.head(answer, defaults)
        if not answer.send_body:
            return known.head, None, answer
        return known.head, entry.gzipped if answer.gzip and entry.gzipped else entry.body, answer

    def _prove(self, file: str, version: Version) -> Entry | None:
        # One `stat` per file per turn of the event loop; the proofs are dropped at the next
        # turn. The requests of one turn are read within microseconds of each other, so an
        # answer reflects the file as it was at most that long before its request was read:
        # indistinguishable from network delay, and a rebuilt file is served from the next turn.
        entry = self.files.current(file, version)
        if entry is not None:
            if not self._proved:
                asyncio.get_running_loop().call_soon(self._proved.clear)
            self._proved[file] = entry
        return entry


class _Known:
    """A remembered answer, with its head for the Date line it was last sent with."""

    __slots__ = ("answer", "defaults", "head")

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.defaults: object = None
        self.head = b""


def log_answer(
    logger: logging.Logger,
    client: tuple[str, int] | None,
    method: bytes,
    url: bytes,
    version: str,
    status: int,
) -> None:
    """uvicorn's access-log line for an answer given outside the app."""
    try:
        parsed = httptools.parse_url(url)
        target = parsed.path.decode("ascii") + ("?" + parsed.query.decode("ascii") if parsed.query else "")
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        target = url.decode("ascii", "replace")
    shown = f"{client[0]}:{client[1]}" if client else "-"
    logger.info('%s - "%s %s HTTP/%s" %d', shown, method.decode("ascii"), target, version, status)


def uvicorn_protocol(answers: Answers) -> type[HttpToolsProtocol] | None:
    """uvicorn's httptools protocol, answering what `answers` can (see the module's doc), or None
    when this uvicorn lacks what the subclass builds on."""
    if not all(hasattr(HttpToolsProtocol, name) for name in _NEEDS):
        return None

    class FeedProtocol(HttpToolsProtocol):
        def __init__(
            self, config: Config, server_state: Any, app_state: dict[str, Any], **extra: Any
        ) -> None:
            super().__init__(config, server_state, app_state, **extra)
            self._answer: tuple[bytes, bytes | None, int, bool] | None = None
            self._head_bytes = 0
            self._too_big = 0  # the status refusing a request whose head is too big
            self._quiet_since: float | None = None
            self.access_log = self.access_log and self.access_logger.isEnabledFor(logging.INFO)

        # httptools sets no bound on a request's head, and uvicorn keeps every header line: a
        # client sending header lines without end would grow the process without end. Past
        # MAX_HEAD bytes the request is refused (414 for the URL, 431 for the headers), and the
        # connection closed.

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._head_bytes += len(url)
            if self._head_bytes > MAX_HEAD:
                self._too_big = self._too_big or 414
            else:
                super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
            if self._head_bytes > MAX_HEAD:
                self._too_big = self._too_big or 431
            else:
                super().on_header(name, value)

        def data_received(self, data: bytes) -> None:
            if self._too_big:
                return  # refused and closing
            super().data_received(data)
            if self._too_big:
                self._refuse(self._too_big)

        def _refuse(self, status: int) -> None:
            text = b"URI too long\n" if status == 414 else b"Request header fields too large\n"
            log.warning("refused a request from %s: %s", self.client, text.decode().strip())
            self.transport.write(
                b"".join(
                    (
                        STATUS_LINE[status],
                        _lines(self.server_state.default_headers),
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"x-content-type-options: nosniff\r\n",
                        b"content-length: %d\r\n" % len(text),
                        b"connection: close\r\n\r\n",
                        text,
                    )
                )
            )
            self.transport.close()

        # A request pipelined behind an answer that closed the connection is never started
        # (llhttp parses on after an HTTP/1.0 request with `Connection: keep-alive`), as with
        # uvicorn's own protocol, which queues it behind the answer.

        def on_headers_complete(self) -> None:
            if self._too_big or self.transport.is_closing():
                return
            answer = self._static()
            if answer is None:
                self._quiet_since = None  # the app answers: its response starts the quiet time
                super().on_headers_complete()
            else:
                self._answer = answer

        def on_body(self, body: bytes) -> None:
            if not self._too_big and not self.transport.is_closing():
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._too_big or (self._answer is None and self.transport.is_closing()):
                return
            answer = self._answer
            if answer is None:
                super().on_message_complete()
                return
            self._answer = None
            head, body, status, keep_alive = answer
            self.transport.write(head)
            if body:
                self.transport.write(body)
            if self.access_log:
                log_answer(
                    self.access_logger,
                    self.client,
                    self.parser.get_method(),
                    self.url,
                    self.parser.get_http_version(),
                    status,
                )
            if not keep_alive:
                self.transport.close()
            self.on_response_complete()

        # uvicorn cancels and re-creates the keep-alive timer for every request. Here one timer
        # stays armed and checks, when it fires, whether the connection has really been quiet
        # for the whole timeout: the same closing rule, without two timer operations per request.

        def _unset_keepalive_if_required(self) -> None:
            self._quiet_since = None  # a request is arriving; its response starts the quiet time

        def on_response_complete(self) -> None:
            self.server_state.total_requests += 1
            if self.transport.is_closing():
                return
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
                return
            self._quiet_since = self.loop.time()
            if self.timeout_keep_alive_task is None:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

        def timeout_keep_alive_handler(self) -> None:
            self.timeout_keep_alive_task = None
            if self._quiet_since is None:
                return  # a request is under way: its response re-arms the timer
            left = self._quiet_since + self.timeout_keep_alive - self.loop.time()
            if left > 0:
                self.timeout_keep_alive_task = self.loop.call_later(left, self.timeout_keep_alive_handler)
            else:
                super().timeout_keep_alive_handler()

        def _static(self) -> tuple[bytes, bytes | None, int, bool] | None:
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy or self.pipeline or self.expect_100_continue or self.flow.write_paused:
                return None
            headers: dict[str, str] = {}
            for name, value in self.headers:
                if name in WANTED:
                    headers[name.decode("latin-1")] = value.decode("latin-1")
                elif name in AVOID or (name == b"x-forwarded-for" and self.access_log):
                    return None
            version = self.parser.get_http_version()
            keep_alive = self.parser.should_keep_alive() and version != "1.0"
            found = answers.answer(self.parser.get_method(), self.url, headers, keep_alive, version)
            if found is None:
                return None
            answer, entry = found
            head = answers.head(answer, self.server_state.default_headers)
            return head, answer.body(entry), answer.status, keep_alive

    return FeedProtocol
