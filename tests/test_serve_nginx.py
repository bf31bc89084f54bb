"""Debian's nginx, configured by the shipped contrib/nginx.conf, in front of a real `publisher serve`
on 127.0.0.1: nginx answers atom.xml itself (200, 304, gzip, security headers) and passes the
subscriber routes through (a subscribe from the static form, an RFC 8058 one-click unsubscribe)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from publisher import tokens
from publisher.server.security import FEED_CSP
from publisher.server.security import HEADERS as SECURITY_HEADERS
from publisher.store import db
from publisher.store import subscribers as store
from tests.conftest import NOW, Project
from tests.support.serving import FILES, outbox, serve_process, wait_for, write_feeds

CONTRIB = Path(__file__).resolve().parents[1] / "contrib" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = "https://news.example.org"

pytestmark = pytest.mark.skipif(
    not os.access(NGINX, os.X_OK), reason="nginx is not installed (Debian: apt-get install nginx-light)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_config(feeds: Path, upstream: str, port: int) -> str:
    """contrib/nginx.conf with this test's folder and ports: each line replaced must be there."""
    text = CONTRIB.read_text(encoding="utf-8")
    for old, new in (
        ("server 127.0.0.1:8080;", f"server {upstream};"),
        ("root /srv/publisher/feeds;", f"root {feeds};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
    ):
        assert text.count(old) == 1, f"contrib/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx(project: Project, tmp_path: Path) -> Iterator[str]:
    """`publisher serve` and nginx in front of it; yields nginx's base URL."""
    write_feeds(project.feeds)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as upstream:
        work = tmp_path / "nginx"
        work.mkdir()
        port = free_port()
        (work / "site.conf").write_text(
            site_config(project.feeds, upstream.removeprefix("http://").rstrip("/"), port), encoding="utf-8"
        )
        mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read tmp_path
        (work / "nginx.conf").write_text(
            f"""{user}
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    {mime}
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/site.conf;
}}
""",
            encoding="utf-8",
        )
        check = subprocess.run(
            [NGINX, "-t", "-p", str(work), "-c", str(work / "nginx.conf")], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(
            [NGINX, "-p", str(work), "-c", str(work / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:

            def listening() -> bool:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    assert proc.poll() is None, (work / "error.log").read_text()
                    return False
                return True

            wait_for(listening)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_nginx_serves_feeds_and_passes_subscriber_routes(nginx: str, project: Project) -> None:
    settings = project.settings()
    conn = db.connect(settings.db_path)
    reader, _ = store.add(conn, "reader@example.org", "", NOW)
    store.set_status(conn, reader.id, "active", NOW)
    conn.close()
    token = tokens.make(settings, reader.id, reader.token_secret, "unsubscribe")

    with httpx.Client(base_url=nginx, timeout=10) as http:
        # Feeds: nginx's own answer, with validators, a 304, gzip and the headers.
        first = http.get("/atom.xml", headers={"Accept-Encoding": "identity"})
        assert first.status_code == 200
        assert first.content == FILES["atom.xml"].encode()  # type: ignore[union-attr]
        assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert first.headers["content-security-policy"] == FEED_CSP
        assert "server" not in first.headers or first.headers["server"] == "nginx"
        again = http.get(
            "/atom.xml", headers={"Accept-Encoding": "identity", "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        since = http.get("/atom.xml", headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304
        packed = http.get("/atom.xml", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
        assert packed.content == first.content
        missing = http.get("/.hidden")
        assert missing.status_code == 404
        for answer in (first, again, missing):
            for name, value in SECURITY_HEADERS.items():
                if name != "content-security-policy":
                    assert answer.headers.get(name) == value, (answer.status_code, name)
            assert len(answer.headers.get_list("x-frame-options")) == 1

        # A request nginx cannot parse: its own 400, with the headers too.
        host, port = nginx.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"\r\nX-Frame-Options: DENY\r\n" in answer, answer[:400]

        # Subscribing through the static form: the browser's Origin vouches for it.
        sent = http.post("/subscribe", data={"email": "new@example.org"}, headers={"Origin": SITE})
        assert sent.status_code == 200, sent.text
        assert "inbox" in sent.text.lower()
        assert sent.headers["content-security-policy"] == SECURITY_HEADERS["content-security-policy"]
        assert len(sent.headers.get_list("content-security-policy")) == 1
        message = wait_for(lambda: outbox(settings.state_dir))[0]
        assert message["To"] == "new@example.org"

        # RFC 8058 one-click, as a mail provider posts it: no cookie, no Origin.
        one_click = http.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200
        assert "set-cookie" not in one_click.headers

    conn = db.connect(settings.db_path)
    try:
        assert store.by_email(conn, "reader@example.org").status == "unsubscribed"  # type: ignore[union-attr]
        assert store.by_email(conn, "new@example.org").status == "pending"  # type: ignore[union-attr]
    finally:
        conn.close()
