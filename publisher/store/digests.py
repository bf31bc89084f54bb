"""Digests: each one recorded with its cut-off, its articles and its rendered bytes.

A digest row is written (one transaction) before any message of it leaves, holding the exact HTML
and text that every recipient's message is made from, so a send resumed after a crash re-uses the
same bytes. `completed_at` is set once delivery has finished with it. The send ledger (one row per
digest and subscriber) belongs to delivery and lives in its own component.

The cut-off of the next digest is the `period_end` of the latest digest; before the first digest,
a baseline kept in `meta` (`digest.baseline`) records when a first run found nothing to send.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from publisher.store.db import from_db_time, get_meta, set_meta, to_db_time

MIGRATIONS: list[str] = [
    """
    CREATE TABLE digests (
        id TEXT PRIMARY KEY,              -- d-YYYYMMDD-HHMM-<hash>
        created_at TEXT NOT NULL,
        period_start TEXT,                -- the previous cut-off; NULL for the first digest
        period_end TEXT NOT NULL,         -- this digest's cut-off
        subject TEXT NOT NULL,
        preheader TEXT NOT NULL,
        html TEXT NOT NULL,               -- mail HTML with per-recipient placeholders
        text TEXT NOT NULL,               -- mail text with per-recipient placeholders
        web_html TEXT NOT NULL,           -- the web version (no personal links)
        web_url TEXT NOT NULL,
        nonce TEXT NOT NULL,              -- makes the placeholders unguessable for content
        completed_at TEXT                 -- delivery finished; NULL while unfinished
    );
    CREATE INDEX digests_period_end ON digests (period_end);
    CREATE TABLE digest_articles (
        digest_id TEXT NOT NULL REFERENCES digests (id),
        position INTEGER NOT NULL,
        article_id TEXT NOT NULL REFERENCES articles (id),
        PRIMARY KEY (digest_id, position)
    );
    """,
]

BASELINE_KEY = "digest.baseline"


@dataclass(frozen=True, slots=True)
class DigestRow:
    id: str
    created_at: datetime
    period_start: datetime | None
    period_end: datetime
    subject: str
    preheader: str
    html: str
    text: str
    web_html: str
    web_url: str
    nonce: str
    completed_at: datetime | None
    article_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """What the web archive's index lists."""

    id: str
    subject: str
    period_start: datetime | None
    period_end: datetime
    articles: int
    web_url: str


def last_cutoff(conn: sqlite3.Connection) -> datetime | None:
    """The latest digest's cut-off, where the next digest starts; None before the first digest."""
    row = conn.execute("SELECT MAX(period_end) FROM digests").fetchone()
    return None if row is None or row[0] is None else from_db_time(str(row[0]))


def baseline(conn: sqlite3.Connection) -> datetime | None:
    """The cut-off a first run that sent nothing recorded, if any."""
    value = get_meta(conn, BASELINE_KEY)
    return None if value is None else from_db_time(value)


def set_baseline(conn: sqlite3.Connection, moment: datetime) -> None:
    """The first run sent nothing: later digests hold only what goes live after `moment`."""
    set_meta(conn, BASELINE_KEY, to_db_time(moment))


def record(
    conn: sqlite3.Connection,
    *,
    digest_id: str,
    now: datetime,
    period_start: datetime | None,
    period_end: datetime,
    subject: str,
    preheader: str,
    html: str,
    text: str,
    web_html: str,
    web_url: str,
    nonce: str,
    article_ids: Sequence[str],
) -> None:
    """Insert one digest and its articles (inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO digests (id, created_at, period_start, period_end, subject, preheader, html, text, "
        "web_html, web_url, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            digest_id,
            to_db_time(now),
            None if period_start is None else to_db_time(period_start),
            to_db_time(period_end),
            subject,
            preheader,
            html,
            text,
            web_html,
            web_url,
            nonce,
        ),
    )
    conn.executemany(
        "INSERT INTO digest_articles (digest_id, position, article_id) VALUES (?, ?, ?)",
        ((digest_id, n, article_id) for n, article_id in enumerate(article_ids)),
    )


def get(conn: sqlite3.Connection, digest_id: str) -> DigestRow | None:
    row = conn.execute(
        "SELECT id, created_at, period_start, period_end, subject, preheader, html, text, web_html, "
        "web_url, nonce, completed_at FROM digests WHERE id = ?",
        (digest_id,),
    ).fetchone()
    if row is None:
        return None
    ids = conn.execute(
        "SELECT article_id FROM digest_articles WHERE digest_id = ? ORDER BY position", (digest_id,)
    )
    return DigestRow(
        id=str(row[0]),
        created_at=from_db_time(row[1]),
        period_start=None if row[2] is None else from_db_time(row[2]),
        period_end=from_db_time(row[3]),
        subject=str(row[4]),
        preheader=str(row[5]),
        html=str(row[6]),
        text=str(row[7]),
        web_html=str(row[8]),
        web_url=str(row[9]),
        nonce=str(row[10]),
        completed_at=None if row[11] is None else from_db_time(row[11]),
        article_ids=tuple(str(r[0]) for r in ids),
    )


def unfinished(conn: sqlite3.Connection) -> list[str]:
    """Ids of digests recorded but not marked complete, oldest first."""
    rows = conn.execute("SELECT id FROM digests WHERE completed_at IS NULL ORDER BY period_end, id")
    return [str(r[0]) for r in rows]


def mark_complete(conn: sqlite3.Connection, digest_id: str, now: datetime) -> bool:
    """Set completed_at once; False when the digest does not exist or was already complete."""
    cursor = conn.execute(
        "UPDATE digests SET completed_at = ? WHERE id = ? AND completed_at IS NULL",
        (to_db_time(now), digest_id),
    )
    return cursor.rowcount > 0


def summaries(conn: sqlite3.Connection) -> list[DigestSummary]:
    """Every digest, newest first, for the archive index."""
    rows = conn.execute(
        "SELECT d.id, d.subject, d.period_start, d.period_end, d.web_url, "
        "(SELECT COUNT(*) FROM digest_articles a WHERE a.digest_id = d.id) "
        "FROM digests d ORDER BY d.period_end DESC, d.id DESC"
    )
    return [
        DigestSummary(
            id=str(r[0]),
            subject=str(r[1]),
            period_start=None if r[2] is None else from_db_time(r[2]),
            period_end=from_db_time(r[3]),
            web_url=str(r[4]),
            articles=int(r[5]),
        )
        for r in rows
    ]


def article_dates(conn: sqlite3.Connection, digest_id: str) -> list[datetime]:
    """The dates of a digest's articles that the build still knows (for a dateline)."""
    rows = conn.execute(
        "SELECT c.date FROM digest_articles a JOIN parse_cache c ON c.article_id = a.article_id "
        "WHERE a.digest_id = ? AND c.date IS NOT NULL",
        (digest_id,),
    )
    return [from_db_time(str(r[0])) for r in rows]


def web_pages(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(id, web_html) of every digest, for rewriting the web archive."""
    return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT id, web_html FROM digests ORDER BY id")]
