"""What is published at a given moment, and which article pages the build must (re)write.

Queries over the parse cache's tables (`parse_cache`, `pages`, created by publisher/store/cache.py)
joined with the identities in `articles`: an article is published when its file is valid, it
claimed an identity, it is not a draft and its date has come.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from publisher.store.db import to_db_time

# What is published at a moment: valid, claimed an identity, not a draft, its date reached.
_PUBLISHED = (
    "SELECT c.article_id AS id, c.date AS date, a.slug AS slug, c.content_hash || '|' || a.updated AS stamp "
    "FROM parse_cache c JOIN articles a ON a.id = c.article_id "
    "WHERE c.article_id IS NOT NULL AND c.draft = 0 AND c.date <= :now"
)


def published_count(conn: sqlite3.Connection, now: datetime) -> int:
    # A claimed id always has its articles row: no join needed (and the index covers it).
    row = conn.execute(
        "SELECT COUNT(*) FROM parse_cache WHERE draft = 0 AND date <= ? AND article_id IS NOT NULL",
        (to_db_time(now),),
    ).fetchone()
    return int(row[0])


def published_sources(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """Paths (relative to seeds/) of the files whose articles are published at `now`."""
    rows = conn.execute(
        "SELECT path FROM parse_cache WHERE article_id IS NOT NULL AND draft = 0 AND date <= ?",
        (to_db_time(now),),
    )
    return [str(r[0]) for r in rows]


def newest(conn: sqlite3.Connection, now: datetime, limit: int) -> list[str]:
    """Ids of the `limit` newest published articles (by date, then id), newest first."""
    rows = conn.execute(
        f"SELECT id FROM ({_PUBLISHED}) ORDER BY date DESC, id DESC LIMIT :limit",
        {"now": to_db_time(now), "limit": limit},
    )
    return [str(r[0]) for r in rows]


def published_among(conn: sqlite3.Connection, now: datetime, ids: Sequence[str]) -> set[str]:
    """Which of `ids` are published at `now`."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        sql = (
            "SELECT c.article_id FROM parse_cache c WHERE c.article_id IN (" + marks + ") "
            "AND c.draft = 0 AND c.date <= ?"
        )
        found.update(str(r[0]) for r in conn.execute(sql, [*chunk, to_db_time(now)]))
    return found


def not_yet_live(conn: sqlite3.Connection, now: datetime) -> list[str]:
    """Published articles that have not gone out before (articles.live_at unset)."""
    rows = conn.execute(
        f"SELECT p.id FROM ({_PUBLISHED}) p JOIN articles a ON a.id = p.id WHERE a.live_at IS NULL "
        "ORDER BY p.date, p.id",
        {"now": to_db_time(now)},
    )
    return [str(r[0]) for r in rows]


def next_embargo(conn: sqlite3.Connection, now: datetime) -> datetime | None:
    """The earliest date still in the future of a valid, non-draft article with an identity."""
    row = conn.execute(
        "SELECT MIN(date) FROM parse_cache WHERE article_id IS NOT NULL AND draft = 0 AND date > ?",
        (to_db_time(now),),
    ).fetchone()
    return None if row[0] is None else datetime.fromisoformat(row[0])


@dataclass(frozen=True, slots=True)
class PageWork:
    """Pages to render (id, slug, stamp) and pages to delete (id, slug)."""

    render: list[tuple[str, str, str]]
    delete: list[tuple[str, str]]


def page_work(
    conn: sqlite3.Connection, now: datetime, *, everything: bool, candidates: set[str] | None = None
) -> PageWork:
    """Pages whose article is new, changed or newly published; pages no longer published.

    `candidates`: the only articles whose page can have changed (what an incremental build
    touched); None looks at every article. `everything`: render every published page.
    """
    params: dict[str, object] = {"now": to_db_time(now)}
    stale = "(g.stamp IS NULL OR g.stamp != p.stamp OR g.slug != p.slug)"
    if candidates is not None:
        ordered = sorted(candidates)
        marks = ",".join(f":c{i}" for i in range(len(ordered)))
        params.update({f"c{i}": value for i, value in enumerate(ordered)})
        among, among_pages = f" AND p.id IN ({marks})", f" AND g.article_id IN ({marks})"
    else:
        among = among_pages = ""
    condition = "" if everything else f" WHERE {stale}{among}"
    render = conn.execute(
        f"SELECT p.id, p.slug, p.stamp FROM ({_PUBLISHED}) p LEFT JOIN pages g ON g.article_id = p.id"
        f"{condition} ORDER BY p.date, p.id",
        params,
    ).fetchall()
    delete = conn.execute(
        f"SELECT g.article_id, g.slug FROM pages g WHERE g.article_id NOT IN (SELECT id FROM ({_PUBLISHED}))"
        f"{'' if everything else among_pages} ORDER BY g.slug",
        params,
    ).fetchall()
    return PageWork([(r[0], r[1], r[2]) for r in render], [(r[0], r[1]) for r in delete])


def record_pages(
    conn: sqlite3.Connection, rendered: Iterable[tuple[str, str, str]], deleted: Iterable[str]
) -> None:
    """After the files are in place: remember what each page was rendered from."""
    conn.executemany("INSERT OR REPLACE INTO pages (article_id, slug, stamp) VALUES (?, ?, ?)", rendered)
    conn.executemany("DELETE FROM pages WHERE article_id = ?", ((i,) for i in deleted))


def confirm_out(conn: sqlite3.Connection, now: datetime) -> int:
    """In the transaction that records a build complete: every article gone live whose page is
    recorded in place is now out (`articles.out_at`), and only now may a digest mail it."""
    cursor = conn.execute(
        "UPDATE articles SET out_at = ? WHERE out_at IS NULL AND live_at IS NOT NULL "
        "AND removed_at IS NULL AND id IN (SELECT article_id FROM pages)",
        (to_db_time(now),),
    )
    return cursor.rowcount


def page_slugs(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT slug FROM pages")}
