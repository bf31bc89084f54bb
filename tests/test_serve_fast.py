"""The fast path (publisher.server.fast) against a real uvicorn on 127.0.0.1: it must answer exactly
as the app does, keep requests in order on a connection, and close idle connections as uvicorn does.

Each answer is compared with the one from the same server built without the fast path, byte for
byte apart from the Date line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from publisher.clock import FixedClock
from publisher.server import Background
from publisher.server.answers import Answers
from publisher.server.front import FrontProtocol
from publisher.server.static import FeedFiles, _version
from tests.conftest import BASE_CONFIG, NOW, Project
from tests.support.serving import FILES, write_feeds


@contextmanager
def both(project: Project) -> Iterator[tuple[str, str]]:
    """(fast URL, plain URL): the same site served with and without the fast path."""
    write_feeds(project.feeds)
    fast = Background(project.settings(), FixedClock(NOW), "127.0.0.1", 0)
    plain = Background(project.settings(), FixedClock(NOW), "127.0.0.1", 0, fast=False)
    fast.start()
    plain.start()
    try:
        yield fast.url, plain.url
    finally:
        fast.stop()
        plain.stop()


@pytest.fixture
def servers(project: Project) -> Iterator[tuple[str, str]]:
    with both(project) as urls:
        yield urls


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`servers` for tests that change nothing on disk."""
    project = Project(tmp_path_factory.mktemp("fast") / "site")
    project.seeds.mkdir(parents=True)
    project.config_path.write_text(BASE_CONFIG, encoding="utf-8")
    with both(project) as urls:
        yield urls


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests the fast path answered (FeedFiles.quick gave an answer, or a repeat was
    answered from memory), in order: URL paths, or the files of repeats."""
    seen: list[str] = []
    quick, repeat = FeedFiles.quick, Answers.repeat

    def counted_quick(self: FeedFiles, path: str, headers: Mapping[str, str]) -> object:
        found = quick(self, path, headers)
        if found is not None:
            seen.append(path)
        return found

    def counted_repeat(self: Answers, request: bytes, defaults: list[tuple[bytes, bytes]]) -> object:
        found = repeat(self, request, defaults)
        if found is not None:
            seen.append(found[2].file)
        return found

    monkeypatch.setattr(FeedFiles, "quick", counted_quick)
    monkeypatch.setattr(Answers, "repeat", counted_repeat)
    return seen


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes on a new connection; read until the server closes it."""
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def send_parts(url: str, parts: list[bytes], pause: float = 0.1) -> bytes:
    """Send each part as its own write (TCP_NODELAY), pausing between them; read until the server
    closes the connection (a reset after its answer counts as closed)."""
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for part in parts:
            sock.sendall(part)
            time.sleep(pause)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def read_response(
    sock: socket.socket, buffer: bytearray, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response from a keep-alive connection: (status, headers, body)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-response"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = 0 if head_only or status == 304 else int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        rest += chunk
    buffer[:] = rest[length:]
    return status, headers, rest[:length]


def normalised(response: bytes) -> tuple[str, list[str], bytes]:
    """(status line, sorted header lines without Date, body)."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert sum(line.lower().startswith("date: ") for line in lines) == 1
    headers = sorted(line.lower() for line in lines[1:] if not line.lower().startswith("date:"))
    return lines[0], headers, body


def etag_of(url: str, path: str, extra: str = "") -> str:
    answer = exchange(url, f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n".encode())
    _, headers, _ = normalised(answer)
    return next(line.split(":", 1)[1].strip() for line in headers if line.startswith("etag:"))


# Requests the fast path answers once the file is cached...
FAST = [
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\n",
    "HEAD /atom.xml HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: {plain}\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/{plain}\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: {plain}\r\nAccept-Encoding: gzip\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: {gzip}\r\nAccept-Encoding: gzip\r\n",
    'GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: "other", *\r\n',
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT\r\n",
    'GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: "other"\r\n'
    "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-Match: {plain}\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: Mon, 01 Jan 99999999999999999999 00:00 GMT\r\n",
    "GET /atom.xml?utm_source=reader HTTP/1.1\r\nHost: x\r\n",
    "GET http://x/atom.xml HTTP/1.1\r\nHost: x\r\n",
    "GET /atom.xml HTTP/1.0\r\n",
    "GET /atom.xml HTTP/1.0\r\nConnection: keep-alive\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\n",
    "GET /articles/ HTTP/1.1\r\nHost: x\r\n",
    "GET /articles/first.html HTTP/1.1\r\nHost: x\r\n",
    "GET /logo.png HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n",
    "GET /feed.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n",
    "GET /style.css HTTP/1.1\r\nHost: x\r\n",
]
# ... and requests it leaves to the app.
APP = [
    'GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-Match: "other"\r\n',  # 412
    "GET /articles HTTP/1.1\r\nHost: x\r\n",  # a folder: redirect
    "GET /missing.xml HTTP/1.1\r\nHost: x\r\n",
    "GET /.hidden HTTP/1.1\r\nHost: x\r\n",
    "GET /../publisher.toml HTTP/1.1\r\nHost: x\r\n",
    "GET /%2e%2e/publisher.toml HTTP/1.1\r\nHost: x\r\n",
    "GET /atom%2exml HTTP/1.1\r\nHost: x\r\n",
    "GET /subscribe.css HTTP/1.1\r\nHost: x\r\n",  # a route of the app's (/subscribe has a nonce)
    "POST /atom.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n",
    "GET /" + "a" * 2100 + " HTTP/1.1\r\nHost: x\r\n",
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nNot a header\r\n",  # uvicorn's 400
    "GET /atom.xml HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n",
]


@pytest.mark.parametrize("template", FAST + APP)
def test_the_fast_path_answers_exactly_as_the_app(
    shared: tuple[str, str], answered: list[str], template: str
) -> None:
    fast, plain = shared
    tags = {
        "plain": etag_of(plain, "/atom.xml"),
        "gzip": etag_of(plain, "/atom.xml", "Accept-Encoding: gzip\r\n"),
    }
    assert tags["plain"] != tags["gzip"]
    head, _, body = template.format(**tags).partition("\r\n\r\n")
    request = (head.removesuffix("\r\n") + "\r\nConnection: close\r\n\r\n" + body).encode()
    # Twice: the first request may read the file into the cache; the second can take the fast path.
    for _ in range(2):
        expected = normalised(exchange(plain, request))
        answered.clear()
        got = normalised(exchange(fast, request))
        assert got == expected
    assert bool(answered) == (template in FAST)


def test_keep_alive_and_pipelining_keep_the_order(servers: tuple[str, str]) -> None:
    """Fast answers, app answers and a 304 pipelined on one connection come back in order."""
    fast, _ = servers
    tag = etag_of(fast, "/atom.xml")
    etag_of(fast, "/rss.xml")  # cached, so both feeds take the fast path
    with socket.create_connection(address(fast), timeout=10) as sock:
        sock.sendall(
            b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + tag.encode() + b"\r\n\r\n"
            b"HEAD /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        buffer = bytearray()
        answers = [read_response(sock, buffer, head_only=i == 4) for i in range(6)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 304, 200, 404]
    assert answers[0][2] == FILES["atom.xml"].encode()  # type: ignore[union-attr]
    assert b"<form" in answers[1][2]
    assert answers[2][2] == FILES["rss.xml"].encode()  # type: ignore[union-attr]
    assert answers[3][1]["etag"] == tag and answers[3][2] == b""
    assert answers[4][1]["content-length"] == str(len(FILES["rss.xml"]))
    assert buffer == b""


def test_a_file_changed_on_disk_is_served_new(servers: tuple[str, str], project: Project) -> None:
    fast, _ = servers
    old = etag_of(fast, "/atom.xml")
    assert etag_of(fast, "/atom.xml") == old  # now answered from the cache
    target = project.feeds / "atom.xml"
    replacement = target.with_name("atom.xml.new")
    replacement.write_text(FILES["atom.xml"].replace("Test Gazette", "Changed Gazette"), encoding="utf-8")  # type: ignore[union-attr]
    replacement.replace(target)
    answer = exchange(
        fast,
        f"GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: {old}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Changed Gazette" in answer
    target.unlink()
    gone = exchange(
        fast,
        f"GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: {old}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert gone.startswith(b"HTTP/1.1 404 ")


def test_idle_connections_close_after_the_keep_alive_timeout(servers: tuple[str, str]) -> None:
    """uvicorn's rule (5 s of quiet after a response) holds with the fast path's single timer: a
    connection used every second stays open past the timeout, an idle one is closed."""
    fast, _ = servers
    etag_of(fast, "/atom.xml")
    with (
        socket.create_connection(address(fast), timeout=10) as busy,
        socket.create_connection(address(fast), timeout=10) as idle,
    ):
        buffer = bytearray()
        idle.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(idle, bytearray())[0] == 200
        quiet_from = time.monotonic()
        for _ in range(7):
            busy.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(busy, buffer)[0] == 200
            time.sleep(1)
        # The idle connection was closed by the server after about 5 s.
        idle.settimeout(5)
        assert idle.recv(1) == b""
        assert time.monotonic() - quiet_from >= 4.5
        busy.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(busy, buffer)[0] == 200


def test_access_log_lines_match_the_apps(servers: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    """With uvicorn's access log on, a fast answer logs the same line as the app's path would."""
    fast, plain = servers
    tag = etag_of(fast, "/atom.xml")
    etag_of(plain, "/atom.xml")
    request = f"GET /atom.xml?x=1 HTTP/1.1\r\nHost: x\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n"
    lines = []
    for url in (fast, plain):
        caplog.clear()
        with caplog.at_level("INFO", logger="uvicorn.access"):
            exchange(url, request.encode())
        found = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
        assert len(found) == 1
        lines.append(found[0].split(" - ", 1)[1])
    assert lines[0] == lines[1] == '"GET /atom.xml?x=1 HTTP/1.1" 304'


@pytest.mark.parametrize(
    "first",
    [
        b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        # llhttp takes this for keep-alive and parses on; the answer closes the connection.
        b"GET /atom.xml HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ],
)
@pytest.mark.parametrize("handed_over", [False, True])
def test_nothing_pipelined_after_a_closing_answer_is_started(
    servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch, first: bytes, handed_over: bool
) -> None:
    """A request pipelined behind one answered with a close is never handed to the app, as with
    plain uvicorn, in the front protocol and after the connection went to uvicorn's (a request
    split over two reads first)."""
    fast, _ = servers
    etag_of(fast, "/atom.xml")  # cached: the GET takes the fast path and answers at once
    started: list[str] = []
    original = HttpToolsProtocol._start_asgi_task

    def start(self: HttpToolsProtocol, cycle: Any, app: Any) -> None:
        started.append(cycle.scope["path"])
        original(self, cycle, app)

    monkeypatch.setattr(HttpToolsProtocol, "_start_asgi_task", start)
    with socket.create_connection(address(fast), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if handed_over:
            sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHo")
            time.sleep(0.2)
            sock.sendall(b"st: x\r\n\r\n")
            assert read_response(sock, bytearray())[0] == 200
        sock.sendall(
            first + b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nemail"
            b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    assert answer.count(b"HTTP/1.1 ") == 1 and answer.startswith(b"HTTP/1.1 200 ")
    assert started == []
    exchange(fast, b"GET /subscribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert started == ["/subscribe"]  # the counting works


# -- the front protocol (publisher.server.front): where each connection starts --------------------


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """One item per connection handed over to uvicorn's protocol."""
    seen: list[str] = []
    original = HttpToolsProtocol.connection_made

    def made(self: HttpToolsProtocol, transport: Any) -> None:
        seen.append("handed")
        original(self, transport)

    monkeypatch.setattr(HttpToolsProtocol, "connection_made", made)
    return seen


def test_plain_polls_stay_in_the_front_protocol(
    servers: tuple[str, str], handed: list[str], answered: list[str]
) -> None:
    """Repeated, pipelined and conditional GETs of cached files never reach uvicorn's protocol,
    and a repeat of the very same bytes gets the very same answer."""
    fast, _ = servers
    tag = etag_of(fast, "/atom.xml")
    etag_of(fast, "/rss.xml")
    handed.clear()
    answered.clear()
    poll = f"GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: {tag}\r\n\r\n".encode()
    with socket.create_connection(address(fast), timeout=10) as sock:
        buffer = bytearray()
        seen = []
        for _ in range(5):
            sock.sendall(poll)
            seen.append(read_response(sock, buffer))
        sock.sendall(
            b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n" + poll + b"HEAD /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        seen += [read_response(sock, buffer, head_only=i == 2) for i in range(3)]
    assert [status for status, _, _ in seen] == [304] * 5 + [200, 304, 200]
    assert all(answer[1:] == seen[0][1:] for answer in seen[1:5] + seen[6:7])
    assert seen[5][2] == FILES["atom.xml"].encode()  # type: ignore[union-attr]
    assert handed == [] and len(answered) == 8


def test_a_repeated_request_sees_a_file_changed_on_disk(servers: tuple[str, str], project: Project) -> None:
    """The remembered answer to a repeated request is not reused once the file has changed."""
    fast, _ = servers
    request = b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    target = project.feeds / "atom.xml"
    with socket.create_connection(address(fast), timeout=10) as sock:
        buffer = bytearray()
        for _ in range(3):
            sock.sendall(request)
            status, _, body = read_response(sock, buffer)
            assert status == 200 and b"Test Gazette" in body
        replacement = target.with_name("atom.xml.new")
        replacement.write_text(FILES["atom.xml"].replace("Test Gazette", "Changed Gazette"), encoding="utf-8")  # type: ignore[union-attr]
        replacement.replace(target)
        sock.sendall(request)
        status, _, body = read_response(sock, buffer)
        assert status == 200 and b"Changed Gazette" in body
        target.unlink()
        sock.sendall(request)
        assert read_response(sock, buffer)[0] == 404


def test_a_request_split_over_reads_is_answered(servers: tuple[str, str], handed: list[str]) -> None:
    """A request that arrives in pieces goes, with its connection, to uvicorn's protocol, which
    answers it and what follows."""
    fast, _ = servers
    tag = etag_of(fast, "/atom.xml")
    handed.clear()
    with socket.create_connection(address(fast), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, buffer)[0] == 200
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHo")
        time.sleep(0.2)
        sock.sendall(f"st: x\r\nIf-None-Match: {tag}\r\n\r\n".encode())
        assert read_response(sock, buffer)[0] == 304
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = read_response(sock, buffer)
        assert status == 200 and body == FILES["atom.xml"].encode()  # type: ignore[union-attr]
    assert handed == ["handed"]


def test_a_client_that_does_not_read_stops_the_reading(
    servers: tuple[str, str], project: Project, monkeypatch: pytest.MonkeyPatch, handed: list[str]
) -> None:
    """A client that asks for big files and reads nothing for a while: the front protocol stops
    reading its requests while its answers back up, pipelined big answers go to uvicorn's
    protocol (one at a time), and every answer then arrives whole and in order."""
    fast, _ = servers
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB, not compressible, cached (limit 4 MiB)
    (project.feeds / "big.bin").write_bytes(big)
    paused: list[bool] = []
    original = FrontProtocol.pause_writing

    def pause(self: FrontProtocol) -> None:
        paused.append(True)
        original(self)

    monkeypatch.setattr(FrontProtocol, "pause_writing", pause)
    request = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    exchange(fast, request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))  # cached now
    handed.clear()
    with socket.create_connection(address(fast), timeout=20) as sock:
        for _ in range(3):  # one request per read
            sock.sendall(request)
            time.sleep(0.2)
        sock.sendall(request * 4)  # pipelined in one read
        time.sleep(0.3)
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(7)]
    assert paused and handed == ["handed"]
    assert all(status == 200 and body == big for status, _, body in answers)
    assert buffer == b""


def test_the_keep_alive_timer_spares_a_connection_the_app_is_answering(
    servers: tuple[str, str], project: Project
) -> None:
    """A fast answer, then app answers pipelined behind it that wait on a client not reading for
    longer than the keep-alive timeout: the quiet time starts only after the last answer."""
    fast, _ = servers
    big = bytes(range(256)) * (12 * 1024)
    (project.feeds / "big.bin").write_bytes(big)
    etag_of(fast, "/atom.xml")
    with socket.create_connection(address(fast), timeout=20) as sock:
        sock.sendall(
            b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            + b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 3
            + b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        time.sleep(6.5)  # the timeout is 5 s
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(5)]
    assert [status for status, _, _ in answers] == [200] * 5
    assert all(body == big for _, _, body in answers[1:4])


def test_idle_front_connections_do_not_delay_a_stop(project: Project) -> None:
    """A graceful stop closes connections waiting between requests at once."""
    write_feeds(project.feeds)
    server = Background(project.settings(), FixedClock(NOW), "127.0.0.1", 0)
    server.start()
    try:
        etag_of(server.url, "/atom.xml")
        with socket.create_connection(address(server.url), timeout=10) as sock:
            sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock, bytearray())[0] == 200
            started = time.monotonic()
            server.stop()
            assert not server.thread.is_alive()
            assert time.monotonic() - started < 3  # the graceful timeout is 5 s
            assert sock.recv(1) == b""
    finally:
        server.stop()


def test_access_log_with_a_proxy_names_the_forwarded_client(
    servers: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Behind a trusted proxy (127.0.0.1) the log line names the client the proxy forwarded for,
    with or without the fast path, and before or after the same request was answered fast."""
    fast, plain = servers
    request = (
        b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n"
    )
    for url in (fast, plain):
        exchange(url, request)  # cached, and answered once while the access log is off
    lines = []
    for url in (fast, plain):
        caplog.clear()
        with caplog.at_level("INFO", logger="uvicorn.access"):
            exchange(url, request)
        lines += [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(lines) == 2 and all(line.startswith("203.0.113.9:") for line in lines), lines


def test_remembered_answers_are_bounded(project: Project) -> None:
    """At most REPEATS answers are remembered, none for a request over REPEAT_BYTES."""
    from publisher.server.answers import REPEAT_BYTES, REPEATS, Answer

    answers = Answers(FeedFiles(project.feeds, 60), ())
    answer = Answer(
        file="x",
        version=(0, 0, 0, 0),
        status=304,
        rest=b"",
        gzip=False,
        send_body=False,
        keep_alive=True,
        method=b"GET",
        url=b"/x",
        http_version="1.1",
    )
    for number in range(REPEATS + 50):
        answers.remember(b"GET /%d" % number, answer)
    answers.remember(b"G" * (REPEAT_BYTES + 1), answer)
    assert len(answers._repeats) == REPEATS
    assert b"GET /0" not in answers._repeats and b"GET /%d" % (REPEATS + 49) in answers._repeats


HEAD_START = b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n"
# Status lines in raw answers (a body may end without a line break before the next answer).
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


@pytest.mark.parametrize(
    ("start", "filler", "end", "status"),
    [
        (HEAD_START, b"X-Filler: " + b"a" * 1000 + b"\r\n", b"\r\n", 431),  # header lines without end
        (HEAD_START + b"X-Filler: ", b"a" * 1000, b"\r\n\r\n", 431),  # one header line without end
        (HEAD_START + b"X-", b"a" * 1000, None, 431),  # one header name without end
        (b"GET /", b"a" * 1000, b"", 414),  # a URL without end
    ],
)
def test_a_request_head_without_end_is_refused(
    servers: tuple[str, str], start: bytes, filler: bytes, end: bytes | None, status: int
) -> None:
    """httptools bounds no request head, and uvicorn keeps every header: past 32 KiB the server
    refuses the request and closes the connection, long before the client is done sending (one
    endless header line included, which httptools reports to no one until it ends).
    (Only with publisher's protocols: uvicorn's own, the comparison server here, has no bound.)"""
    fast, _ = servers
    with socket.create_connection(address(fast), timeout=10) as sock:
        sock.sendall(start)
        sent = 0
        with pytest.raises(OSError):  # reset or broken pipe: the server has closed
            while sent < 50_000_000:
                sock.sendall(filler * 100)
                sent += len(filler) * 100
        assert sent < 10_000_000
    if end is None:
        return  # the name, ended, is not a header line: uvicorn's 400
    # The answer, on a connection sending 40 KB and the end of the head (or of the URL's read).
    answer = send_parts(fast, [start + filler * 40 + end], pause=0)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
    text = b"URI too long\n" if status == 414 else b"Request header fields too large\n"
    assert answer.endswith(b"\r\n\r\n" + text)


def test_a_refused_head_is_answered_after_the_requests_before_it(servers: tuple[str, str]) -> None:
    """The refusal waits for the answers to the requests pipelined before it (an app page here),
    in one read with it or not, and a head past the bound is refused however the reads split it."""
    fast, _ = servers
    big = HEAD_START + b"X-Filler: " + b"a" * 40_000 + b"\r\n\r\n"
    for parts in ([b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n" + big], [big], [big[:100], big[100:]]):
        answer = send_parts(fast, parts)
        statuses = [int(status) for status in STATUS_LINE.findall(answer)]
        expected = [200, 431] if len(parts) == 1 and parts[0] != big else [431]
        assert statuses == expected, (parts[0][:40], statuses)


def test_no_upgrade_for_a_request_that_is_not_started(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a WebSocket library installed (uvicorn[standard]), a request refused for its head, or
    pipelined behind a closing answer, is not upgraded, and nothing escapes the protocol."""
    import uvicorn.protocols.websockets.auto as auto

    class Upgraded(asyncio.Protocol):
        def __init__(self, **_: Any) -> None:
            pass

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
            self.transport.close()

    monkeypatch.setattr(auto, "AutoWebSocketsProtocol", Upgraded)
    upgrade = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    with both(project) as (fast, _):
        etag_of(fast, "/atom.xml")
        cases = {
            b"101": [upgrade + b"\r\n"],  # the control: upgrades do happen
            b"431": [upgrade, (b"X-F: " + b"a" * 1000 + b"\r\n") * 40 + b"\r\n"],
            b"200": [
                b"GET /atom.xml HTTP/1.1\r\nHo",  # split: the connection goes to uvicorn's protocol
                b"st: x\r\n\r\nGET /atom.xml HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + upgrade + b"\r\n",
            ],
        }
        for last, parts in cases.items():
            statuses = STATUS_LINE.findall(send_parts(fast, parts, pause=0.2))
            assert statuses[-1] == last and b"101" not in statuses[:-1], statuses


def test_a_request_head_within_the_bound_is_answered(servers: tuple[str, str]) -> None:
    """A head just under 32 KiB (big cookies, say) is answered as usual, by both paths."""
    filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    for url in servers:
        answer = exchange(
            url, b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n" + filler * 30 + b"Connection: close\r\n\r\n"
        )
        assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_slow_reader_is_not_taken_for_an_idle_connection(
    servers: tuple[str, str], project: Project
) -> None:
    """A client that asks for big files and reads nothing for longer than the keep-alive timeout,
    with its later requests unread by the server: the connection is not closed under it (which
    would reset it and lose what was sent), and every answer arrives."""
    fast, _ = servers
    big = bytes(range(256)) * (12 * 1024)
    (project.feeds / "big.bin").write_bytes(big)
    request = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    exchange(fast, request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))  # cached now
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.settimeout(20)
        sock.connect(address(fast))
        for _ in range(3):
            sock.sendall(request)
            time.sleep(1)
        time.sleep(5)  # 5 s of keep-alive after the first answer have long passed
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(3)]
    assert all(status == 200 and body == big for status, _, body in answers)


def test_thousands_of_pipelined_heads_are_answered_in_order(servers: tuple[str, str]) -> None:
    fast, _ = servers
    etag_of(fast, "/atom.xml")
    count = 4000
    with socket.create_connection(address(fast), timeout=20) as sock:
        request = b"HEAD /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
        sender = threading.Thread(target=sock.sendall, args=(request * count,))
        sender.start()
        buffer = bytearray()
        answers = [read_response(sock, buffer, head_only=True) for _ in range(count)]
        sender.join()
    assert all(status == 200 for status, _, _ in answers)
    assert buffer == b""


class _Recorder:
    """A transport that keeps what is written, and the protocol it is handed to."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: list[bytes]) -> None:
        self.written.extend(data)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_the_front_writes_at_most_a_mebibyte_from_one_read(project: Project) -> None:
    """Small answers to requests pipelined in one read are written together up to 1 MiB; a read
    asking for more goes, whole, to uvicorn's protocol (which writes one answer at a time)."""
    from publisher.server.front import PIPELINED_BYTES

    write_feeds(project.feeds)
    files = FeedFiles(project.feeds, 60)
    atom = str(project.feeds / "atom.xml")
    taken: list[bytes] = []

    class Successor:
        def __init__(self, **_: Any) -> None:
            pass

        def connection_made(self, transport: Any) -> None:
            pass

        def data_received(self, data: bytes) -> None:
            taken.append(data)

    front = type("Front", (FrontProtocol,), {"answers": Answers(files, ()), "successor": Successor})
    config: Any = SimpleNamespace(access_log=False, timeout_keep_alive=5)
    state = SimpleNamespace(connections=set(), default_headers=[(b"date", b"x")], total_requests=0)
    request = b"HEAD /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"

    async def run() -> None:
        await files.load(atom, os.stat(atom))
        protocol = front(config, state, {})
        transport = _Recorder()
        protocol.connection_made(transport)  # type: ignore[arg-type]
        protocol.data_received(request * 100)
        assert sum(answer.startswith(b"HTTP/1.1 200 ") for answer in transport.written) == 100
        assert sum(map(len, transport.written)) < PIPELINED_BYTES and taken == []
        answer = len(transport.written[0])
        many = request * (PIPELINED_BYTES // answer + 10)
        transport.written.clear()
        protocol.data_received(many)
        assert transport.written == [] and taken == [many] and transport.protocol is not None
        protocol.connection_lost(None)

    asyncio.run(run())


def test_a_file_rewritten_in_place_with_its_mtime_restored_is_served_new(
    servers: tuple[str, str], project: Project
) -> None:
    """Same size, same inode, mtime put back (`cp -p`, `rsync --inplace -t`): the change time
    still tells the cached copy is stale, for a repeated request too."""
    fast, _ = servers
    target = project.feeds / "atom.xml"
    request = b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    old = target.read_bytes()
    new = old.replace(b"Test Gazette", b"Tset Gazette")
    assert len(new) == len(old) and new != old
    with socket.create_connection(address(fast), timeout=10) as sock:
        buffer = bytearray()
        for _ in range(3):
            sock.sendall(request)
            assert read_response(sock, buffer)[2] == old
        before = target.stat()
        time.sleep(0.05)
        with target.open("r+b") as handle:
            handle.write(new)
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert target.stat().st_mtime_ns == before.st_mtime_ns and target.stat().st_ino == before.st_ino
        sock.sendall(request)
        assert read_response(sock, buffer)[2] == new


def test_a_file_changed_since_its_stat_is_served_but_not_cached(project: Project) -> None:
    """FeedFiles.load reads a file found by an earlier `stat`; if the file changed in between (or
    while being read), the entry carries the version read, is served, and is not cached."""
    write_feeds(project.feeds)
    files = FeedFiles(project.feeds, 60)
    atom = project.feeds / "atom.xml"
    before = os.stat(atom)
    time.sleep(0.01)
    atom.write_bytes(atom.read_bytes() + b"\n")  # in place: same inode, new size and times

    async def load(st: os.stat_result) -> Any:
        return await files.load(str(atom), st)

    entry = asyncio.run(load(before))
    assert entry is not None and entry.body == atom.read_bytes()
    assert entry.version == _version(os.stat(atom)) != _version(before)  # the version read
    assert str(atom) not in files._cache
    entry = asyncio.run(load(os.stat(atom)))
    assert files.current(str(atom)) is entry  # a current stat: cached
