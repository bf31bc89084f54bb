"""WebSub: the feeds advertise each hub and themselves; a build that changes feeds pings every hub
exactly once per changed feed (a real HTTP hub on 127.0.0.1), a no-op build pings nobody, a failing
hub never fails the build and is asked again later (by the next build, and by the daemon with
backoff), and a hub that refuses is not asked again."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import feedparser
import pytest

from tests.conftest import NOW, Project
from tests.support.digests import markdown
from tests.test_daemon import Daemon, daemons  # noqa: F401 (a fixture)

FEEDS = {
    "https://news.example.org/atom.xml",
    "https://news.example.org/rss.xml",
    "https://news.example.org/feed.json",
}


class Hub:
    """A WebSub hub's publish endpoint on 127.0.0.1: records each POST; answers `status()`."""

    def __init__(self, status: Callable[[int], int] = lambda n: 204) -> None:
        self.pings: list[dict[str, list[str]]] = []
        self.count = 0  # every POST over the hub's life (clear() leaves it)
        self.content_types: list[str] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hub.lock:
                    hub.pings.append(parse_qs(body.decode("ascii"), strict_parsing=True))
                    hub.content_types.append(self.headers["Content-Type"])
                    hub.count += 1
                    code = status(hub.count)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def urls(self) -> list[str]:
        with self.lock:
            return [p["hub.url"][0] for p in self.pings]

    def clear(self) -> None:
        with self.lock:
            self.pings.clear()


@pytest.fixture
def hub() -> Iterator[Hub]:
    with Hub() as h:
        yield h


def with_hubs(project: Project, *hubs: str, backoff: float = 30) -> None:
    listed = ", ".join(f'"{h}"' for h in hubs)
    project.configure(f"[websub]\nhubs = [{listed}]\ntimeout = 2\nretry_backoff = {backoff}\n")


def test_the_feeds_advertise_each_hub_and_themselves(project: Project) -> None:
    with_hubs(project, "https://hub.example.net/", "https://pubsubhubbub.appspot.com/")
    project.seed("one.md", markdown("Talks resume", "2025-02-27"))
    # Nobody listens there: the build still succeeds and says so.
    assert project.cli("build").code == 0
    hubs = ["https://hub.example.net/", "https://pubsubhubbub.appspot.com/"]
    for name, self_type in (("atom.xml", "application/atom+xml"), ("rss.xml", "application/rss+xml")):
        parsed = feedparser.parse((project.feeds / name).read_bytes())
        links = parsed.feed.links
        assert [link.href for link in links if link.rel == "hub"] == hubs, name
        (self_link,) = [link for link in links if link.rel == "self"]
        assert self_link.href == f"https://news.example.org/{name}" and self_link.type == self_type
    doc = json.loads((project.feeds / "feed.json").read_text())
    assert doc["hubs"] == [{"type": "WebSub", "url": h} for h in hubs]
    assert doc["feed_url"] == "https://news.example.org/feed.json"
    # Archives never change once full, so they name no hub.
    for archive in (project.feeds / "archive").glob("*.xml"):
        assert b'rel="hub"' not in archive.read_bytes()


def test_without_hubs_the_feeds_name_none(project: Project) -> None:
    project.seed("one.md", markdown("Talks resume", "2025-02-27"))
    assert project.cli("build").code == 0
    assert b'rel="hub"' not in (project.feeds / "atom.xml").read_bytes()
    assert b'rel="hub"' not in (project.feeds / "rss.xml").read_bytes()
    assert "hubs" not in json.loads((project.feeds / "feed.json").read_text())


def test_one_ping_per_changed_feed_and_none_for_a_no_op_build(project: Project) -> None:
    with Hub() as first, Hub() as second:
        with_hubs(project, first.url, second.url)
        project.seed("one.md", markdown("Talks resume", "2025-02-27"))
        result = project.cli("build")
        assert result.code == 0, result.err
        assert "6 hub pings" in result.out
        for hub in (first, second):
            assert sorted(hub.urls()) == sorted(FEEDS)
            assert all(p["hub.mode"] == ["publish"] and len(p) == 2 for p in hub.pings)
            assert set(hub.content_types) == {"application/x-www-form-urlencoded"}
            hub.clear()
        # Nothing changed: nobody is pinged.
        result = project.cli("build")
        assert result.code == 0 and "hub ping" not in result.out
        assert first.urls() == [] and second.urls() == []
        # A new article changes the three feeds: one ping each, again.
        project.seed("two.md", markdown("Markets calm", "2025-02-28", "Traders sat on their hands."))
        assert project.cli("build", now=NOW + timedelta(minutes=1)).code == 0
        assert sorted(first.urls()) == sorted(FEEDS) == sorted(second.urls())


def test_a_failing_hub_never_fails_the_build_and_is_asked_again(project: Project) -> None:
    """503 to the first three pings: the build succeeds, warns, and keeps them; the next build
    (the retry being due) asks again, once per feed; after that nothing is pending."""
    with Hub(status=lambda n: 503 if n <= 3 else 204) as hub:
        with_hubs(project, hub.url, backoff=30)
        project.seed("one.md", markdown("Talks resume", "2025-02-27"))
        result = project.cli("build")
        assert result.code == 0
        assert "3 hub pings failed" in result.out
        assert result.err.count("WebSub ping failed") == 3 and "HTTP 503" in result.err
        hub.clear()
        # Not yet due: a no-op build asks nobody.
        assert project.cli("build", now=NOW + timedelta(seconds=10)).code == 0
        assert hub.urls() == []
        result = project.cli("build", now=NOW + timedelta(seconds=31))
        assert result.code == 0 and "3 hub pings," in result.out and "failed" not in result.out
        assert sorted(hub.urls()) == sorted(FEEDS)
        hub.clear()
        assert project.cli("build", now=NOW + timedelta(hours=2)).code == 0
        assert hub.urls() == []


def test_a_hub_that_refuses_is_not_asked_again(project: Project) -> None:
    with Hub(status=lambda n: 400) as hub:
        with_hubs(project, hub.url)
        project.seed("one.md", markdown("Talks resume", "2025-02-27"))
        result = project.cli("build")
        assert result.code == 0
        assert result.err.count("given up") == 3 and "feed.json: HTTP 400" in result.err
        hub.clear()
        assert project.cli("build", now=NOW + timedelta(hours=2)).code == 0
        assert hub.urls() == []


def test_a_hub_that_does_not_answer_costs_one_timeout_per_build(project: Project) -> None:
    """A hub that accepts the connection and never answers: the first ping waits websub.timeout
    (2 s here), the other feeds of that hub are not waited for again."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        with_hubs(project, f"http://127.0.0.1:{silent.getsockname()[1]}/")
        project.seed("one.md", markdown("Talks resume", "2025-02-27"))
        result = project.cli("build")
        assert result.code == 0
        assert "3 hub pings failed" in result.out
        silent.setblocking(False)
        connections = []
        with contextlib.suppress(BlockingIOError):
            while True:
                connections.append(silent.accept()[0])
        for conn in connections:
            conn.close()
        assert len(connections) == 1  # one timeout waited for, not three: the hub was asked once
    finally:
        silent.close()


def test_the_daemon_pings_after_a_build_and_retries_with_backoff(
    project: Project,
    daemons: Callable[..., Daemon],  # noqa: F811
) -> None:
    """The daemon's start-up build pings (the hub fails twice); the pings come again by themselves
    after the backoff, and a file dropped later is one more ping per feed."""
    with Hub(status=lambda n: 503 if n <= 2 else 204) as hub:
        with_hubs(project, hub.url, backoff=0.5)
        project.configure('[daemon]\nwatch = "poll"\npoll_interval = 0.1\nsettle = 0.1\n')
        project.seed("one.md", markdown("Talks resume", "2025-02-27"))
        daemon = daemons()
        daemon.wait_for("three pings and two retries", lambda: len(hub.urls()) >= 5)
        daemon.wait_log("WebSub ping failed", 2)
        urls = hub.urls()
        assert sorted(urls[:3]) == sorted(FEEDS)
        assert sorted(urls[3:]) == sorted(urls[:2])  # the two that failed, once each
        hub.clear()
        project.seed("two.md", markdown("Markets calm", "2025-02-28", "Traders sat on their hands."))
        daemon.wait_for("pings for the new article", lambda: sorted(hub.urls()) == sorted(FEEDS))
        assert daemon.stop() == 0
        assert sorted(hub.urls()) == sorted(FEEDS)
