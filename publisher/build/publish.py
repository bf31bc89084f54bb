"""The steps of `publisher build`, sequenced by `pipeline.build`: bring the parse cache in line with
seeds/, give what changed its identity, and write every output that may differ.

Work grows with what changed: a file is read only when its size or mtime moved (and parsed only
when its bytes did), the identity sync sees only the files that changed and those sharing a story
or an id with them, and only pages whose article changed are rendered. The feeds and index need
the newest entries only, loaded from the cache's JSON without validating again. A cold build
parses on every core.

The build's own records live in the meta table (`_META_*`): whether the last build completed (a
killed one is finished by the next), the fingerprint of what shapes the outputs (settings,
templates, release), the next embargo, the identity problems, archives still to write.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from publisher import ingest
from publisher.build.parse import Parsed, parse_all
from publisher.config import Settings
from publisher.models import Problem, Published

if TYPE_CHECKING:
    pass

log = logging.getLogger("publisher.build")

_META_FINGERPRINT = "build.fingerprint"
_META_COMPLETE = "build.complete"
_META_EMBARGO = "build.next_embargo"
_META_PUBLISHED = "build.published"
_META_PROBLEMS = "build.problems"
_META_ARCHIVES = "build.pending_archives"


@dataclass
class State:
    """What the state says of the last build."""

    complete: bool
    fingerprint: str  # of what shapes the outputs now
    same_look: bool  # ... and it is the one the last build wrote with
    embargo: datetime | None
    published: int

    def up_to_date(self, settings: Settings, now: datetime) -> bool:
        """Nothing to render: the last build completed with the same look, its files are in place,
        no embargo has passed."""
        in_place = site_files_in_place(settings)
        return self.complete and self.same_look and in_place and (self.embargo is None or now < self.embargo)


def site_files_in_place(settings: Settings) -> bool:
    """The site's fixed files are all in feeds/ (one deleted by hand makes a build write them all)."""
    from publisher.build import feed, pages

    names = ("index.html", feed.ATOM_FILE, *feed.FORMATS, *pages.STATIC_FILES)
    return all((settings.feeds_dir / name).is_file() for name in names)


def load_state(conn: sqlite3.Connection, settings: Settings) -> State:
    from publisher.store import db

    fingerprint = output_fingerprint(settings)
    embargo = db.get_meta(conn, _META_EMBARGO)
    return State(
        complete=db.get_meta(conn, _META_COMPLETE) == "1",
        fingerprint=fingerprint,
        same_look=db.get_meta(conn, _META_FINGERPRINT) == fingerprint,
        embargo=datetime.fromisoformat(embargo) if embargo else None,
        published=int(db.get_meta(conn, _META_PUBLISHED) or 0),
    )


def mark_started(conn: sqlite3.Connection) -> None:
    """Intent first: until `mark_complete`, the next build knows this one may have been killed."""
    from publisher.store import db

    with db.transaction(conn):
        db.set_meta(conn, _META_COMPLETE, "0")


def mark_complete(conn: sqlite3.Connection, state: State, now: datetime) -> None:
    """After every output is renamed into place: the build is complete and, in the same step, the
    articles it put out are out (digests may mail them). A killed build never gets here."""
    from publisher.store import db, visible

    with db.transaction(conn):
        db.set_meta(conn, _META_FINGERPRINT, state.fingerprint)
        db.set_meta(conn, _META_COMPLETE, "1")
        visible.confirm_out(conn, now)


def problems(conn: sqlite3.Connection, refused: list[Problem]) -> list[Problem]:
    """Every problem of the build: what the scan `refused` (recorded for `publisher status`: the
    parse cache never sees those files), what parsing found, and what identity sync found."""
    from publisher.store import cache

    cache.record_refused(conn, refused)
    return [*refused, *cache.problems(conn), *identity_problems(conn)]


def identity_problems(conn: sqlite3.Connection) -> list[Problem]:
    """Duplicates and id clashes found by the identity syncs, still true of seeds/."""
    from publisher.store import db

    return [Problem(*fields) for fields in json.loads(db.get_meta(conn, _META_PROBLEMS) or "[]")]


@dataclass
class Counts:
    new: int = 0
    changed: int = 0
    renamed: int = 0
    removed: int = 0
    # The articles whose page may have changed (touched, or claimed or released by a changed
    # file); None: any of them (a full sync).
    ids: set[str] | None = field(default_factory=set)


@dataclass
class Written:
    paths: list[str]
    unchanged: int
    published: int
    next_embargo: datetime | None


@dataclass
class Refresh:
    """What bringing the parse cache up to date found."""

    present: set[str]  # every candidate path in seeds/
    paths: set[str] = field(default_factory=set)  # parsed anew or gone
    stories: set[str] = field(default_factory=set)  # the stories and ids those paths had before
    ids: set[str] = field(default_factory=set)
    parsed: int = 0
    reset: bool = False
    unsettled: list[str] = field(default_factory=list)  # changed too recently to be read yet

    @property
    def changed(self) -> bool:
        return self.reset or bool(self.paths)


def refresh_cache(
    conn: sqlite3.Connection,
    settings: Settings,
    files: list[ingest.SeedFile],
    *,
    settled_before_ns: int | None = None,
    reparse: bool = False,
) -> Refresh:
    """Bring the parse cache in line with seeds/, reading only files whose size or mtime moved.

    With `settled_before_ns` (the daemon's), a changed file modified after that moment may still be
    being written: it is not read this time, and whatever the cache held for it (its previous
    complete version, or nothing) stands until a later build, when it has stopped changing.
    `reparse` (`build --full`): trust nothing cached, read and parse every file again.

    Results are stored a batch at a time as they come (memory stays flat on a cold build, and no
    transaction is held open while files are parsed). The first change to the cache also marks
    the build as started: if it is killed now, the next build syncs every identity.
    """
    from publisher.store import cache, db

    refresh = Refresh(present={seed.rel for seed in files})
    with db.transaction(conn):
        refresh.reset = cache.reset_if_changed(conn, _parse_fingerprint(settings))
        known = cache.stats(conn)
    gone = {path for path in known if path not in refresh.present}
    suspects = [s for s in files if reparse or known.get(s.rel) != f"{s.size}:{s.mtime_ns}"]
    # An unchanged article whose image changed, appeared or went is read again (its bytes are
    # the same, so it must not be matched by hash below).
    moved = _assets_moved(conn, settings, refresh.present)
    if moved:
        seen = {s.rel for s in suspects}
        suspects += [s for s in files if s.rel in moved and s.rel not in seen]
    if settled_before_ns is not None:
        refresh.unsettled = sorted(s.rel for s in suspects if s.mtime_ns > settled_before_ns)
        suspects = [s for s in suspects if s.mtime_ns <= settled_before_ns]
    with db.transaction(conn):
        # What the files about to change held before: a partial sync must look at those too.
        refresh.stories, refresh.ids = cache.related_info(conn, gone | {s.rel for s in suspects})
        if gone:
            db.set_meta(conn, _META_COMPLETE, "0")
            cache.forget(conn, gone)
    refresh.paths = set(gone)
    pending: list[Parsed] = []

    def store() -> None:
        with db.transaction(conn):
            entries = []
            for seed, entry in pending:
                if entry is None:
                    cache.touch(conn, seed)  # same bytes as cached: a touch or a copy
                    continue
                if refresh.parsed == 0:
                    db.set_meta(conn, _META_COMPLETE, "0")
                entries.append(entry)
                refresh.parsed += 1
                refresh.paths.add(seed.rel)
            cache.put_many(conn, entries)
        pending.clear()

    # Known hashes let unchanged bytes skip the parse; a reparse compares with none.
    hashed = set() if reparse else {s.rel for s in suspects if s.rel in known and s.rel not in moved}
    hashes = cache.file_hashes(conn, hashed)
    for item in parse_all(settings, suspects, hashes):
        pending.append(item)
        if len(pending) >= 500:
            store()
    store()
    return refresh


def _assets_moved(conn: sqlite3.Connection, settings: Settings, paths: set[str]) -> set[str]:
    """Which of `paths` use a file beside them (an image) that differs from when they were read."""
    from publisher.ingest.images import asset_changed
    from publisher.store import cache

    seeds = settings.seeds_dir
    return {
        path
        for path, assets in cache.assets(conn)
        if path in paths and any(asset_changed(seeds, *asset) for asset in assets)
    }


def _parse_fingerprint(settings: Settings) -> str:
    """What decides how a file parses: the release and the settings ingest reads."""
    from publisher import __version__

    relevant = [
        __version__,
        str(settings.seeds_dir),
        settings.site.model_dump_json(),
        settings.ingest.model_dump_json(),
    ]
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()


def output_fingerprint(settings: Settings) -> str:
    """What decides how outputs look: the release, the settings and the page templates' bytes."""
    from publisher import __version__
    from publisher.build import pages

    parts = [__version__, settings.model_dump_json(), str(settings.feeds_dir)]
    # Only the templates the pages use: editing a digest template must not re-render every page.
    for name in (*pages.PAGE_TEMPLATES, *pages.STATIC_FILES):
        path = pages.find_template(settings, name)
        parts.append(f"{name}:{hashlib.sha256(path.read_bytes()).hexdigest() if path else '-'}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def identify(
    conn: sqlite3.Connection, settings: Settings, now: datetime, refresh: Refresh, *, full: bool
) -> Counts:
    """Identities for what changed (for everything when `full`), and the claims recorded."""
    from publisher.store import articles, cache, db

    def label(rel: str) -> str:
        return ingest.display(settings, rel)

    if not full and not refresh.reset and not refresh.paths:
        return Counts()  # no file changed: no identity can have
    subjects = None if full or refresh.reset else _related(conn, refresh)
    host = settings.site.host
    if subjects is None:
        keys, invalid = cache.keys(conn), cache.invalid_paths(conn)
        sync = articles.sync_sources(conn, keys, now, present_invalid=invalid, host=host, label=label)
        scope = {key.source for key in keys} | set(invalid)
    else:
        keys, related = subjects
        sync = articles.sync_sources(conn, keys, now, host=host, label=label, related=related)
        scope = set(related.sources)
    shown = {label(path) for path in scope}
    with db.transaction(conn):
        old = cache.claims(conn, None if subjects is None else scope)
        cache.set_claims(
            conn, {p: sync.claims.get(p) for p in scope if p in old and old[p] != sync.claims.get(p)}
        )
        stored = json.loads(db.get_meta(conn, _META_PROBLEMS) or "[]")
        # A full sync found every problem there is; a partial one only those in its scope.
        kept = [] if subjects is None else [fields for fields in stored if fields[0] not in shown]
        fresh = [[p.path, p.field, p.message, p.severity] for p in sync.problems]
        db.set_meta(conn, _META_PROBLEMS, json.dumps(sorted(kept + fresh)))
    ids = None
    if subjects is not None:
        # related.ids holds the ids the changed and removed files claimed before this sync.
        ids = set(sync.touched) | {i for i in old.values() if i} | set(sync.claims.values()) | related.ids
    return Counts(sync.new, sync.changed, sync.renamed, sync.removed, ids)


def _related(conn: sqlite3.Connection, refresh: Refresh) -> tuple[list[Any], Any] | None:
    """What a partial identity sync must see: the files that changed and, closed over, every file
    sharing a story or an id with them. None when that is much of seeds/ (a full sync is cheaper)."""
    from publisher.store import articles, cache

    paths, stories, ids = set(refresh.paths), set(refresh.stories), set(refresh.ids)
    found: dict[str, Any] = {}
    for _ in range(8):
        found = cache.related_keys(conn, paths, stories, ids)
        grown = (
            paths | found.keys(),
            stories | {key.story_hash for key, _ in found.values()},
            ids | {i for key, claimed in found.values() for i in (key.explicit_id, claimed) if i},
        )
        if grown == (paths, stories, ids):
            break
        paths, stories, ids = grown
    else:
        return None
    if len(found) > max(1000, len(refresh.present) // 4):
        return None
    related = articles.Related(
        present=frozenset(refresh.present),
        sources=frozenset(paths),
        stories=frozenset(stories),
        ids=frozenset(ids),
    )
    return [key for key, _ in found.values()], related


def write_outputs(
    conn: sqlite3.Connection,
    settings: Settings,
    now: datetime,
    *,
    full: bool,
    new_look: bool,
    candidates: set[str] | None = None,
) -> Written:
    """Every output that may differ, written atomically, then the record of it.

    `full`: every page and feed is rendered again (files whose bytes are unchanged stay untouched).
    Archive documents are frozen (RFC 5005): they are rewritten when their membership changes,
    when one is missing, or when the look changed (`new_look`: settings, templates, release), and
    not by `full` alone, so a --full build never disagrees with the incremental ones.
    """
    from publisher import output, urls
    from publisher.build import feed, pages
    from publisher.build import units as publish_units
    from publisher.store import articles, cache, db, feed_archives, visible

    # Going out now: digests are cut along live_at. The page address comes from this content.
    going_live = visible.not_yet_live(conn, now)
    articles.reslug_before_live(conn, cache.keys_of(conn, going_live))
    articles.mark_live(conn, going_live, now)
    if candidates is not None:
        candidates = candidates | set(going_live)
    layout = feed_archives.assign(conn, settings, now, candidates)
    total = layout.total
    pending = set(json.loads(db.get_meta(conn, _META_ARCHIVES) or "[]")) | set(layout.rewrite)
    if new_look:
        pending.update(range(1, total + 1))
    pending.update(
        n for n in range(1, total + 1) if not (settings.feeds_dir / feed.archive_path(n)).is_file()
    )
    pending = {n for n in pending if 1 <= n <= total}
    with db.transaction(conn):
        db.set_meta(conn, _META_ARCHIVES, json.dumps(sorted(pending)))

    def published(ids: Sequence[str]) -> list[Published]:
        return publish_units.published(conn, ids)

    def archive_url(number: int) -> str | None:
        return urls.absolute(settings.site, feed.archive_path(number)) if 1 <= number <= total else None

    if candidates is not None and len(candidates) > 5_000:
        candidates = None  # one scan of everything is cheaper than a long IN list
    work = visible.page_work(conn, now, everything=full, candidates=candidates)
    site = pages.Pages(settings)
    with output.Batch(settings.feeds_dir) as batch:
        for name, data in site.static().items():
            batch.write(name, data)
        # Pages first, feeds after: a reader never follows a feed link to a page not yet there.
        opened = (total, layout.open_members) if total else None
        units = publish_units.plan(conn, sorted(pending), [row[0] for row in work.render], opened)
        started = time.perf_counter()
        publish_units.render_all(conn, settings, site, batch, units, now, total)
        rendered = time.perf_counter() - started
        newest = visible.newest(conn, now, settings.feed.index_entries)
        # atom.xml, rss.xml and feed.json: exactly the newest `feed.entries`; the archives the rest.
        current = published(layout.current)
        batch.write(feed.ATOM_FILE, feed.atom_current(current, settings, prev_archive=archive_url(total)))
        for name, render in feed.FORMATS.items():
            batch.write(name, render(current, settings))
        batch.write(pages.INDEX, site.index(published(newest)))
        for stale in stale_archives(settings, total):
            batch.delete(stale)
        for _, slug in work.delete:
            batch.delete(pages.page_path(slug))
        if full:
            keep = {pages.page_path(slug) for _, slug, _ in work.render}
            for stray in stray_pages(settings, keep):
                batch.delete(stray)
        started = time.perf_counter()
        written = batch.commit()
        committed = time.perf_counter() - started
        log.debug("outputs: pages and archives %.2f s, commit %.2f s", rendered, committed)
    with db.transaction(conn):
        visible.record_pages(conn, work.render, [article_id for article_id, _ in work.delete])
        db.set_meta(conn, _META_ARCHIVES, "[]")
        count = visible.published_count(conn, now)
        embargo = visible.next_embargo(conn, now)
        db.set_meta(conn, _META_PUBLISHED, str(count))
        db.set_meta(conn, _META_EMBARGO, embargo.isoformat() if embargo else "")
    return Written(written, batch.unchanged, count, embargo)


def stale_archives(settings: Settings, total: int) -> list[str]:
    """Archive documents numbered past the last archive (left by an older cut): removed."""
    from publisher.build import feed

    folder = settings.feeds_dir / feed.archive_path(1).rpartition("/")[0]
    if not folder.is_dir():
        return []
    stale = []
    for entry in os.scandir(folder):
        number = entry.name.removesuffix(".xml")
        if entry.is_file() and number.isdigit() and int(number) > total and entry.name == f"{number}.xml":
            stale.append(feed.archive_path(int(number)))
    return sorted(stale)


def stray_pages(settings: Settings, keep: set[str]) -> list[str]:
    """Files in feeds/articles/ that are no published article's page (a --full build removes them)."""
    from publisher import urls

    folder = settings.feeds_dir / urls.ARTICLES_DIR
    if not folder.is_dir():
        return []
    return sorted(
        rel
        for entry in os.scandir(folder)
        if entry.is_file()
        and entry.name.endswith(".html")
        and (rel := f"{urls.ARTICLES_DIR}/{entry.name}") not in keep
    )
