"""End to end in a real browser: Debian's headless Chromium, driven by Playwright, against a real
`publisher serve` on 127.0.0.1. A reader subscribes through the form on index.html, confirms
through the link read back from the outbox, receives a digest, and unsubscribes through the digest's
List-Unsubscribe link. Screenshots of every page go to tests/artifacts/browser/ (ignored by git).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from publisher.store import db
from publisher.store import subscribers as store
from tests.conftest import BASE_CONFIG, NOW, SAMPLE, Project, with_postal_address
from tests.support.serving import link_in, outbox, serve_process, wait_for

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "browser"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (/usr/bin/chromium; .ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publisher(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """A publisher command as its own process (in-process, it would share Playwright's event loop)."""
    env = {**os.environ, "PUBLISHER_NOW": NOW.isoformat()}
    command = [sys.executable, "-m", "publisher", "--config", str(project.config_path), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def status_of(project: Project, address: str) -> str | None:
    conn = db.connect(project.settings().db_path)
    try:
        found = store.by_email(conn, address)
        return None if found is None else found.status
    finally:
        conn.close()


@pytest.fixture
def browser_page() -> Iterator[tuple[Any, list[str]]]:
    """A fresh Chromium page and the console errors it logs (CSP violations among them)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 800})
            errors: list[str] = []

            def console(msg: Any) -> None:
                # Failed loads are checked through responses below, where the URL is known.
                if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
                    errors.append(msg.text)

            def response(resp: Any) -> None:
                if resp.status >= 400 and not resp.url.endswith("/favicon.ico"):
                    errors.append(f"{resp.status} {resp.request.method} {resp.url}")

            page.on("console", console)
            page.on("response", response)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            yield page, errors
        finally:
            browser.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_subscribe_confirm_digest_unsubscribe(
    project: Project, tmp_path: Path, browser_page: tuple[Any, list[str]]
) -> None:
    page, errors = browser_page
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    config = with_postal_address(BASE_CONFIG.replace("https://news.example.org/", base))
    project.config_path.write_text(config, encoding="utf-8")
    project.seed("sample.txt", SAMPLE.read_bytes())
    built = publisher(project, "build")
    assert built.returncode == 0, built.stderr
    assert (project.feeds / "index.html").exists()

    with serve_process(project.config_path, tmp_path / "serve.log", "--port", str(port), now=NOW) as url:
        assert url == base

        # 1. index.html, built by `publisher build`, with the subscribe form included.
        page.goto(base)
        shot(page, "1-index")
        page.fill("#subscribe-email", "Reader@Example.org")
        page.click("button.subscribe-button")
        page.wait_for_selector("h1:has-text('Check your inbox')")
        shot(page, "2-check-your-inbox")
        assert "reader@example.org" in page.inner_text("main")
        assert status_of(project, "reader@example.org") == "pending"

        # 2. The confirmation link, read back from the outbox Maildir.
        confirmation = wait_for(lambda: [m for m in outbox(project.state) if "Confirm" in str(m["Subject"])])
        link = link_in(confirmation[0], "confirm")
        assert link.startswith(f"{base}confirm/")
        page.goto(link)
        shot(page, "3-confirm")
        assert status_of(project, "reader@example.org") == "pending"  # opening the link is not enough
        page.click("button:has-text('Yes, subscribe me')")
        page.wait_for_selector('h1:has-text("You\'re subscribed")')
        shot(page, "4-subscribed")
        assert status_of(project, "reader@example.org") == "active"

        # 3. A digest, sent by `publisher digest --send` through the same outbox.
        sent = publisher(project, "digest", "--send", "--backfill", "5")
        assert sent.returncode == 0, sent.stderr
        digests = [m for m in outbox(project.state) if "Confirm" not in str(m["Subject"])]
        assert len(digests) == 1
        digest = digests[0]
        assert digest["To"] is not None and "reader@example.org" in str(digest["To"])
        # Served over http here: RFC 8058 offers one-click only beside an https URL, so no
        # List-Unsubscribe-Post; the link still unsubscribes with the one-click POST below.
        assert digest["List-Unsubscribe-Post"] is None
        header = str(digest["List-Unsubscribe"])
        unsubscribe = next(
            part.strip().strip("<>") for part in header.split(",") if part.strip().startswith("<http")
        )
        assert unsubscribe.startswith(f"{base}unsubscribe/")

        # 4. The List-Unsubscribe link in the browser: a page with a button, then done.
        page.goto(unsubscribe)
        shot(page, "5-unsubscribe")
        assert status_of(project, "reader@example.org") == "active"
        page.click("button:has-text('Unsubscribe')")
        page.wait_for_selector('h1:has-text("You\'re unsubscribed")')
        shot(page, "6-unsubscribed")
        assert status_of(project, "reader@example.org") == "unsubscribed"

        # 5. A tampered link gets the plain 400 page.
        bad = unsubscribe[:-3] + ("AAA" if not unsubscribe.endswith("AAA") else "BBB")
        response = page.goto(bad)
        assert response is not None and response.status == 400
        shot(page, "7-bad-link")
        errors.remove(f"400 GET {bad}")

        # 6. The Atom feed opened in the browser. Chromium shows application/atom+xml as text and
        # applies no XSLT (Firefox does, which FEED_CSP allows); it must arrive intact all the same.
        response = page.goto(f"{base}atom.xml")
        assert response is not None and response.status == 200
        assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert "<title>Test Gazette</title>" in page.inner_text("body")
        shot(page, "8-atom-feed")

    assert errors == []
