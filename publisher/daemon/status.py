"""What `publisher status` reports, gathered without writing anything and without the lock.

Articles and subscribers come from the state database (opened read-only), rejected files from the
last build's parse cache (instant even for 100,000 files; `--check` reads seeds/ afresh instead),
the digest times from the daemon's record and the schedule, and whether a daemon is at work from
the lock file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from publisher import cron, lock, pipeline
from publisher.build import publish
from publisher.config import Settings
from publisher.daemon import record
from publisher.delivery import report
from publisher.errors import PublisherError
from publisher.models import Problem
from publisher.store import cache, db, digests, subscribers

_SUBSCRIBER_STATES = ("active", "pending", "unsubscribed", "bounced")


@dataclass
class Status:
    files: int = 0
    published: int = 0  # out now: a completed build put it out and its page is in place
    waiting: int = 0  # known but not out: embargoed, draft, rejected, or its build not complete
    removed: int = 0  # files gone; ids kept
    rejected: list[str] = field(default_factory=list)  # one problem line per rejected file
    problems_from: str = ""  # "the last build" or "seeds/ now"
    warnings: int = 0
    subscribers: dict[str, int] = field(default_factory=dict)
    last_digest: datetime | None = None  # when the newest digest was made
    last_digest_subject: str | None = None
    last_digest_articles: int = 0
    last_digest_complete: bool = True  # False while some of its messages are still to go out
    last_send: dict[str, int] = field(default_factory=dict)  # recipients per outcome, latest digest sent
    last_send_digest: str | None = None
    last_send_problems: list[str] = field(default_factory=list)  # who did not get it, and why
    last_slot: datetime | None = None  # the last scheduled time the daemon dealt with
    last_slot_outcome: str | None = None  # sent, nothing new to send, skipped, failed, baseline
    next_digest: datetime | None = None
    schedule: str = ""
    timezone: str = ""
    transport: str = ""  # delivery.transport: "outbox" writes files and mails nothing
    outbox: str = ""  # where the outbox transport writes
    daemon_holder: str | None = None  # "pid 123, publisher run" while a publisher holds the lock
    daemon_started: datetime | None = None
    daemon_stopped: datetime | None = None
    daemon_reloaded: datetime | None = None  # the running daemon's last SIGHUP
    last_work: record.Work | None = None
    state: str | None = None  # why the database could not be read, if it could not
    state_bytes: int = 0  # everything under the state folder: database, outbox, previews

    def as_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list):
                return [plain(v) for v in value]
            return value

        data: dict[str, Any] = plain(asdict(self))
        return data


def collect(settings: Settings, now: datetime, *, fresh: bool = False) -> Status:
    """Everything `publisher status` shows. Rejected files come from the last build's record
    (instant), or with `fresh` (and before any build) from reading every file in seeds/ now."""
    status = Status(
        schedule=settings.digest.schedule,
        timezone=settings.site.timezone,
        transport=settings.delivery.transport,
        outbox=settings.outbox_shown,
    )
    status.daemon_holder = lock.held_by(settings)
    status.state_bytes = _folder_bytes(settings.state_dir)
    try:
        schedule = cron.parse(settings.digest.schedule)
        status.next_digest = cron.next_slot(schedule, settings.site.tz, now)
    except ValueError:
        status.next_digest = None
    conn: sqlite3.Connection | None = None
    try:
        conn = db.connect(settings.db_path, readonly=True)
    except PublisherError as exc:
        status.state = exc.one_line()
    try:
        recorded = conn is not None and not fresh and _problems_from_build(conn, status)
        if not recorded:
            _problems_from_check(settings, now, status)
        if conn is not None:
            _from_database(conn, status, now)
    except sqlite3.DatabaseError as exc:
        status.state = f"{settings.db_path}: cannot be read: {exc}"
    finally:
        if conn is not None:
            conn.close()
    return status


def _folder_bytes(folder: Path) -> int:
    """The size of every file below `folder` (0 when it does not exist); files that vanish while
    being counted (a send in progress) are skipped."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def _problems_from_build(conn: sqlite3.Connection, status: Status) -> bool:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "parse_cache" not in tables:
        return False
    refused = cache.refused(conn)  # files the scan refused: never in the cache, named all the same
    status.files = len(cache.stats(conn)) + len({p.path for p in refused if p.severity == "error"})
    status.problems_from = "the last build"
    # Duplicates and id clashes: the build reports them as rejections, so status counts them too.
    _tally(status, [*refused, *cache.problems(conn), *publish.identity_problems(conn)])
    return True


def _problems_from_check(settings: Settings, now: datetime, status: Status) -> None:
    report = pipeline.check(settings, now)
    status.files = report.files
    status.problems_from = "seeds/ now"
    _tally(status, report.problems)


def _tally(status: Status, problems: list[Problem]) -> None:
    first: dict[str, str] = {}
    for problem in problems:
        if problem.severity == "error":
            first.setdefault(problem.path, str(problem))
        else:
            status.warnings += 1
    status.rejected = [first[path] for path in sorted(first)]


def _from_database(conn: sqlite3.Connection, status: Status, now: datetime) -> None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "articles" in tables and "pages" in tables:
        # Published: out now. live_at only says an article went out once (a draft again, or a
        # build killed before its feeds, keeps it); out_at says a completed build put it out, and
        # its row in `pages` that its page is in feeds/ still (a withdrawn article's is deleted).
        row = conn.execute(
            "SELECT"
            " COUNT(*) FILTER (WHERE removed_at IS NULL AND out_at IS NOT NULL AND id IN"
            " (SELECT article_id FROM pages)),"
            " COUNT(*) FILTER (WHERE removed_at IS NULL),"
            " COUNT(*) FILTER (WHERE removed_at IS NOT NULL)"
            " FROM articles"
        ).fetchone()
        status.published, status.waiting, status.removed = row[0], row[1] - row[0], row[2]
    if "subscribers" in tables:
        counts = subscribers.counts(conn)
        status.subscribers = {state: counts.get(state, 0) for state in _SUBSCRIBER_STATES}
    if "digests" in tables:
        newest = digests.summaries(conn)[:1]
        row = digests.get(conn, newest[0].id) if newest else None
        if row is not None:
            status.last_digest = row.created_at
            status.last_digest_subject = row.subject
            status.last_digest_articles = len(row.article_ids)
            status.last_digest_complete = row.completed_at is not None
    if "ledger_digests" in tables and (latest := report.latest_id(conn)) is not None:
        found = report.build(conn, latest)
        if found is not None:
            status.last_send_digest = latest
            status.last_send = {outcome: n for outcome, n in found.counts.items() if n}
            status.last_send_problems = [line.summary() for line in found.problems]
    if "meta" in tables:
        saved = record.load(conn)
        status.last_slot = saved.last_slot
        status.last_slot_outcome = saved.slot_outcome
        status.daemon_started = saved.started
        status.daemon_stopped = saved.stopped
        status.daemon_reloaded = saved.reloaded
        status.last_work = saved.last_work
        # The running daemon's plan wins: it may be retrying a failed digest.
        if status.daemon_holder and saved.next_slot is not None:
            status.next_digest = saved.next_slot
