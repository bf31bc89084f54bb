"""Test helpers for `publisher serve`: a feeds/ folder made by hand, the app under a test client
with a fixed clock, raw ASGI requests (paths no HTTP client would send), the outbox read back, and
the real server as a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import select
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote

with warnings.catch_warnings():
    # Starlette 1.x suggests httpx2 for its test client; httpx is what the project installs.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

from publisher.clock import FixedClock
from publisher.config import Settings
from publisher.server import create_app

ATOM = (
    '<?xml version="1.0" encoding="utf-8"?>\n<?xml-stylesheet href="atom.xsl" type="text/xsl"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom"><title>Test Gazette</title>'
    + "<entry><title>An entry with enough text to be worth compressing</title></entry>" * 20
    + "</feed>\n"
)
RSS = '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>T</title></channel></rss>\n'
JSON_FEED = '{"version": "https://jsonfeed.org/version/1.1", "title": "Test Gazette", "items": []}\n'
INDEX = (
    '<!DOCTYPE html>\n<html lang="en"><head><title>Test Gazette</title></head>'
    "<body><h1>Home</h1></body></html>\n"
)

FILES: dict[str, str | bytes] = {
    "atom.xml": ATOM,
    "rss.xml": RSS,
    "feed.json": JSON_FEED,
    "index.html": INDEX,
    "style.css": "body { color: black; }\n",
    "atom.xsl": '<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" '
    'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>\n',
    "archive/1.xml": ATOM,
    "articles/index.html": INDEX,
    "articles/first.html": INDEX.replace("Home", "First"),
    "data.json": '{"a": 1}\n',
    "logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
    "notes.bin": b"\x00\x01\x02",
}


def write_feeds(feeds: Path, files: dict[str, str | bytes] | None = None) -> None:
    for name, content in (files or FILES).items():
        path = feeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)


def client(settings: Settings, clock: FixedClock, **kwargs: Any) -> TestClient:
    """The app under Starlette's test client; `base_url` matches the site so Origin checks work."""
    return TestClient(create_app(settings, clock), base_url="https://news.example.org", **kwargs)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and mtime: to prove the server wrote nothing there."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def raw_get(app: Any, raw_path: bytes, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send one request with exactly this raw path, percent-decoded as Hypercorn decodes it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


def outbox(state: Path) -> list[EmailMessage]:
    """Messages in state/outbox/new, oldest first."""
    folder = state / "outbox" / "new"
    if not folder.is_dir():
        return []
    paths = sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in paths
    ]


def link_in(message: EmailMessage, kind: str) -> str:
    """The first https?://…/<kind>/<token> link in a message's text."""
    part = message.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    found = re.search(rf"https?://\S+/{kind}/[A-Za-z0-9_-]+", text)
    assert found, f"no {kind} link in:\n{text}"
    return found.group(0)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until predicate() is truthy (returning it) or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@contextmanager
def serve_process(config: Path, log: Path, *args: str, now: datetime | None = None) -> Iterator[str]:
    """`publisher serve --port 0` as a subprocess (stderr into `log`); yields its base URL and
    stops it with SIGTERM, checking it exits 0."""
    env = dict(os.environ)
    if now is not None:
        env["PUBLISHER_NOW"] = now.isoformat()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "publisher", "--config", str(config), "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"publisher serve did not start: {log.read_text()}")
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                raise AssertionError(f"publisher serve exited {proc.wait()}: {log.read_text()}")
            line += chunk
        found = re.search(rb"on (http://\S+)", line)
        assert found, line
        yield found.group(1).decode()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        assert code == 0, f"publisher serve exited {code} after SIGTERM: {log.read_text()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
