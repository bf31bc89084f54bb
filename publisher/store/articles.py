"""Article identity: the permanent id, slug and dates each article keeps across builds.

`sync` reconciles one scan of seeds/ with what the database remembers:
- an article is recognised by its explicit `id`, else by its path, else (a rename) by its story
  text; only when none matches is a new id minted (a `tag:` URI, RFC 4151);
- `updated` moves only when the content hash changes;
- two files with the same story text: the one already known (else the first by path) is kept, the
  other is reported;
- records whose file has gone are marked removed (kept, so the id is never reused); records whose
  file is present but currently invalid are left alone, so fixing the file brings back the same id.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from publisher.models import Article, Identity, Problem, Published
from publisher.store.db import from_db_time, to_db_time, transaction

MIGRATIONS: list[str] = [
    """
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,            -- permanent atom:id; never reused
        seq INTEGER NOT NULL UNIQUE,    -- order of first sight: archives are cut along it
        slug TEXT NOT NULL UNIQUE,      -- page name, minted once
        source TEXT NOT NULL,           -- last known path relative to seeds/
        story_hash TEXT NOT NULL,       -- normalised story text: renames and duplicates
        content_hash TEXT NOT NULL,     -- everything a reader sees: moves `updated`
        first_seen TEXT NOT NULL,       -- UTC ISO 8601
        updated TEXT NOT NULL,          -- UTC ISO 8601; moves only on a real content change
        live_at TEXT,                   -- when it first went out in the feeds (digest cut-offs)
        removed_at TEXT                 -- set while its file is gone
    );
    CREATE UNIQUE INDEX articles_present_source ON articles (source) WHERE removed_at IS NULL;
    CREATE INDEX articles_story ON articles (story_hash);
    CREATE INDEX articles_live ON articles (live_at);
    """,
    # out_at: when its page and feed entries were confirmed in place (the build that wrote them
    # completed). Digests are cut along it; live_at stays the order articles went out in (archives).
    """
    ALTER TABLE articles ADD COLUMN out_at TEXT;
    UPDATE articles SET out_at = live_at WHERE live_at IS NOT NULL;
    CREATE INDEX articles_out ON articles (out_at);
    """,
]

_SLUG_MAX = 60


class Source(Protocol):
    """What identity needs of an article: `Article` fits, and so does the parse cache's light `Key`."""

    @property
    def source(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def date(self) -> datetime: ...
    @property
    def explicit_id(self) -> str | None: ...
    @property
    def story_hash(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def slug(self) -> str | None: ...
    @property
    def lastmod(self) -> datetime | None: ...


@dataclass
class SyncReport:
    """What one sync changed, for logs and `publisher status`."""

    published: list[Published] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)  # source -> id, for every published file
    touched: set[str] = field(default_factory=set)  # ids minted, changed, renamed or brought back
    new: int = 0
    changed: int = 0
    renamed: int = 0
    removed: int = 0


@dataclass
class _Row:
    id: str
    seq: int
    slug: str
    source: str
    story_hash: str
    content_hash: str
    first_seen: str
    updated: str
    removed_at: str | None
    claimed: bool = False

    def identity(self) -> Identity:
        return Identity(
            id=self.id,
            slug=self.slug,
            seq=self.seq,
            first_seen=from_db_time(self.first_seen),
            updated=from_db_time(self.updated),
        )


def slugify(text: str, fallback: str) -> str:
    """ASCII, lowercase, hyphenated; at most ~60 characters cut at a hyphen."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > _SLUG_MAX:
        cut = slug[:_SLUG_MAX]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut
    return slug or fallback


def _slug_base(article: Source) -> str:
    if article.slug:  # asked for in the front matter (a site migrated from Hugo or Jekyll)
        return slugify(article.slug, "article")
    stem = article.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    # A writer names Markdown files on purpose; plain-text drops carry machine names, so their
    # page is named after the derived title instead.
    base = stem if article.format == "markdown" else " ".join(article.title.split()[:8])
    return slugify(base, "article")


_COLUMNS = "id, seq, slug, source, story_hash, content_hash, first_seen, updated, removed_at"


def _load(conn: sqlite3.Connection) -> list[_Row]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM articles").fetchall()
    return [_Row(*tuple(row)) for row in rows]


@dataclass(frozen=True)
class Related:
    """What a partial sync may touch: records at these paths, with these stories or these ids."""

    present: frozenset[str]  # every path present in seeds/, valid or not
    sources: frozenset[str]  # the paths that changed or went, and the paths of the articles given
    stories: frozenset[str]
    ids: frozenset[str]


class _Slugs(Protocol):
    def __contains__(self, slug: object) -> bool: ...
    def add(self, slug: str) -> None: ...


class _SlugsInDb:
    """The slugs taken, asked of the database one at a time (a partial sync mints a few)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.minted: set[str] = set()

    def __contains__(self, slug: object) -> bool:
        if slug in self.minted:
            return True
        return self.conn.execute("SELECT 1 FROM articles WHERE slug = ?", (slug,)).fetchone() is not None

    def add(self, slug: str) -> None:
        self.minted.add(slug)


def _load_related(conn: sqlite3.Connection, related: Related) -> list[_Row]:
    found: dict[str, _Row] = {}
    for column, values in (("source", related.sources), ("story_hash", related.stories), ("id", related.ids)):
        ordered = sorted(values)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT {_COLUMNS} FROM articles WHERE {column} IN ({marks})", chunk):
                found.setdefault(str(row[0]), _Row(*tuple(row)))
    return sorted(found.values(), key=lambda row: row.seq)


def sync(
    conn: sqlite3.Connection,
    articles: Sequence[Article],
    now: datetime,
    *,
    present_invalid: Iterable[str] = (),
    host: str,
    label: Callable[[str], str] = str,
) -> SyncReport:
    """Give every article its identity, record changes, and report duplicates. One transaction."""
    report = sync_sources(conn, articles, now, present_invalid=present_invalid, host=host, label=label)
    found = identities(conn, list(report.claims.values()))
    report.published = [
        Published(a, found[report.claims[a.source]]) for a in articles if a.source in report.claims
    ]
    return report


def sync_sources(
    conn: sqlite3.Connection,
    articles: Sequence[Source],
    now: datetime,
    *,
    present_invalid: Iterable[str] = (),
    host: str,
    label: Callable[[str], str] = str,
    related: Related | None = None,
) -> SyncReport:
    """`sync` without building Published objects: `report.claims` maps each source to its id.

    With `related`, `articles` is only the part of seeds/ that changed plus everything that shares
    a story or an id with it (the caller closes that set), and only the records those can touch
    are loaded: the outcome for them is the one a sync of everything would give, at a cost that
    grows with the change instead of with the corpus.
    """
    report = SyncReport()
    slugs: _Slugs
    with transaction(conn):
        if related is None:
            rows = _load(conn)
            slugs = {row.slug for row in rows}
            next_seq = max((row.seq for row in rows), default=0) + 1
            present = {article.source for article in articles} | set(present_invalid)
        else:
            rows = _load_related(conn, related)
            slugs = _SlugsInDb(conn)
            next_seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM articles").fetchone()[0]) + 1
            present = set(related.present)
        by_id = {row.id: row for row in rows}
        by_source = {row.source: row for row in rows if row.removed_at is None}
        by_story: dict[str, list[_Row]] = {}
        for known in rows:
            # A file that comes back to its old path after being removed is the same article.
            by_source.setdefault(known.source, known)
            by_story.setdefault(known.story_hash, []).append(known)
        winner_of_story: dict[str, str] = {}

        # Articles already known at their path go first, so a new copy is the one reported.
        ordered = sorted(articles, key=lambda a: (a.source not in by_source, a.source))
        for article in ordered:
            first = winner_of_story.get(article.story_hash)
            if first is not None:
                message = f"same story text as {label(first)}; not published"
                report.problems.append(Problem(label(article.source), "body", message))
                continue
            row = _match(article, by_id, by_source, by_story, present)
            if row is not None and row.claimed:
                report.problems.append(
                    Problem(label(article.source), "id", f"{row.id} is already used by {label(row.source)}")
                )
                continue
            if row is None:
                row = _mint(conn, article, now, next_seq, slugs, host)
                next_seq += 1
                report.new += 1
                report.touched.add(row.id)
                by_id[row.id] = row
            else:
                _update(conn, row, article, now, report)
            row.claimed = True
            winner_of_story[article.story_hash] = article.source
            report.claims[article.source] = row.id

        for gone in rows:
            if not gone.claimed and gone.removed_at is None and gone.source not in present:
                conn.execute("UPDATE articles SET removed_at = ? WHERE id = ?", (to_db_time(now), gone.id))
                report.removed += 1
    return report


def _match(
    article: Source,
    by_id: dict[str, _Row],
    by_source: dict[str, _Row],
    by_story: dict[str, list[_Row]],
    present: set[str],
) -> _Row | None:
    if article.explicit_id is not None:
        return by_id.get(article.explicit_id)
    row = by_source.get(article.source)
    if row is not None and (row.removed_at is not None or not row.claimed):
        return row
    for candidate in by_story.get(article.story_hash, ()):
        # A rename: the same story under a path that no longer holds it.
        if not candidate.claimed and (candidate.removed_at is not None or candidate.source not in present):
            return candidate
    return None


def _mint(
    conn: sqlite3.Connection, article: Source, now: datetime, seq: int, slugs: _Slugs, host: str
) -> _Row:
    base = _slug_base(article)
    slug, n = base, 2
    while slug in slugs:
        slug, n = f"{base}-{n}", n + 1
    slugs.add(slug)
    ident = article.explicit_id or f"tag:{host},{article.date:%Y-%m-%d}:{slug}"
    row = _Row(
        id=ident,
        seq=seq,
        slug=slug,
        source=article.source,
        story_hash=article.story_hash,
        content_hash=article.content_hash,
        first_seen=to_db_time(now),
        # A new article was last updated when it was written, as far as anyone can know (or when
        # its front matter's `lastmod` says).
        updated=to_db_time(article.lastmod or article.date),
        removed_at=None,
    )
    conn.execute(
        "INSERT INTO articles (id, seq, slug, source, story_hash, content_hash, first_seen, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.id,
            row.seq,
            row.slug,
            row.source,
            row.story_hash,
            row.content_hash,
            row.first_seen,
            row.updated,
        ),
    )
    return row


def _update(conn: sqlite3.Connection, row: _Row, article: Source, now: datetime, report: SyncReport) -> None:
    changes: dict[str, str | None] = {}
    if row.source != article.source:
        changes["source"] = article.source
        report.renamed += 1
    if row.removed_at is not None:
        changes["removed_at"] = None  # back from the dead: a file that returned, or a rename
    if row.story_hash != article.story_hash:
        changes["story_hash"] = article.story_hash
    if row.content_hash != article.content_hash:
        changes["content_hash"] = article.content_hash
        # The writer's `lastmod` when given (ingest keeps it at or after the date), else now.
        changes["updated"] = to_db_time(article.lastmod or max(now, article.date))
        report.changed += 1
    if not changes:
        return
    report.touched.add(row.id)
    assignments = ", ".join(f"{name} = ?" for name in changes)
    conn.execute(f"UPDATE articles SET {assignments} WHERE id = ?", (*changes.values(), row.id))
    for name, value in changes.items():
        setattr(row, name, value)


def reslug_before_live(conn: sqlite3.Connection, sources: Mapping[str, Source]) -> int:
    """Derive again, from the content about to go out, the slug of articles never out before.

    The identity row is minted at first sight (an embargoed or draft article needs its id for
    claims and the next-embargo timer), but its page address must come from what is published,
    not from the first version the writer saved. Only rows with no `live_at` and no page written
    change; the id stays (an opaque tag URI, the key every other table uses)."""
    changed = 0
    with transaction(conn):
        for ident, article in sorted(sources.items()):
            row = conn.execute(
                "SELECT slug FROM articles WHERE id = ? AND live_at IS NULL "
                "AND NOT EXISTS (SELECT 1 FROM pages WHERE pages.article_id = articles.id)",
                (ident,),
            ).fetchone()
            if row is None:
                continue
            base = _slug_base(article)
            if str(row[0]) == base or re.fullmatch(re.escape(base) + r"-[0-9]+", str(row[0])):
                continue
            slug, n = base, 2
            while conn.execute("SELECT 1 FROM articles WHERE slug = ? AND id != ?", (slug, ident)).fetchone():
                slug, n = f"{base}-{n}", n + 1
            conn.execute("UPDATE articles SET slug = ? WHERE id = ?", (slug, ident))
            changed += 1
    return changed


def mark_live(conn: sqlite3.Connection, ids: Iterable[str], now: datetime) -> int:
    """Record when articles first went out in the feeds; digests are cut along this time."""
    stamp = to_db_time(now)
    with transaction(conn):
        cursor = conn.executemany(
            "UPDATE articles SET live_at = ? WHERE id = ? AND live_at IS NULL", ((stamp, i) for i in ids)
        )
        return cursor.rowcount


def live_between(conn: sqlite3.Connection, after: datetime | None, until: datetime) -> list[str]:
    """Ids of present articles confirmed out (page and feed entries in place: `out_at`, set when
    the build that wrote them completed) in (after, until], oldest first."""
    if after is None:
        rows = conn.execute(
            "SELECT id FROM articles WHERE removed_at IS NULL AND out_at <= ? ORDER BY out_at, live_at, seq",
            (to_db_time(until),),
        )
    else:
        rows = conn.execute(
            "SELECT id FROM articles WHERE removed_at IS NULL AND out_at > ? AND out_at <= ? "
            "ORDER BY out_at, live_at, seq",
            (to_db_time(after), to_db_time(until)),
        )
    return [str(row[0]) for row in rows]


def identities(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, Identity]:
    """The identities of `ids` (those that exist), by id."""
    found: dict[str, Identity] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT id, slug, seq, first_seen, updated FROM articles WHERE id IN ({marks})", chunk
        ):
            found[str(row[0])] = Identity(
                id=row[0],
                slug=row[1],
                seq=row[2],
                first_seen=from_db_time(row[3]),
                updated=from_db_time(row[4]),
            )
    return found
