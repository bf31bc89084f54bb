"""`publisher serve` on a real socket (the in-thread server `publisher run` uses, on 127.0.0.1):
keep-alive and pipelining, closing rules, slow and incomplete clients, the bound on a request
head, and the security headers on error answers."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

from publisher.clock import FixedClock
from publisher.server import Background
from publisher.server.security import FEED_CSP
from publisher.server.security import HEADERS as SECURITY_HEADERS
from tests.conftest import NOW, Project
from tests.support.serving import FILES, write_feeds

TIMEOUT = 1  # serve.request_timeout for these tests, in seconds


def _serving(project: Project, request_timeout: float) -> Iterator[str]:
    write_feeds(project.feeds)
    with project.config_path.open("a", encoding="utf-8") as config:
        config.write(f"\n[serve]\nrequest_timeout = {request_timeout}\n")
    server = Background(project.settings(), FixedClock(NOW), "127.0.0.1", 0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def url(project: Project) -> Iterator[str]:
    yield from _serving(project, TIMEOUT)


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


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


def closed(sock: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (what it sent first, if
    anything, is read and dropped)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_keep_alive_and_pipelining_keep_the_order(url: str) -> None:
    """Files, a page, a 304, a HEAD and a 404 pipelined on one connection come back in order."""
    with socket.create_connection(address(url), timeout=10) as sock:
        buffer = bytearray()
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        tag = read_response(sock, buffer)[1]["etag"]
        sock.sendall(
            b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /subscribe HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + tag.encode() + b"\r\n\r\n"
            b"HEAD /rss.xml HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = [read_response(sock, buffer, head_only=i == 4) for i in range(6)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 304, 200, 404]
    assert answers[0][2] == FILES["atom.xml"].encode()  # type: ignore[union-attr]
    assert b"<form" in answers[1][2]
    assert answers[2][2] == FILES["rss.xml"].encode()  # type: ignore[union-attr]
    assert answers[3][1]["etag"] == tag and answers[3][2] == b""
    assert answers[4][1]["content-length"] == str(len(FILES["rss.xml"]))
    assert buffer == b""


@pytest.mark.parametrize(
    "request_line",
    [b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET /atom.xml HTTP/1.0\r\n\r\n"],
)
def test_a_closing_request_closes_the_connection(url: str, request_line: bytes) -> None:
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(request_line)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.") == 1 and answer.endswith(FILES["atom.xml"].encode())  # type: ignore[union-attr]


def test_an_idle_keep_alive_connection_is_closed(url: str) -> None:
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 200
        assert closed(sock, TIMEOUT + 3)


@pytest.mark.parametrize("sent", [b"", b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n"])
def test_a_connection_without_a_whole_request_is_closed(url: str, sent: bytes) -> None:
    """Nothing at all, or a head that never ends, even sent a byte at a time: closed after
    request_timeout, counted from the connection's start, not from the last byte."""
    with socket.create_connection(address(url), timeout=10) as sock:
        start = time.monotonic()
        sock.sendall(sent)
        sock.setblocking(False)
        trickled = 0
        while time.monotonic() - start < TIMEOUT + 3:
            try:
                if sock.recv(65536) == b"":
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            with contextlib.suppress(OSError):
                sock.send(b"X-Slow: y\r\n"[trickled % 11 : trickled % 11 + 1])
                trickled += 1
            time.sleep(0.1)
        else:
            pytest.fail("the server kept a connection with no whole request open")
        assert time.monotonic() - start >= TIMEOUT * 0.9


PATIENT = 60  # a request_timeout no test run comes near, however loaded the machine


@pytest.fixture
def patient_url(project: Project) -> Iterator[str]:
    yield from _serving(project, PATIENT)


def _half_open(url: str, count: int) -> list[socket.socket]:
    idle = []
    for _ in range(count):
        sock = socket.create_connection(address(url), timeout=10)
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        idle.append(sock)
    return idle


def test_hundreds_of_half_open_connections_do_not_stop_the_server(patient_url: str) -> None:
    """300 clients that start a request and never finish it: another client is answered while
    all 300 are still waiting (request_timeout is far away), so nobody waits for them."""
    idle = _half_open(patient_url, 300)
    try:
        with socket.create_connection(address(patient_url), timeout=PATIENT / 2) as other:
            other.sendall(b"GET /rss.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_response(other, bytearray())[0] == 200
        assert not any(closed(sock, 0.001) for sock in idle)  # still half-open: not what unblocked it
    finally:
        for sock in idle:
            sock.close()


def test_hundreds_of_half_open_connections_are_all_closed_after_request_timeout(url: str) -> None:
    idle = _half_open(url, 300)
    try:
        deadline = time.monotonic() + TIMEOUT + 10
        assert all(closed(sock, max(0.1, deadline - time.monotonic())) for sock in idle)
    finally:
        for sock in idle:
            sock.close()


def test_a_body_that_does_not_arrive_in_time_gets_408(url: str) -> None:
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nOrigin: http://x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nemail="
        )
        status, headers, _ = read_response(sock, bytearray())
        assert status == 408
        assert all(headers.get(name) == value for name, value in SECURITY_HEADERS.items())
        assert closed(sock, 5)


def test_a_request_head_over_32_kib_is_refused_and_closed(url: str) -> None:
    """Refused by the server itself (Hypercorn), before the app: 431, then the connection closes."""
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 40_000 + b"\r\n")
        status, _, _ = read_response(sock, bytearray())
        assert status == 431
        assert closed(sock, 5)
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n" + b"X-Fine: a\r\n" * 2000 + b"\r\n")
        assert read_response(sock, bytearray())[0] == 200


def test_a_request_hypercorn_cannot_parse_gets_its_bare_400(url: str) -> None:
    """Hypercorn answers it before the app, and has no setting to add headers to that answer:
    docs/serve.md says so, and the shipped nginx configuration adds them (test_serve_proxy.py)."""
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert status == 400 and body == b"" and headers["content-length"] == "0"
        assert closed(sock, 5)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"DELETE /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n"
            + b"a" * 16384
            + b"\r\n"
            b"4000\r\n" + b"a" * 16384 + b"\r\n0\r\n\r\n",
            413,
        ),
        (b"GET /unsubscribe/not-a-token HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_error_answers_carry_the_security_headers(url: str, request_bytes: bytes, status: int) -> None:
    with socket.create_connection(address(url), timeout=10) as sock:
        sock.sendall(request_bytes)
        found, headers, _ = read_response(sock, bytearray())
    assert found == status
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, (status, name)
    assert "server" not in headers


def test_a_file_rewritten_in_place_with_its_mtime_restored_is_served_new(url: str, project: Project) -> None:
    """Same size, same inode, mtime put back (`cp -p`, `rsync --inplace -t`): the change time
    still tells the cached copy is stale."""
    target = project.feeds / "atom.xml"
    request = b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n\r\n"
    old = target.read_bytes()
    new = old.replace(b"Test Gazette", b"Tset Gazette")
    assert len(new) == len(old) and new != old
    with socket.create_connection(address(url), timeout=10) as sock:
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


@pytest.mark.parametrize("path", ["/", "/index.html", "/atom.xml"])
def test_file_answers_and_their_304s_carry_the_security_headers(url: str, path: str) -> None:
    """The answers publisher serve makes from its file cache, full and conditional: every header
    of the set (a feed's CSP lets its XSLT stylesheet run, the rest is the same)."""
    expected = dict(SECURITY_HEADERS)
    if path.endswith(".xml"):
        expected["content-security-policy"] = FEED_CSP
    with socket.create_connection(address(url), timeout=10) as sock:
        buffer = bytearray()
        sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = read_response(sock, buffer)
        assert status == 200
        etag = headers["etag"]
        sock.sendall(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag.encode() + b"\r\n\r\n"
        )
        again, conditional, body = read_response(sock, buffer)
        assert again == 304 and body == b""
    for answer in (headers, conditional):
        assert {name: answer.get(name) for name in expected} == expected
