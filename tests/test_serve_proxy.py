"""The shipped proxy configurations, run by Debian's nginx and Caddy in front of a real
`publisher serve` on 127.0.0.1: the web server answers atom.xml itself (200, 304, gzip, content
type, security headers) and passes the subscriber routes through (a subscribe from the static
form, an RFC 8058 one-click unsubscribe). Each configuration is contrib/'s file with only its
address, root and upstream replaced (each asserted present)."""

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

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
SITE = "https://news.example.org"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def templated(name: str, replacements: tuple[tuple[str, str], ...]) -> str:
    """contrib/NAME with this test's folder and ports: each text replaced must be there once."""
    text = (CONTRIB / name).read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, f"contrib/{name} no longer has {old!r}"
        text = text.replace(old, new)
    return text


def running(
    command: list[str], port: int, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a web server and wait until it accepts connections on 127.0.0.1:port."""
    with log.open("wb") as err:
        proc = subprocess.Popen(command, stdout=err, stderr=subprocess.STDOUT, env=env)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            assert proc.poll() is None, log.read_text()
            return False
        return True

    wait_for(listening)
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_nginx(work: Path, feeds: Path, upstream: str, port: int) -> subprocess.Popen[bytes]:
    site = templated(
        "nginx.conf",
        (
            ("server 127.0.0.1:8080;", f"server {upstream};"),
            ("root /srv/publisher/feeds;", f"root {feeds};"),
            ("listen 80;", f"listen 127.0.0.1:{port};"),
        ),
    )
    (work / "site.conf").write_text(site, encoding="utf-8")
    mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read tmp_path
    temp = " ".join(f"{kind}_temp_path {work}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(
        f"{user}\ndaemon off;\nworker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log warn;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{ {mime} access_log off; client_body_temp_path {work}/body; {temp}\n"
        f"include {work}/site.conf; }}\n",
        encoding="utf-8",
    )
    command = [NGINX, "-p", str(work), "-c", str(work / "nginx.conf")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    return running(command, port, work / "nginx.log")


def start_caddy(work: Path, feeds: Path, upstream: str, port: int) -> subprocess.Popen[bytes]:
    config = templated(
        "Caddyfile",
        (
            # No admin endpoint (tests run side by side) and no certificates: plain HTTP here.
            ("{\n\tservers {", "{\n\tadmin off\n\tservers {"),
            ("news.example.org {", f"http://127.0.0.1:{port} {{"),
            ("root * /srv/publisher/feeds", f"root * {feeds}"),
            ("reverse_proxy 127.0.0.1:8080", f"reverse_proxy {upstream}"),
        ),
    )
    (work / "Caddyfile").write_text(config, encoding="utf-8")
    env = {**os.environ, "HOME": str(work), "XDG_DATA_HOME": str(work), "XDG_CONFIG_HOME": str(work)}
    command = [CADDY, "run", "--adapter", "caddyfile", "--config", str(work / "Caddyfile")]
    return running(command, port, work / "caddy.log", env)


SERVERS = {
    "nginx": (NGINX, start_nginx, signal.SIGQUIT, "apt-get install nginx-light"),
    "caddy": (CADDY, start_caddy, signal.SIGTERM, "apt-get install caddy"),
}


@pytest.fixture(params=sorted(SERVERS))
def proxy(request: pytest.FixtureRequest, project: Project, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`publisher serve` with nginx or Caddy in front of it: (server name, the proxy's base URL)."""
    name = request.param
    binary, start, stop_signal, install = SERVERS[name]
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{name} is not installed (Debian: {install})")
    write_feeds(project.feeds)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as upstream:
        work = tmp_path / name
        work.mkdir()
        port = free_port()
        proc = start(work, project.feeds, upstream.removeprefix("http://").rstrip("/"), port)
        try:
            yield name, f"http://127.0.0.1:{port}"
        finally:
            stop(proc, stop_signal)


def test_the_proxy_serves_feeds_and_passes_subscriber_routes(
    proxy: tuple[str, str], project: Project
) -> None:
    name, url = proxy
    settings = project.settings()
    conn = db.connect(settings.db_path)
    reader, _ = store.add(conn, "reader@example.org", "", NOW)
    store.set_status(conn, reader.id, "active", NOW)
    conn.close()
    token = tokens.make(settings, reader.id, reader.token_secret, "unsubscribe")

    with httpx.Client(base_url=url, timeout=10) as http:
        # Feeds: the web server's own answer, with validators, a 304, gzip and the headers.
        first = http.get("/atom.xml", headers={"Accept-Encoding": "identity"})
        assert first.status_code == 200
        assert first.content == FILES["atom.xml"].encode()  # type: ignore[union-attr]
        assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert first.headers["content-security-policy"] == FEED_CSP
        assert first.headers["etag"] and first.headers["last-modified"]
        again = http.get(
            "/atom.xml", headers={"Accept-Encoding": "identity", "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        since = http.get("/atom.xml", headers={"If-Modified-Since": first.headers["last-modified"]})
        assert since.status_code == 304
        packed = http.get("/atom.xml", headers={"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
        assert packed.content == first.content
        rss = http.get("/rss.xml")
        assert rss.headers["content-type"] == "application/rss+xml; charset=utf-8"
        assert http.get("/feed.json").headers["content-type"] == "application/feed+json"
        missing = http.get("/.hidden")
        assert missing.status_code == 404
        for answer in (first, again, missing):
            for header, value in SECURITY_HEADERS.items():
                if header != "content-security-policy":
                    assert answer.headers.get(header) == value, (answer.status_code, header)
            assert len(answer.headers.get_list("x-frame-options")) == 1

        # Subscribing through the static form: the browser's Origin vouches for it.
        sent = http.post("/subscribe", data={"email": "new@example.org"}, headers={"Origin": SITE})
        assert sent.status_code == 200, sent.text
        assert "inbox" in sent.text.lower()
        assert sent.headers.get_list("content-security-policy") == [
            SECURITY_HEADERS["content-security-policy"]
        ]
        message = wait_for(lambda: outbox(settings.state_dir))[0]
        assert message["To"] == "new@example.org"

        # Pages behind a token are never cached, by the proxy's file caching rules least of all.
        page = http.get(f"/unsubscribe/{token}")
        assert page.status_code == 200, page.text
        for answer in (sent, page):
            assert answer.headers.get_list("cache-control") == ["no-store"], answer.headers
            assert "expires" not in answer.headers

        # RFC 8058 one-click, as a mail provider posts it: no cookie, no Origin.
        one_click = http.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200
        assert "set-cookie" not in one_click.headers

    if name == "nginx":
        # A request nginx cannot parse: its own 400, with the headers too.
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
            sock.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\nNot a header\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"\r\nX-Frame-Options: DENY\r\n" in answer, answer[:400]

    conn = db.connect(settings.db_path)
    try:
        assert store.by_email(conn, "reader@example.org").status == "unsubscribed"  # type: ignore[union-attr]
        assert store.by_email(conn, "new@example.org").status == "pending"  # type: ignore[union-attr]
    finally:
        conn.close()
