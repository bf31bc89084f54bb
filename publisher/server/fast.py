"""The fast path: a GET or HEAD of a cached file in feeds/ answered inside uvicorn's HTTP protocol.

Under uvicorn, a small response's cost is mostly the ASGI machinery around it: a scope dict, an
asyncio task and an event per request, and the `send` messages through each middleware layer. Feed
readers mostly poll, so most of a feed server's answers are `304 Not Modified`, and that fixed cost
made a 304 cost more than half of a full 368 KB response. Here a subclass of uvicorn's httptools
protocol answers such requests from the parser's callbacks, with header lines built once per file
version by `FeedFiles` (the same ones the app sends) and only the `Date` line added per request.

Everything else goes to the ASGI app unchanged: other methods, the dynamic routes, a request with a
body or `Expect`, an upgrade, a long or percent-encoded URL, a file not yet cached or changed on
disk, a folder, a refusal, a 412, a request pipelined behind one the app is still answering, and
any request while the client is not reading what we write (the app's path waits for it).
"""

from __future__ import annotations

import logging
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from publisher.server.security import MAX_URL
from publisher.server.static import Entry, FeedFiles

log = logging.getLogger("publisher.server")

# Request headers the answer depends on; the fast path reads no others.
_WANTED = frozenset(
    (b"accept-encoding", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since")
)
# Headers that announce a body or a protocol change: such requests take the app's path.
_AVOID = frozenset((b"content-length", b"transfer-encoding", b"upgrade"))


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


def protocol_for(files: FeedFiles, dynamic: tuple[str, ...]) -> type[HttpToolsProtocol] | str:
    """uvicorn's `http` protocol class, answering from `files` what it can (see the module's doc),
    or "httptools" (uvicorn's own) when this uvicorn lacks what the subclass builds on."""
    if not all(hasattr(HttpToolsProtocol, name) for name in _NEEDS):
        log.warning("this uvicorn's HTTP protocol is not one publisher knows; serving without the fast path")
        return "httptools"
    # The Date line: uvicorn replaces its default-headers list once a second.
    dated: list[Any] = [None, b""]

    class FeedProtocol(HttpToolsProtocol):
        def __init__(
            self, config: Config, server_state: Any, app_state: dict[str, Any], **extra: Any
        ) -> None:
            super().__init__(config, server_state, app_state, **extra)
            self._answer: tuple[bytes, bytes | None, int, bool] | None = None
            self._quiet_since: float | None = None
            self.access_log = self.access_log and self.access_logger.isEnabledFor(logging.INFO)

        def on_headers_complete(self) -> None:
            answer = self._static()
            if answer is None:
                self._quiet_since = None  # the app answers: its response starts the quiet time
                super().on_headers_complete()
            else:
                self._answer = answer

        def on_message_complete(self) -> None:
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
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    f"{self.client[0]}:{self.client[1]}" if self.client else "-",
                    self.parser.get_method().decode("ascii"),
                    self.url.decode("ascii", "replace"),
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
            method = self.parser.get_method()
            if method != b"GET" and method != b"HEAD":
                return None
            busy = self.cycle is not None and not self.cycle.response_complete
            if busy or self.pipeline or self.expect_100_continue or self.flow.write_paused:
                return None
            url = self.url
            if len(url) > MAX_URL or b"%" in url:
                return None
            headers: dict[str, str] = {}
            for name, value in self.headers:
                if name in _WANTED:
                    headers[name.decode("latin-1")] = value.decode("latin-1")
                elif name in _AVOID:
                    return None
            try:
                path = httptools.parse_url(url).path.decode("ascii")
            except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
                return None
            if path.startswith(dynamic):
                return None
            found = files.quick(path, headers)
            if found is None:
                return None
            entry, status, use_gzip = found
            keep_alive = self.parser.should_keep_alive() and self.parser.get_http_version() != "1.0"
            defaults = self.server_state.default_headers
            if defaults is not dated[0]:
                dated[:] = [defaults, _lines(defaults)]
            head = b"".join(
                (
                    STATUS_LINE[status],
                    dated[1],
                    b"" if keep_alive else b"connection: close\r\n",
                    wire_block(entry, status, use_gzip, files.cache_control),
                )
            )
            body = None
            if status == 200 and method == b"GET":
                body = entry.gzipped if use_gzip and entry.gzipped is not None else entry.body
            return head, body, status, keep_alive

    return FeedProtocol
