"""The fast path inside uvicorn's HTTP protocol, and the bound on a request's head.

`uvicorn_protocol` is the subclass of uvicorn's httptools protocol that a connection goes on in
once `publisher.server.front` has handed it over. It answers a GET or HEAD of a cached file in
feeds/ itself, from the parser's callbacks, with `publisher.server.answers`, when nothing else is
in flight on the connection.

Everything else goes to the ASGI app unchanged: other methods, the dynamic routes, a request with a
body or `Expect`, an upgrade, a long or percent-encoded URL, a file not yet cached or changed on
disk, a folder, a refusal, a 412, a request pipelined behind one the app is still answering, and
any request while the client is not reading what we write (the app's path waits for it).
"""

from __future__ import annotations

import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from publisher.server.answers import AVOID, WANTED, Answer, Answers, lines, log_answer

log = logging.getLogger("publisher.server")

# What the subclass relies on in uvicorn's protocol; without any of it, uvicorn runs unchanged.
_NEEDS = (
    "_start_asgi_task",
    "_unset_keepalive_if_required",
    "on_response_complete",
    "timeout_keep_alive_handler",
    "_should_upgrade",
)


# The most a request's line and headers may take (nginx's default is 32 KiB too).
MAX_HEAD = 32 * 1024


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
            self._answer: tuple[bytes, bytes | None, Answer] | None = None  # (head, body, answer)
            self._head_bytes = 0
            self._stalled = 0  # bytes read since the parser last reported progress
            self._progress = False
            self._too_big = 0  # the status refusing a request whose head is too big
            self._quiet_since: float | None = None
            self.access_log = self.access_log and self.access_logger.isEnabledFor(logging.INFO)

        # httptools sets no bound on a request's head, and uvicorn keeps every header line: a
        # client sending header lines without end would grow the process without end. Two
        # counts bound it: the bytes of the URL and header lines the parser reports, and the
        # bytes read while it reports no progress at all (it reports a header line only once it
        # has the whole line, so one endless line shows only there, and costs more the longer it
        # grows). Past MAX_HEAD the request is refused (414 for the URL, 431 otherwise), after
        # the answers to the requests before it, and the connection closed. Trailers after a
        # chunked body have a MAX_HEAD of their own.

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            self._progress = True
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
                return  # refused, or to be once the answers before it are out
            self._progress = False
            super().data_received(data)
            if self._progress:
                self._stalled = 0
            else:
                self._stalled += len(data)
                if self._stalled > MAX_HEAD:
                    self._too_big = self._too_big or 431
            if self._too_big and not self._busy:
                self._refuse()  # else on_response_complete does, after the last answer

        def _should_upgrade(self) -> bool:
            # A request not started (refused, or behind a closing answer) is never upgraded.
            if self._too_big or self.transport.is_closing():
                return False
            return bool(super()._should_upgrade())

        def _refuse(self) -> None:
            if self.transport.is_closing():
                return  # an answer before it closed the connection
            status = self._too_big
            text = b"URI too long\n" if status == 414 else b"Request header fields too large\n"
            log.warning("refused a request from %s: %s", self.client, text.decode().strip())
            self.transport.write(
                b"".join(
                    (
                        STATUS_LINE[status],
                        lines(self.server_state.default_headers),
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
            self._progress = True
            self._head_bytes = 0  # trailers, if any, count afresh
            if self._too_big or self.transport.is_closing():
                return
            answer = self._static()
            if answer is None:
                self._quiet_since = None  # the app answers: its response starts the quiet time
                super().on_headers_complete()
            else:
                self._answer = answer

        def on_body(self, body: bytes) -> None:
            self._progress = True
            if not self._too_big and not self.transport.is_closing():
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._progress = True
            if self._too_big or (self._answer is None and self.transport.is_closing()):
                return
            answer = self._answer
            if answer is None:
                super().on_message_complete()
                return
            self._answer = None
            head, body, fast = answer
            self.transport.write(head)
            if body:
                self.transport.write(body)
            if self.access_log:
                log_answer(self.access_logger, self.client, fast)
            if not fast.keep_alive:
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
            if self._too_big and not self.pipeline:
                self._refuse()  # the answers before the refused request are all out
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

        @property
        def _busy(self) -> bool:
            """Whether an answer is under way or requests wait behind one."""
            return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

        def _static(self) -> tuple[bytes, bytes | None, Answer] | None:
            if self._busy or self.expect_100_continue or self.flow.write_paused:
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
            return answers.head(answer, self.server_state.default_headers), answer.body(entry), answer

    return FeedProtocol
