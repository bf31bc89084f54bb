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

Cost: a build touches only what changed. Takedowns and returns are found through partial indexes;
the articles waiting for an archive are those past the watermark (the last archived article in
live order), which a count proves complete; only when it does not (an article removed while its
chunk was frozen came back, or a clock went backwards) is the whole table compared.
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
    """
    ALTER TABLE archives ADD COLUMN size INTEGER NOT NULL DEFAULT 0;  -- members, fixed at freezing
    ALTER TABLE archives ADD COLUMN last_live TEXT NOT NULL DEFAULT '';  -- its last member's live_at
    ALTER TABLE archives ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;  -- … and seq
    UPDATE archives SET size = (SELECT COUNT(*) FROM archive_members m WHERE m.archive = archives.number);
    UPDATE archives SET (last_live, last_seq) = (
        SELECT a.live_at, a.seq FROM archive_members m JOIN articles a ON a.id = m.article_id
        WHERE m.archive = archives.number ORDER BY a.live_at DESC, a.seq DESC LIMIT 1
    );
    CREATE INDEX archive_members_absent ON archive_members (archive) WHERE present = 0;
    CREATE INDEX archives_last ON archives (last_live, last_seq);
    -- Indexes on the articles table serving only this component's queries (small: partial).
    CREATE INDEX archives_removed ON articles (removed_at) WHERE removed_at IS NOT NULL;
    CREATE INDEX archives_live_present ON articles (live_at, seq)
        WHERE live_at IS NOT NULL AND removed_at IS NULL;
    """,
]

# Every build runs these; INDEXED BY and CROSS JOIN (a fixed join order in SQLite) keep them on the
# small partial indexes whatever the planner's statistics say, and fail loudly if an index is gone.
_TAKEDOWNS = (
    "SELECT m.archive, m.article_id FROM articles AS a INDEXED BY archives_removed "
    "CROSS JOIN archive_members AS m ON m.article_id = a.id "
    "WHERE a.removed_at IS NOT NULL AND m.present = 1"
)
_RETURNS = (
    "SELECT m.archive, m.article_id FROM archive_members AS m INDEXED BY archive_members_absent "
    "CROSS JOIN articles AS a ON a.id = m.article_id "
    "WHERE m.present = 0 AND a.removed_at IS NULL"
)
_LIVE = "live_at IS NOT NULL AND removed_at IS NULL"
_LIVE_INDEX = "articles INDEXED BY archives_live_present"


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
        for present, query in ((0, _TAKEDOWNS), (1, _RETURNS)):
            for archive, article_id in conn.execute(query).fetchall():
                conn.execute(
                    "UPDATE archive_members SET present = ? WHERE article_id = ?", (present, article_id)
                )
                rewrite.add(int(archive))

        until = to_db_time(now)
        waiting = [row for row in _waiting(conn) if row[1] <= until]  # live by `now` (clocks)
        last = count(conn)
        for start in range(0, len(waiting) - size + 1, size):
            chunk = waiting[start : start + size]
            last += 1
            newest = max(chunk, key=lambda row: (row[1], row[2]))
            conn.execute(
                "INSERT INTO archives (number, frozen_at, size, last_live, last_seq) VALUES (?, ?, ?, ?, ?)",
                (last, to_db_time(now), len(chunk), newest[1], newest[2]),
            )
            conn.executemany(
                "INSERT INTO archive_members (archive, article_id) VALUES (?, ?)",
                ((last, row[0]) for row in chunk),
            )
            rewrite.add(last)
            if last > 1:
                rewrite.add(last - 1)
    return sorted(rewrite)


def _waiting(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """(id, live_at, seq) of the live, present articles in no archive, oldest first."""
    mark = conn.execute(
        "SELECT last_live, last_seq FROM archives ORDER BY last_live DESC, last_seq DESC LIMIT 1"
    ).fetchone()
    above = [
        (str(r[0]), str(r[1]), int(r[2]))
        for r in conn.execute(
            f"SELECT id, live_at, seq FROM {_LIVE_INDEX} WHERE {_LIVE} AND (live_at, seq) > (?, ?) "
            "ORDER BY live_at, seq",
            (mark[0], mark[1]) if mark else ("", 0),
        )
    ]
    live = conn.execute(f"SELECT COUNT(*) FROM {_LIVE_INDEX} WHERE {_LIVE}").fetchone()[0]
    # Members whose article is present, counting takedowns and returns not yet recorded.
    frozen = conn.execute("SELECT COALESCE(SUM(size), 0) FROM archives").fetchone()[0]
    absent = conn.execute(
        "SELECT COUNT(*) FROM archive_members INDEXED BY archive_members_absent WHERE present = 0"
    ).fetchone()[0]
    pending = len(conn.execute(_TAKEDOWNS).fetchall()) - len(conn.execute(_RETURNS).fetchall())
    if live - (frozen - absent - pending) == len(above):
        return above  # every member sits at or below the watermark, so nothing else waits
    rows = conn.execute(
        f"SELECT id, live_at, seq FROM articles WHERE {_LIVE} "
        "AND id NOT IN (SELECT article_id FROM archive_members) ORDER BY live_at, seq"
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


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
    """Ids of articles live by `now`, present, in no archive yet, newest first: atom.xml must hold
    them all."""
    until = to_db_time(now)
    return [row[0] for row in reversed(_waiting(conn)) if row[1] <= until]
