"""WebSub (W3C Recommendation), the publisher's half: telling hubs that a feed changed.

After a build that rewrote atom.xml, rss.xml or feed.json, each hub in `websub.hubs` gets one
`POST hub.mode=publish&hub.url=<feed URL>` per changed feed (the feeds themselves advertise the
hubs; publisher.build.feed writes those links). This module is urllib.request's only home: the
HTTP client, with a short timeout so a slow hub never holds up a build.

A ping that fails (no answer, a 5xx, a 429) is kept in the state database (`meta`, key
`websub.pending`) and tried again after `websub.retry_backoff` seconds, doubling (at most an hour
apart; given up after `MAX_ATTEMPTS`): by the daemon at that time, or by the next build. A hub
that refuses a ping outright (another 4xx) is not asked again for it. A failed ping never fails
the build.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlencode

from publisher import __version__, urls
from publisher.config import Settings
from publisher.store.db import get_meta, set_meta, transaction

log = logging.getLogger("publisher.websub")

FEEDS = ("atom.xml", "rss.xml", "feed.json")  # the subscription documents, relative to feeds/
PENDING_KEY = "websub.pending"
LONGEST_WAIT = 3600.0
MAX_ATTEMPTS = 10  # about five hours from the first failure to the last try

Poster = Callable[[str, bytes, float], int]  # (hub URL, form body, timeout) -> HTTP status


class PingFailed(Exception):
    """A hub could not be told. `final`: asking again will not help (the hub refused)."""

    def __init__(self, reason: str, *, final: bool = False) -> None:
        super().__init__(reason)
        self.final = final


def post_form(hub: str, body: bytes, timeout: float) -> int:
    """POST `body` (form-encoded) to `hub`; the HTTP status. Raises PingFailed without one."""
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked in the settings: http(s) only)
        hub,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": f"publisher/{__version__} (WebSub publisher)",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(65536)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise PingFailed(f"no answer: {reason}") from exc


def ping(hub: str, feed_url: str, timeout: float, post: Poster = post_form) -> None:
    """Tell `hub` that `feed_url` changed. Raises PingFailed."""
    status = post(hub, urlencode({"hub.mode": "publish", "hub.url": feed_url}).encode("ascii"), timeout)
    if 200 <= status < 300:
        return
    retry = status >= 500 or status in (408, 429)
    raise PingFailed(f"HTTP {status}", final=not retry)


@dataclass
class Pending:
    hub: str
    url: str
    attempts: int
    due: datetime


@dataclass
class PingReport:
    """What one round of pings did."""

    sent: int = 0
    failed: list[str] = field(default_factory=list)  # "hub: feed: reason", one per failed ping
    retry_at: datetime | None = None  # the earliest retry still pending


def changed_feeds(settings: Settings, written: Iterable[str]) -> list[str]:
    """The absolute URLs of the subscription feeds among `written` (paths relative to feeds/)."""
    changed = set(written)
    return [urls.absolute(settings.site, name) for name in FEEDS if name in changed]


def _load(conn: sqlite3.Connection) -> list[Pending]:
    raw = get_meta(conn, PENDING_KEY)
    if not raw:
        return []
    try:
        return [
            Pending(p["hub"], p["url"], int(p["attempts"]), datetime.fromisoformat(p["due"]))
            for p in json.loads(raw)
        ]
    except (ValueError, KeyError, TypeError):
        log.warning("forgetting unreadable pending WebSub pings")
        return []


def _save(conn: sqlite3.Connection, pending: Sequence[Pending]) -> None:
    data = [{"hub": p.hub, "url": p.url, "attempts": p.attempts, "due": p.due.isoformat()} for p in pending]
    with transaction(conn):
        set_meta(conn, PENDING_KEY, json.dumps(data))


def backoff(first: float, attempts: int) -> timedelta:
    """How long to wait after `attempts` failed tries, the first wait being `first` seconds."""
    return timedelta(seconds=min(first * 2 ** (attempts - 1), LONGEST_WAIT))


def notify(
    conn: sqlite3.Connection,
    settings: Settings,
    now: datetime,
    written: Iterable[str],
    post: Poster = post_form,
) -> PingReport:
    """Ping every hub for every changed feed, and retry the pending pings that are due. A ping
    for a feed that changed again replaces its pending one (the hub fetches the latest anyway)."""
    hubs = list(settings.websub.hubs)
    fresh = {(hub, url) for hub in hubs for url in changed_feeds(settings, written)}
    kept = [p for p in _load(conn) if p.hub in hubs and (p.hub, p.url) not in fresh]
    todo = [Pending(hub, url, 0, now) for hub in hubs for url in changed_feeds(settings, written)]
    todo += [p for p in kept if p.due <= now]
    later = [p for p in kept if p.due > now]
    report = PingReport()
    silent: dict[str, PingFailed] = {}  # hubs that did not answer: not waited for again this round
    for item in todo:
        try:
            if item.hub in silent:
                raise silent[item.hub]
            ping(item.hub, item.url, settings.websub.timeout, post)
        except PingFailed as exc:
            if str(exc).startswith("no answer"):
                silent[item.hub] = exc
            item.attempts += 1
            line = f"{item.hub}: {item.url}: {exc}"
            if exc.final or item.attempts >= MAX_ATTEMPTS:
                report.failed.append(f"{line} (given up)")
                log.error("WebSub hub not told of a change, given up: %s", line)
                continue
            item.due = now + backoff(settings.websub.retry_backoff, item.attempts)
            report.failed.append(f"{line} (trying again at {item.due.isoformat(timespec='seconds')})")
            log.warning("WebSub ping failed: %s; trying again at %s", line, item.due.isoformat())
            later.append(item)
            continue
        report.sent += 1
        log.info("WebSub: told %s that %s changed", item.hub, item.url)
    if later or kept or todo:
        _save(conn, later)
    report.retry_at = min((p.due for p in later), default=None)
    return report
