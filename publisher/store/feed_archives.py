"""RFC 5005 archive membership: which articles atom.xml and each archive/<number>.xml hold.

The published articles, ordered by publication date (then id), are cut into one history:
atom.xml holds the newest `feed.entries` of them, archive 1 the oldest `feed.archive_size`,
archive 2 the next ones, and so on; the newest archive, just older than atom.xml's window, is the
*open* one: it fills as articles leave the window and is frozen when it holds `archive_size`
articles (a new, possibly empty, open archive starts at that moment). Walked from atom.xml through
the prev-archive links, the chain gives every published article exactly once, newest first.

Frozen membership is stored and never changes, so a full archive's document is written once with
its final links (RFC 5005 section 4: readers may cache it for good); the open archive's is computed
each build. The exceptions: an article that stops being published (file removed, made a draft,
dated into the future) disappears from its frozen archive's document, and returns to it when it is
published again. An article published late with an old date (a backdated file, a clock set back)
joins the articles not yet frozen, in date order: history already frozen is never reopened.

Nothing here depends on when a build ran or on the order builds saw articles, so whatever the
clock did, every build ends with every published article in exactly one document.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Set
from dataclasses import dataclass
from datetime import datetime

from publisher.config import Settings
from publisher.store.db import get_meta, set_meta, to_db_time, transaction

MIGRATIONS: list[str] = [
    """
    CREATE TABLE archives (
        number INTEGER PRIMARY KEY,     -- archive/<number>.xml, from 1
        frozen_at TEXT NOT NULL         -- UTC ISO 8601: when its membership was fixed
    );
    CREATE TABLE archive_members (
        archive INTEGER NOT NULL REFERENCES archives (number),
        article_id TEXT NOT NULL UNIQUE REFERENCES articles (id),
        present INTEGER NOT NULL DEFAULT 1,  -- 0 while the article is not published
        PRIMARY KEY (archive, article_id)
    );
    """,
    """
    ALTER TABLE archives ADD COLUMN size INTEGER NOT NULL DEFAULT 0;  -- members, fixed at freezing
    ALTER TABLE archives ADD COLUMN last_live TEXT NOT NULL DEFAULT '';  -- unused since migration 3
    ALTER TABLE archives ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;  -- unused since migration 3
    UPDATE archives SET size = (SELECT COUNT(*) FROM archive_members m WHERE m.archive = archives.number);
    UPDATE archives SET (last_live, last_seq) = (
        SELECT a.live_at, a.seq FROM archive_members m JOIN articles a ON a.id = m.article_id
        WHERE m.archive = archives.number ORDER BY a.live_at DESC, a.seq DESC LIMIT 1
    );
    CREATE INDEX archive_members_absent ON archive_members (archive) WHERE present = 0;
    CREATE INDEX archives_last ON archives (last_live, last_seq);
    CREATE INDEX archives_removed ON articles (removed_at) WHERE removed_at IS NOT NULL;
    CREATE INDEX archives_live_present ON articles (live_at, seq)
        WHERE live_at IS NOT NULL AND removed_at IS NULL;
    """,
    # Archives were cut in the order articles went live and overlapped atom.xml; they are cut by
    # publication date now. Forget the old cut; marking the last build unfinished (build/publish.py
    # owns that key) makes the next build, even with nothing changed, freeze the history anew,
    # write every archive and remove the documents numbered past the new last one.
    """
    UPDATE meta SET value = '0' WHERE key = 'build.complete';
    DELETE FROM meta WHERE key = 'archives.mark';
    DELETE FROM archive_members;
    DELETE FROM archives;
    DROP INDEX IF EXISTS archives_last;
    DROP INDEX IF EXISTS archives_removed;
    DROP INDEX IF EXISTS archives_live_present;
    """,
]

# Published now: the parse cache's view (store/visible.py), a claimed identity, no draft, dated.
_PUBLISHED = "c.article_id IS NOT NULL AND c.draft = 0 AND c.date <= :now"
# The articles not frozen into an archive, oldest first (all of them, or from a key on).
_UNFROZEN = "NOT EXISTS (SELECT 1 FROM archive_members AS m WHERE m.article_id = c.article_id)"
_POOL = (
    f"SELECT c.article_id, c.date FROM parse_cache AS c WHERE {_PUBLISHED} AND {_UNFROZEN} "
    "ORDER BY c.date, c.article_id"
)
_POOL_FROM = (
    f"SELECT c.article_id, c.date FROM parse_cache AS c WHERE {_PUBLISHED} AND {_UNFROZEN} "
    "AND (c.date, c.article_id) >= (:date, :id) ORDER BY c.date, c.article_id"
)
# Frozen members whose publication changed since their archive was last written: each member is
# looked up by its id (the unary + keeps SQLite from searching parse_cache by date instead).
_BY_ID = "c.article_id = m.article_id AND +c.draft = 0 AND +c.date <= :now"
_GONE = (
    "SELECT m.archive, m.article_id FROM archive_members AS m WHERE m.present = 1 "
    f"AND NOT EXISTS (SELECT 1 FROM parse_cache AS c WHERE {_BY_ID})"
)
_BACK = (
    "SELECT m.archive, m.article_id FROM archive_members AS m INDEXED BY archive_members_absent "
    f"WHERE m.present = 0 AND EXISTS (SELECT 1 FROM parse_cache AS c WHERE {_BY_ID})"
)
_TOUCHED = " AND m.article_id IN (SELECT value FROM json_each(:touched))"
_TOUCHED_POOL = (
    f"SELECT c.article_id, c.date FROM parse_cache AS c WHERE {_PUBLISHED} AND {_UNFROZEN} "
    "AND c.article_id IN (SELECT value FROM json_each(:touched))"
)
# The build's now and the oldest unfrozen published article's (date, id) after the last assign.
_META_MARK = "archives.mark"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where every published article is, after `assign`."""

    total: int  # archives numbered 1..total; the last is the open one
    rewrite: list[int]  # archives whose document must be (re)written, ascending
    open_members: list[str]  # ids in the open archive (number `total`)
    current: list[str]  # ids in atom.xml (and rss.xml, feed.json): the newest `feed.entries`


def assign(
    conn: sqlite3.Connection, settings: Settings, now: datetime, touched: Set[str] | None = None
) -> Layout:
    """Freeze what has left atom.xml's window in full archives; say where everything is and which
    archive documents to write. One transaction.

    Rewritten: every archive frozen now, every frozen archive whose published members changed, and
    the open archive (cheap: fewer than `archive_size` entries; unchanged bytes are not written).

    `touched`: the only articles whose file changed since the last assign (None: any). Then only
    they are checked for unpublishing, and the unfrozen articles are read from the oldest one the
    last assign left (the mark) on: an article can become published below the mark only through a
    changed file, or a clock set back (then everything is read, as with None).
    """
    size, window = settings.feed.archive_size, settings.feed.entries
    stamp = to_db_time(now)
    params: dict[str, object] = {"now": stamp, "touched": json.dumps(sorted(touched or ()))}
    with transaction(conn):
        mark = json.loads(get_meta(conn, _META_MARK) or "null")
        everything = touched is None or mark is None or stamp < mark[0]
        rewrite: set[int] = set()
        gone = _GONE if everything else _GONE + _TOUCHED
        for present, query in ((0, gone), (1, _BACK)):
            for archive, article_id in conn.execute(query, params).fetchall():
                conn.execute(
                    "UPDATE archive_members SET present = ? WHERE article_id = ?", (present, article_id)
                )
                rewrite.add(int(archive))
        if everything:
            rows = conn.execute(_POOL, params).fetchall()
        else:
            found = conn.execute(_POOL_FROM, {**params, "date": mark[1], "id": mark[2]}).fetchall()
            rows = sorted(
                {*found, *conn.execute(_TOUCHED_POOL, params).fetchall()}, key=lambda r: (r[1], r[0])
            )
        pool = [(str(row[0]), str(row[1])) for row in rows]
        frozen = count_frozen(conn)
        taken = 0
        while len(pool) - taken - window >= size:
            chunk = [article_id for article_id, _ in pool[taken : taken + size]]
            taken += size
            frozen += 1
            conn.execute(
                "INSERT INTO archives (number, frozen_at, size) VALUES (?, ?, ?)",
                (frozen, stamp, len(chunk)),
            )
            conn.executemany(
                "INSERT INTO archive_members (archive, article_id) VALUES (?, ?)",
                ((frozen, article_id) for article_id in chunk),
            )
            rewrite.add(frozen)
        # Articles published later than now are dated after it: the mark never passes `now`.
        oldest = (pool[taken][1], pool[taken][0]) if taken < len(pool) else (stamp, "")
        set_meta(conn, _META_MARK, json.dumps([stamp, *oldest]))
    rest = [article_id for article_id, _ in pool[taken:]]
    split = max(len(rest) - window, 0)
    open_members, current = rest[:split], rest[split:]
    total = frozen + 1 if frozen or open_members else 0
    if total:
        rewrite.add(total)
    return Layout(total, sorted(rewrite), open_members[::-1], current[::-1])


def members(conn: sqlite3.Connection, number: int) -> list[str]:
    """Ids of the published members of frozen archive `number` (by id; the writer sorts)."""
    rows = conn.execute(
        "SELECT article_id FROM archive_members WHERE archive = ? AND present = 1 ORDER BY article_id",
        (number,),
    )
    return [str(row[0]) for row in rows]


def count_frozen(conn: sqlite3.Connection) -> int:
    """How many archives are frozen (numbered 1..count; the open one, if any, is count + 1)."""
    row = conn.execute("SELECT COALESCE(MAX(number), 0) FROM archives").fetchone()
    return int(row[0])
