"""The parse cache: what each file in seeds/ parsed into, so an unchanged file is never read again.

A file is recognised as unchanged by its path, size and modification time (ns); when size or mtime
differ, its bytes are hashed and, if the hash is the same, only the new stat is recorded (a `touch`
or a copy does not re-parse). A file whose mtime is within `_RACY_NS` of the moment it was cached
could still change within the same clock tick, so it is stored as "verify by hash next time"
(git's racy-clean rule).

Each row also holds the columns the build queries (date, draft, hashes, explicit id) and
`article_id`, the identity the file claimed in the last sync (NULL for rejected files and
duplicates); the article itself is kept as JSON in `parse_articles`, out of the way of queries
over every file. The build reads only the few Articles it renders: `load_articles` rebuilds
them with `Article.model_construct` from JSON already validated when it was stored.

The whole cache is dropped when anything that changes how a file parses changes (`fingerprint`).

The `pages` table (which article pages are in feeds/) is created here too, with the cache's other
tables; publisher/store/visible.py holds its queries and those that pick what is published.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from publisher.models import Article, Problem
from publisher.store.db import get_meta, set_meta, to_db_time, transaction

MIGRATIONS: list[str] = [
    """
    CREATE TABLE parse_cache (
        path TEXT PRIMARY KEY,          -- relative to seeds/, forward slashes
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,      -- -1: verify by hash next time (racy)
        file_hash TEXT NOT NULL,        -- sha256 of the file's bytes
        problems TEXT NOT NULL,         -- JSON [[path, field, message, severity], ...]
        article TEXT,                   -- unused since migration 3 (see parse_articles)
        format TEXT,
        title TEXT,
        date TEXT,                      -- UTC ISO 8601 (sorts as text)
        draft INTEGER,
        story_hash TEXT,
        content_hash TEXT,
        explicit_id TEXT,
        article_id TEXT                 -- identity claimed in the last sync; NULL: not published
    );
    CREATE INDEX parse_cache_claim ON parse_cache (article_id);
    CREATE INDEX parse_cache_date ON parse_cache (date);
    CREATE TABLE pages (
        article_id TEXT PRIMARY KEY,    -- the article whose page is in feeds/
        slug TEXT NOT NULL,             -- feeds/articles/<slug>.html
        stamp TEXT NOT NULL             -- content hash and updated it was rendered from
    );
    """,
    # The article's own date and offset: minted ids carry its local day, not the UTC one. The
    # rows are dropped so every file is parsed again and the column filled. Indexes for the
    # partial identity sync (files sharing a story or an id with what changed).
    """
    ALTER TABLE parse_cache ADD COLUMN date_local TEXT;
    DELETE FROM parse_cache;
    CREATE INDEX parse_cache_story ON parse_cache (story_hash);
    CREATE INDEX parse_cache_explicit ON parse_cache (explicit_id);
    """,
    # The article JSON (~10 KB) moves to its own table: columns stored after it in a row sat
    # behind its overflow pages, so every query over all files read every article.
    """
    CREATE TABLE parse_articles (
        path TEXT PRIMARY KEY,          -- parse_cache.path of a valid file
        json TEXT NOT NULL              -- the Article as JSON
    );
    ALTER TABLE parse_cache ADD COLUMN valid INTEGER NOT NULL DEFAULT 0;
    DELETE FROM parse_cache;
    """,
    # Covers "what is published now" (counting it, finding the newest) without reading rows.
    """
    CREATE INDEX parse_cache_published ON parse_cache (draft, date, article_id);
    """,
    # Front matter `slug` (the page address asked for) and `lastmod` (the updated time), which
    # identity sync reads from the keys. Every file is parsed again to fill them.
    """
    ALTER TABLE parse_cache ADD COLUMN slug TEXT;
    ALTER TABLE parse_cache ADD COLUMN lastmod TEXT;
    DELETE FROM parse_cache;
    DELETE FROM parse_articles;
    """,
    # The files beside an article that it uses (images), as JSON [[path, size, mtime_ns], ...]:
    # a change to one re-reads the article. NULL: none.
    """
    ALTER TABLE parse_cache ADD COLUMN assets TEXT;
    CREATE INDEX parse_cache_assets ON parse_cache (path) WHERE assets IS NOT NULL;
    DELETE FROM parse_cache;
    DELETE FROM parse_articles;
    """,
]

_INSERT = (
    "INSERT OR REPLACE INTO parse_cache (path, size, mtime_ns, file_hash, problems, valid, format, "
    "title, date, date_local, draft, story_hash, content_hash, explicit_id, slug, lastmod, assets, "
    "article_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "(SELECT article_id FROM parse_cache WHERE path = ?))"
)
_KEY_COLUMNS = "path, format, title, date_local, explicit_id, story_hash, content_hash, slug, lastmod"
_RACY_NS = 2_000_000_000
_FINGERPRINT_KEY = "cache.fingerprint"
_REFUSED_KEY = "scan.refused"


class Seed(Protocol):
    """What the cache needs to know of a file found by the scan (ingest.SeedFile fits)."""

    @property
    def rel(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Key:
    """An article as identity sync needs it: no body, no paragraphs."""

    source: str
    format: str
    title: str
    date: datetime
    explicit_id: str | None
    story_hash: str
    content_hash: str
    slug: str | None = None
    lastmod: datetime | None = None


def reset_if_changed(conn: sqlite3.Connection, fingerprint: str) -> bool:
    """Empty the cache when how files parse has changed (settings, release). True when emptied."""
    if get_meta(conn, _FINGERPRINT_KEY) == fingerprint:
        return False
    conn.execute("DELETE FROM parse_cache")
    conn.execute("DELETE FROM parse_articles")
    set_meta(conn, _FINGERPRINT_KEY, fingerprint)
    return True


def stats(conn: sqlite3.Connection) -> dict[str, str]:
    """path -> "size:mtime_ns" of every cached file (one string each: built in C, compared fast)."""
    return dict(conn.execute("SELECT path, size || ':' || mtime_ns FROM parse_cache").fetchall())


def file_hashes(conn: sqlite3.Connection, paths: set[str]) -> dict[str, str]:
    """path -> sha256 of the bytes last parsed, for `paths`."""
    found: dict[str, str] = {}
    for where, values in _chunked_or({"path": paths}):
        found.update(
            conn.execute(f"SELECT path, file_hash FROM parse_cache WHERE {where}", values).fetchall()
        )
    return found


def _stat_to_store(seed: Seed) -> int:
    # Wall-clock time of the file system, not the publishing clock: this is about mtime ticks.
    return -1 if time.time_ns() - seed.mtime_ns < _RACY_NS else seed.mtime_ns


def touch(conn: sqlite3.Connection, seed: Seed) -> None:
    """Same bytes, new stat (a copy or a touch): record the stat, keep the parse."""
    conn.execute(
        "UPDATE parse_cache SET size = ?, mtime_ns = ? WHERE path = ?",
        (seed.size, _stat_to_store(seed), seed.rel),
    )


def put(
    conn: sqlite3.Connection, seed: Seed, file_hash: str, article_json: str | None, problems: list[Problem]
) -> None:
    """Record what `seed` parsed into (`article_json` from `Article.model_dump_json`, or None)."""
    fields: tuple[object, ...] = (None,) * 11
    if article_json is not None:
        data = json.loads(article_json)
        fields = (
            data["format"],
            data["title"],
            to_db_time(datetime.fromisoformat(data["date"])),
            data["date"],
            int(data["draft"]),
            data["story_hash"],
            data["content_hash"],
            data["explicit_id"],
            data.get("slug"),
            data.get("lastmod"),
            json.dumps(data["assets"]) if data.get("assets") else None,
        )
    conn.execute(
        _INSERT,
        (
            seed.rel,
            seed.size,
            _stat_to_store(seed),
            file_hash,
            json.dumps([[p.path, p.field, p.message, p.severity] for p in problems], ensure_ascii=False),
            int(article_json is not None),
            *fields,
            seed.rel,
        ),
    )
    if article_json is None:
        conn.execute("DELETE FROM parse_articles WHERE path = ?", (seed.rel,))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO parse_articles (path, json) VALUES (?, ?)", (seed.rel, article_json)
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """What `put_many` stores for one file, prepared where the file was parsed (a worker process), so
    the process holding the database only runs the inserts: no JSON is parsed again there."""

    path: str
    size: int
    mtime_ns: int
    file_hash: str
    problems: str  # JSON [[path, field, message, severity], ...]
    article_json: str | None  # Article.model_dump_json(); None: the file was rejected
    columns: tuple[object, ...]  # format, title, date, date_local, draft, story, content, explicit id,
    # slug, lastmod, assets


def entry(seed: Seed, file_hash: str, article: Article | None, problems: list[Problem]) -> Entry:
    """The row `put_many` stores for `seed`, which parsed into `article` (None: rejected)."""
    columns: tuple[object, ...] = (None,) * 11
    article_json = None
    if article is not None:
        article_json = article.model_dump_json()
        # As the JSON holds them (pydantic writes UTC as "Z"), which `keys` reads back.
        as_json = article.model_dump(mode="json", include={"date", "lastmod"})
        columns = (
            article.format,
            article.title,
            to_db_time(article.date),
            as_json["date"],
            int(article.draft),
            article.story_hash,
            article.content_hash,
            article.explicit_id,
            article.slug,
            as_json["lastmod"],
            json.dumps(article.assets) if article.assets else None,
        )
    shown = json.dumps([[p.path, p.field, p.message, p.severity] for p in problems], ensure_ascii=False)
    return Entry(seed.rel, seed.size, seed.mtime_ns, file_hash, shown, article_json, columns)


def put_many(conn: sqlite3.Connection, entries: Sequence[Entry]) -> None:
    """Record what each file parsed into, as `put` does, in three statements for the batch."""
    now_ns = time.time_ns()
    conn.executemany(
        _INSERT,
        [
            (
                e.path,
                e.size,
                -1 if now_ns - e.mtime_ns < _RACY_NS else e.mtime_ns,  # as `_stat_to_store`
                e.file_hash,
                e.problems,
                int(e.article_json is not None),
                *e.columns,
                e.path,
            )
            for e in entries
        ],
    )
    conn.executemany(
        "DELETE FROM parse_articles WHERE path = ?", [(e.path,) for e in entries if e.article_json is None]
    )
    conn.executemany(
        "INSERT OR REPLACE INTO parse_articles (path, json) VALUES (?, ?)",
        [(e.path, e.article_json) for e in entries if e.article_json is not None],
    )


def forget(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
    gone = [(p,) for p in paths]
    conn.executemany("DELETE FROM parse_cache WHERE path = ?", gone)
    conn.executemany("DELETE FROM parse_articles WHERE path = ?", gone)


def problems(conn: sqlite3.Connection) -> list[Problem]:
    """Every problem recorded for the files present, in path order."""
    found: list[Problem] = []
    for (text,) in conn.execute("SELECT problems FROM parse_cache WHERE problems != '[]' ORDER BY path"):
        found.extend(
            Problem(path, name, message, severity) for path, name, message, severity in json.loads(text)
        )
    return found


def record_refused(conn: sqlite3.Connection, refused: list[Problem]) -> None:
    """Keep what the last scan of seeds/ refused (files that never reach this cache)."""
    rows = json.dumps([[p.path, p.field, p.message, p.severity] for p in refused])
    if (get_meta(conn, _REFUSED_KEY) or "[]") != rows:
        with transaction(conn):
            set_meta(conn, _REFUSED_KEY, rows)


def refused(conn: sqlite3.Connection) -> list[Problem]:
    """What the last build's scan refused (a name that is not UTF-8, a link leading outside seeds/)."""
    return [Problem(*fields) for fields in json.loads(get_meta(conn, _REFUSED_KEY) or "[]")]


def assets(conn: sqlite3.Connection) -> list[tuple[str, list[tuple[str, int, int]]]]:
    """(path, files beside it that it used, with their size and mtime as seen) for each file that
    used any (valid or not: a warning about a missing image goes when the image comes)."""
    rows = conn.execute("SELECT path, assets FROM parse_cache WHERE assets IS NOT NULL")
    return [(str(path), [tuple(asset) for asset in json.loads(text)]) for path, text in rows]


def invalid_paths(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT path FROM parse_cache WHERE valid = 0")]


def keys(conn: sqlite3.Connection) -> list[Key]:
    """Every valid file as identity sync needs it, in path order."""
    rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM parse_cache WHERE valid = 1 ORDER BY path")
    return [_key(r) for r in rows]


def _key(r: Any) -> Key:
    """A Key from a row selected as _KEY_COLUMNS."""
    lastmod = datetime.fromisoformat(r[8]) if r[8] is not None else None
    return Key(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], r[5], r[6], r[7], lastmod)


def keys_of(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Key]:
    """The claiming file of each of `ids`, as identity sync needs it, by id."""
    found: dict[str, Key] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            f"SELECT article_id, {_KEY_COLUMNS} FROM parse_cache WHERE valid = 1 AND article_id IN ({marks})",
            chunk,
        ):
            found[str(r[0])] = _key(tuple(r)[1:])
    return found


def _chunked_or(columns: dict[str, set[str]]) -> Iterator[tuple[str, list[str]]]:
    for column, values in columns.items():
        ordered = sorted(values)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            yield f"{column} IN ({','.join('?' * len(chunk))})", chunk


def related_info(conn: sqlite3.Connection, paths: set[str]) -> tuple[set[str], set[str]]:
    """(story hashes, ids: explicit and claimed) the files at `paths` had as last parsed."""
    stories: set[str] = set()
    ids: set[str] = set()
    for where, values in _chunked_or({"path": paths}):
        for story, explicit, claimed in conn.execute(
            f"SELECT story_hash, explicit_id, article_id FROM parse_cache WHERE {where}", values
        ):
            stories.update(v for v in (story,) if v)
            ids.update(v for v in (explicit, claimed) if v)
    return stories, ids


def related_keys(
    conn: sqlite3.Connection, paths: set[str], stories: set[str], ids: set[str]
) -> dict[str, tuple[Key, str | None]]:
    """Valid files at `paths`, or sharing a story or an id (explicit or claimed) with them: path ->
    (key, id it claimed)."""
    found: dict[str, tuple[Key, str | None]] = {}
    columns = {"path": paths, "story_hash": stories, "explicit_id": ids, "article_id": ids}
    for where, values in _chunked_or(columns):
        for r in conn.execute(
            f"SELECT {_KEY_COLUMNS}, article_id FROM parse_cache WHERE valid = 1 AND {where}", values
        ):
            found[r[0]] = (_key(r), r[9])
    return found


def claims(conn: sqlite3.Connection, paths: set[str] | None = None) -> dict[str, str | None]:
    """path -> article id it claimed in the last sync (for `paths`, or every file)."""
    if paths is None:
        return {str(r[0]): r[1] for r in conn.execute("SELECT path, article_id FROM parse_cache")}
    found: dict[str, str | None] = {}
    for where, values in _chunked_or({"path": paths}):
        found.update(
            (str(r[0]), r[1])
            for r in conn.execute(f"SELECT path, article_id FROM parse_cache WHERE {where}", values)
        )
    return found


def set_claims(conn: sqlite3.Connection, changes: dict[str, str | None]) -> None:
    conn.executemany(
        "UPDATE parse_cache SET article_id = ? WHERE path = ?", ((v, k) for k, v in changes.items())
    )


def article_from_json(text: str) -> Article:
    """An Article stored by `put`, rebuilt without validating again (it was validated on the way in)."""
    data = json.loads(text)
    data["date"] = datetime.fromisoformat(data["date"])
    data["tags"] = tuple(data["tags"])
    data["paragraphs"] = tuple(data["paragraphs"])
    if data.get("lastmod") is not None:
        data["lastmod"] = datetime.fromisoformat(data["lastmod"])
    data["images"] = tuple(tuple(image) for image in data.get("images", ()))
    data["assets"] = tuple(tuple(asset) for asset in data.get("assets", ()))
    return Article.model_construct(**data)


def load_articles(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Article]:
    """The Articles that claimed `ids`, by id."""
    found: dict[str, Article] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for article_id, text in conn.execute(
            "SELECT c.article_id, j.json FROM parse_cache c JOIN parse_articles j ON j.path = c.path "
            f"WHERE c.article_id IN ({marks})",
            chunk,
        ):
            found[str(article_id)] = article_from_json(text)
    return found


def iter_articles(conn: sqlite3.Connection, ids: Sequence[str]) -> Iterator[tuple[str, Article]]:
    """Like `load_articles`, a chunk at a time, so 100,000 pages never sit in memory together."""
    for start in range(0, len(ids), 500):
        yield from load_articles(conn, ids[start : start + 500]).items()
