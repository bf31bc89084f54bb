"""Fast answers: what a GET or HEAD of a cached file in feeds/ gets, without the ASGI app, as bytes.

Under uvicorn, a small response's cost is mostly the machinery around it: uvicorn's per-request
set-up, a scope dict, an asyncio task and an event per request, and the `send` messages through
each middleware layer. Feed readers mostly poll, so most of a feed server's answers are
`304 Not Modified`, and that fixed cost made a 304 cost more than half of a full 368 KB response.

`Answers` decides such an answer (through `FeedFiles.quick`) and gives its bytes: header lines
built once per file version (the same ones the app sends), with only the `Date` line added per
request; and it remembers the answer to a request repeated byte for byte. Both of publisher's HTTP
protocols answer with it: `publisher.server.front`, where each connection starts, and the
subclass of uvicorn's protocol in `publisher.server.fast`, where a connection goes on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from publisher.server.security import MAX_URL
from publisher.server.static import Entry, FeedFiles, Version

# Request headers the answer depends on; the fast path reads no others.
WANTED = frozenset(
    (b"accept-encoding", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since")
)
# Headers that announce a body, an expectation or a protocol change: such requests take the app's path.
AVOID = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect"))


def lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def wire_block(entry: Entry, status: int, use_gzip: bool, cache_control: str) -> bytes:
    """The header lines of an answer, with the blank line that ends them, cached on the entry."""
    key = (status, use_gzip)
    block = entry.wire.get(key)
    if block is None:
        block = entry.wire[key] = lines(entry.headers(status, use_gzip, cache_control)) + b"\r\n"
    return block


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
        return entry.payload(self.gzip)


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
            self._dated = (defaults, lines(defaults))
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
        return known.head, answer.body(entry), answer

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


def log_answer(logger: logging.Logger, client: tuple[str, int] | None, answer: Answer) -> None:
    """uvicorn's access-log line for an answer given outside the app."""
    url = answer.url
    try:
        parsed = httptools.parse_url(url)
        target = parsed.path.decode("ascii") + ("?" + parsed.query.decode("ascii") if parsed.query else "")
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        target = url.decode("ascii", "replace")
    shown = f"{client[0]}:{client[1]}" if client else "-"
    method = answer.method.decode("ascii")
    logger.info('%s - "%s %s HTTP/%s" %d', shown, method, target, answer.http_version, answer.status)
