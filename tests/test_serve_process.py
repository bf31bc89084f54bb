"""`publisher serve` as a real process on 127.0.0.1 (Hypercorn): what the in-process tests cannot
show — raw request lines no HTTP client would send, real gzip and keep-alive, SIGTERM, a port in use."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from publisher import tokens
from publisher.store import db
from publisher.store import subscribers as store
from tests.conftest import NOW, Project
from tests.support.serving import FILES, serve_process, write_feeds


def raw_request(url: str, request: bytes) -> bytes:
    """Send bytes as they are over one connection and return everything the server answers."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_real_server(project: Project, tmp_path: Path) -> None:
    """Feeds with validators and gzip, traversal refused at the socket, RFC 8058 one-click, 413."""
    write_feeds(project.feeds)
    conn = db.connect(project.settings().db_path)
    sub, _ = store.add(conn, "reader@example.org", "", NOW)
    conn.close()
    token = tokens.make(project.settings(), sub.id, sub.token_secret, "unsubscribe")
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=10) as http:
            r = http.get("/atom.xml", headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
            assert r.headers["content-encoding"] == "gzip"
            assert r.content == FILES["atom.xml"].encode()  # type: ignore[union-attr]
            assert "server" not in r.headers
            again = http.get(
                "/atom.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["etag"]}
            )
            assert again.status_code == 304 and again.content == b""
            head = http.head("/atom.xml", headers={"Accept-Encoding": "gzip"})
            assert head.status_code == 200 and head.headers["content-length"] == r.headers["content-length"]
            assert http.get("/").text == FILES["index.html"]

            one_click = http.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
            assert one_click.status_code == 200 and "set-cookie" not in one_click.headers
            big = http.post("/subscribe", content=b"x" * 100_000, headers={"Content-Type": "text/plain"})
            assert big.status_code == 413

        for path in (b"/../publisher.toml", b"/%2e%2e/publisher.toml", b"/..%2fpublisher.toml", b"/%00"):
            answer = raw_request(url, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 404 "), (path, answer[:80])
            assert b"[site]" not in answer
        absolute = raw_request(url, b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert absolute.startswith(b"HTTP/1.1 404 ")

    conn = db.connect(project.settings().db_path)
    assert store.by_email(conn, "reader@example.org").status == "unsubscribed"  # type: ignore[union-attr]
    conn.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_port_in_use_is_one_error_line(project: Project) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = project.cli("serve", "--port", str(port))
    assert result.code == 1
    assert result.err.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")
    assert len(result.err.strip().splitlines()) == 1


def test_bad_port_is_a_usage_error(project: Project) -> None:
    result = project.cli("serve", "--port", "70000")
    assert result.code == 2
    assert "Error: --port: 70000 is not a port number" in result.err


def test_background_server_for_publisher_run(project: Project) -> None:
    """`server.Background` (what `publisher run` uses when daemon.serve is on) serves from a thread
    and stops when told."""
    from publisher.clock import FixedClock
    from publisher.server import Background

    write_feeds(project.feeds)
    running = Background(project.settings(), FixedClock(NOW), "127.0.0.1", 0)
    url = running.start()
    try:
        r = httpx.get(url + "rss.xml", timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "application/rss+xml; charset=utf-8"
    finally:
        running.stop()
    assert not running.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "rss.xml", timeout=2)


def test_the_server_raises_its_open_file_limit() -> None:
    """Thousands of idle clients need a descriptor each until request_timeout closes them."""
    import resource

    from publisher.server.runner import WANTED_FILES, raise_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        raise_file_limit()
        raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised == (WANTED_FILES if hard == resource.RLIM_INFINITY else min(WANTED_FILES, hard))
        assert raised > 256 or hard <= 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_site_under_a_path_is_announced_at_its_path(project: Project, tmp_path: Path) -> None:
    """The start line said http://127.0.0.1:PORT/ for a site at https://…/news/, where only 404s are."""
    project.configure("")
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(
        text.replace("https://news.example.org/", "https://news.example.org/news/")
    )
    write_feeds(project.feeds)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/news/")
        with httpx.Client(timeout=10) as http:
            assert http.get(url).text == FILES["index.html"]
            bare = http.get(url.rstrip("/"), follow_redirects=False)
            assert (bare.status_code, bare.headers["location"]) == (301, "news/")


def test_listening_on_all_addresses_announces_an_address_a_browser_can_open(
    project: Project, tmp_path: Path
) -> None:
    """`--host 0.0.0.0` (or `::`) listens everywhere; the start line names the loopback address,
    which works, and says that it listens on all addresses (http://0.0.0.0/ opens nothing)."""
    from publisher.server.runner import announce, bind

    for everywhere, loopback in (("0.0.0.0", "127.0.0.1"), ("::", "[::1]")):
        try:
            sock = bind(everywhere, 0)
        except Exception:  # no IPv6 on this machine
            assert everywhere == "::"
            continue
        with sock:
            port = sock.getsockname()[1]
            assert announce(sock) == (
                f"http://{loopback}:{port}/ (listening on all addresses, {everywhere}: "
                "other machines use this one's name)"
            )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert announce(sock) == f"http://127.0.0.1:{sock.getsockname()[1]}/"

    write_feeds(project.feeds)
    with serve_process(project.config_path, tmp_path / "serve.log", "--host", "0.0.0.0", now=NOW) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}atom.xml", timeout=10).status_code == 200
