"""RFC 5005 archive membership: which articles each archive/<number>.xml holds, forever.

Articles are frozen into archives in the order they went live (`articles.live_at`, then `seq`), in
complete chunks of `feed.archive_size`; archive 1 holds the first ones. Membership never changes:
an archive's set of entries is what a reader may cache for good (RFC 5005 section 4). The one
exception is a takedown: a member whose file is removed disappears from its archive's document
(the row stays, marked absent, so the article returns to the same archive if its file comes back).
Edits do not reach archives on their own: an edited article's archived copy is rewritten only if
that archive is rewritten for another reason; the current feed carries the new version.

Articles not yet in an archive are fewer than `archive_size`, and `archive_size <= feed.entries`
(config.py enforces it), so the current feed, if it holds the newest live articles, plus the
archives cover every article.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from publisher.config import Settings
from publisher.store.db import to_db_time, transaction

MIGRATIONS: list[str] = [
    """
    CREATE TABLE archives (
        number INTEGER PRIMARY KEY,     -- archive/<number>.xml, from 1
        frozen_at TEXT NOT NULL         -- UTC ISO 8601: when its membership was fixed
    );
    CREATE TABLE archive_members (
        archive INTEGER NOT NULL REFERENCES archives (number),
        article_id TEXT NOT NULL UNIQUE REFERENCES articles (id),
        present INTEGER NOT NULL DEFAULT 1,  -- 0 while the article is removed (a takedown)
        PRIMARY KEY (archive, article_id)
    );
    """,
]


def assign(conn: sqlite3.Connection, settings: Settings, now: datetime) -> list[int]:
    """Freeze every complete chunk of unarchived live articles; return the archives to (re)write.

    Returned, in ascending order: each new archive; each archive whose present members changed (an
    article removed, or back); and the archive just before a new one, whose document gains its
    `next-archive` link then (its entries do not change). One transaction.
    """
    size = settings.feed.archive_size
    with transaction(conn):
        rewrite: set[int] = set()
        # Takedowns and returns first, so a returning article goes back to its own archive.
        flipped = conn.execute(
            "SELECT m.archive, m.article_id, a.removed_at IS NULL FROM archive_members m "
            "JOIN articles a ON a.id = m.article_id WHERE m.present != (a.removed_at IS NULL)"
        ).fetchall()
        for archive, article_id, present in flipped:
            conn.execute(
                "UPDATE archive_members SET present = ? WHERE article_id = ?", (int(present), article_id)
            )
            rewrite.add(int(archive))

        waiting = [
            str(row[0])
            for row in conn.execute(
                "SELECT id FROM articles WHERE live_at IS NOT NULL AND live_at <= ? AND removed_at IS NULL "
                "AND id NOT IN (SELECT article_id FROM archive_members) ORDER BY live_at, seq",
                (to_db_time(now),),
            )
        ]
        last = count(conn)
        for start in range(0, len(waiting) - size + 1, size):
            last += 1
            conn.execute("INSERT INTO archives (number, frozen_at) VALUES (?, ?)", (last, to_db_time(now)))
            conn.executemany(
                "INSERT INTO archive_members (archive, article_id) VALUES (?, ?)",
                ((last, article_id) for article_id in waiting[start : start + size]),
            )
            rewrite.add(last)
            if last > 1:
                rewrite.add(last - 1)
    return sorted(rewrite)


def members(conn: sqlite3.Connection, number: int) -> list[str]:
    """Ids of the present articles of archive `number`, newest first (by when they went live)."""
    rows = conn.execute(
        "SELECT a.id FROM archive_members m JOIN articles a ON a.id = m.article_id "
        "WHERE m.archive = ? AND a.removed_at IS NULL ORDER BY a.live_at DESC, a.seq DESC",
        (number,),
    )
    return [str(row[0]) for row in rows]


def count(conn: sqlite3.Connection) -> int:
    """How many archives exist (they are numbered 1..count)."""
    row = conn.execute("SELECT COALESCE(MAX(number), 0) FROM archives").fetchone()
    return int(row[0])


def unarchived(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """Ids of live, present articles in no archive yet, newest first: atom.xml must hold them all."""
    rows = conn.execute(
        "SELECT id FROM articles WHERE live_at IS NOT NULL AND live_at <= ? AND removed_at IS NULL "
        "AND id NOT IN (SELECT article_id FROM archive_members) ORDER BY live_at DESC, seq DESC",
        (to_db_time(now),),
    )
    return [str(row[0]) for row in rows]
