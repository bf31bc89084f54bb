"""The pipeline: the one place that sequences the stages (ingest → store → feeds/pages → digest →
delivery). The CLI and the daemon call these functions and never re-implement the sequence.

Everything below receives `now` (and, for delivery, the transport) from the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from publisher import delivery, ingest, mailer
from publisher.config import Settings
from publisher.models import Article, Problem, Published

log = logging.getLogger("publisher.pipeline")


@dataclass
class CheckReport:
    """What `publisher check` found: every problem, and counts for the summary line."""

    files: int = 0
    valid: int = 0
    drafts: int = 0
    scheduled: int = 0
    problems: list[Problem] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({p.path for p in self.problems if p.severity == "error"})

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")


def check(settings: Settings, now: datetime) -> CheckReport:
    """Validate every file in seeds/ without writing anything anywhere."""
    result = ingest.ingest(settings)
    dupes = ingest.duplicates(result.articles, settings)
    duplicate_paths = {p.path for p in dupes}
    articles = [a for a in result.articles if ingest.display(settings, a.source) not in duplicate_paths]
    # Files refused while scanning (a link leading outside seeds/, a FIFO) count as checked too, so
    # the summary's "rejected" never exceeds its "checked".
    scanned = {ingest.display(settings, rel) for rel in result.invalid} | {
        ingest.display(settings, a.source) for a in result.articles
    }
    refused = {p.path for p in result.problems if p.severity == "error"} - scanned
    return CheckReport(
        files=result.files + len(refused),
        valid=len(articles),
        drafts=sum(1 for a in articles if a.draft),
        scheduled=sum(1 for a in articles if not a.draft and a.date > now),
        problems=sorted([*result.problems, *dupes], key=lambda p: (p.path, p.severity != "error")),
        articles=articles,
    )


PREVIEW_FOLDER = "preview"


def digest_preview(settings: Settings, now: datetime, *, backfill: int | None = None) -> list[Path]:
    """Render the next digest from the real articles into state/preview/ (HTML and text parts, as
    a subscriber would get them, with a dummy unsubscribe link). Sends nothing and records
    nothing: the database is opened read-only. Returns the paths written; [] when there would be
    no digest now."""
    from publisher import digest
    from publisher.output import write_atomic
    from publisher.store import db

    conn = db.connect(settings.db_path, readonly=True)
    try:
        rendered = digest.render_preview(conn, settings, now, backfill)
    finally:
        conn.close()
    if rendered is None:
        return []
    html, text = digest.personalise(rendered, digest.unsubscribe_url(settings, "preview"), "")
    folder = settings.state_dir / PREVIEW_FOLDER
    paths = [folder / "next-digest.html", folder / "next-digest.txt"]
    write_atomic(paths[0], html.encode("utf-8"))
    write_atomic(paths[1], text.encode("utf-8"))
    return paths


@dataclass
class BuildReport:
    """What `publisher build` did: every problem, what changed, and what was written."""

    files: int = 0
    published: int = 0  # articles in the output
    written: list[str] = field(default_factory=list)  # paths relative to feeds/ that changed
    unchanged: int = 0  # outputs rendered whose bytes were already in place
    new: int = 0
    changed: int = 0
    renamed: int = 0
    removed: int = 0
    parsed: int = 0  # files read and parsed this time (the others came from the parse cache)
    skipped: bool = False  # nothing had changed: not a single output was rendered
    next_embargo: datetime | None = None  # earliest future date of a valid non-draft article
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len({p.path for p in self.problems if p.severity == "error"})

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")


# Meta keys of the build (store/db.py's meta table).
_BUILD_FINGERPRINT = "build.fingerprint"
_BUILD_COMPLETE = "build.complete"
_BUILD_EMBARGO = "build.next_embargo"
_BUILD_PUBLISHED = "build.published"
_BUILD_PROBLEMS = "build.problems"
_BUILD_ARCHIVES = "build.pending_archives"
# Below this many files to parse, starting worker processes costs more than it saves.
_POOL_FROM = 400


def build(settings: Settings, now: datetime, *, full: bool = False) -> BuildReport:
    """seeds/ → feeds/: parse what changed, keep identities, write every output that differs.

    Incremental: unchanged files come from the parse cache, only pages whose article changed are
    rendered, and when no file changed, no embargo passed and the last build completed, nothing is
    rendered at all. `full` re-renders every output (still writing only files whose bytes differ)
    and deletes stray pages. The state records a build as complete only after its files are in
    place, so the next build finishes the work of a killed one.
    """
    from publisher import output
    from publisher.store import cache, db

    started = time.perf_counter()
    report = BuildReport()
    files, scan_problems = ingest.scan(settings)
    report.files = len(files)
    conn = db.connect(settings.db_path)
    try:
        changed, report.parsed = _refresh_cache(conn, settings, files)
        fingerprint = _output_fingerprint(settings)
        complete = db.get_meta(conn, _BUILD_COMPLETE) == "1"
        embargo_text = db.get_meta(conn, _BUILD_EMBARGO)
        embargo = datetime.fromisoformat(embargo_text) if embargo_text else None
        same_look = db.get_meta(conn, _BUILD_FINGERPRINT) == fingerprint
        in_place = (settings.feeds_dir / "index.html").is_file()
        if (
            not full
            and not changed
            and complete
            and same_look
            and in_place
            and (embargo is None or now < embargo)
        ):
            report.skipped = True
            report.published = int(db.get_meta(conn, _BUILD_PUBLISHED) or 0)
            report.next_embargo = embargo
        else:
            with db.transaction(conn):
                db.set_meta(conn, _BUILD_COMPLETE, "0")  # intent first: a killed build is resumed
            if not complete:
                output.remove_stale_temps(settings.feeds_dir)
            _publish(conn, settings, now, report, full=full or not same_look or not in_place)
            with db.transaction(conn):
                db.set_meta(conn, _BUILD_FINGERPRINT, fingerprint)
                db.set_meta(conn, _BUILD_COMPLETE, "1")
        stored = json.loads(db.get_meta(conn, _BUILD_PROBLEMS) or "[]")
        sync_problems = [Problem(*fields) for fields in stored]
        report.problems = sorted(
            [*scan_problems, *cache.problems(conn), *sync_problems],
            key=lambda p: (p.path, p.severity != "error"),
        )
    finally:
        conn.close()
    report.seconds = time.perf_counter() - started
    return report


def _refresh_cache(
    conn: sqlite3.Connection, settings: Settings, files: list[ingest.SeedFile]
) -> tuple[bool, int]:
    """Bring the parse cache in line with seeds/; (did any article change, files parsed)."""
    from publisher.store import cache, db

    with db.transaction(conn):
        reset = cache.reset_if_changed(conn, _parse_fingerprint(settings))
        known = cache.stats(conn)
    present = {seed.rel for seed in files}
    gone = [path for path in known if path not in present]
    suspects = [s for s in files if known.get(s.rel, (-1, -1, ""))[:2] != (s.size, s.mtime_ns)]
    results = _parse_all(settings, suspects, {s.rel: known[s.rel][2] for s in suspects if s.rel in known})
    changed = reset or bool(gone)
    parsed = 0
    with db.transaction(conn):
        cache.forget(conn, gone)
        for seed, file_hash, article_json, problems in results:
            if article_json is None and problems is None:
                cache.touch(conn, seed)  # same bytes as cached: a touch or a copy
                continue
            cache.put(conn, seed, file_hash, article_json, problems or [])
            changed, parsed = True, parsed + 1
    return changed, parsed


_Parsed = tuple[ingest.SeedFile, str, str | None, list[Problem] | None]


def _parse_one(seed: ingest.SeedFile, settings: Settings, known_hash: str | None) -> _Parsed:
    """Hash a file; parse it unless the hash is the one cached (then problems is None)."""
    if seed.size > settings.ingest.max_bytes:
        file_hash = f"size:{seed.size}"  # never read a file that is too large
    else:
        try:
            file_hash = hashlib.sha256(ingest.read_limited(seed, settings.ingest.max_bytes)).hexdigest()
        except OSError:
            file_hash = "unreadable"
    if file_hash == known_hash:
        return seed, file_hash, None, None
    article, problems = ingest.parse_file(seed, settings)
    return seed, file_hash, None if article is None else article.model_dump_json(), problems


def _parse_chunk(chunk: list[tuple[ingest.SeedFile, str | None]], settings: Settings) -> list[_Parsed]:
    return [_parse_one(seed, settings, known) for seed, known in chunk]


def _parse_all(settings: Settings, seeds: list[ingest.SeedFile], known: dict[str, str]) -> list[_Parsed]:
    """Parse `seeds`, on every core when there are many (a cold build of thousands of files)."""
    work = [(seed, known.get(seed.rel)) for seed in seeds]
    workers = min(os.cpu_count() or 1, 8)
    if len(work) < _POOL_FROM or workers < 2:
        return _parse_chunk(work, settings)
    import concurrent.futures
    import multiprocessing

    size = max(50, len(work) // (workers * 8))
    chunks = [work[i : i + size] for i in range(0, len(work), size)]
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        done = pool.map(_parse_chunk, chunks, [settings] * len(chunks))
        return [item for chunk in done for item in chunk]


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


def _output_fingerprint(settings: Settings) -> str:
    """What decides how outputs look: the release, the settings and the page templates' bytes."""
    from publisher import __version__, pages

    parts = [__version__, settings.model_dump_json(), str(settings.feeds_dir)]
    # Only the templates the pages use: editing a digest template must not re-render every page.
    for name in (*pages.PAGE_TEMPLATES, *pages.STATIC_FILES):
        path = pages.find_template(settings, name)
        parts.append(f"{name}:{hashlib.sha256(path.read_bytes()).hexdigest() if path else '-'}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _publish(
    conn: sqlite3.Connection, settings: Settings, now: datetime, report: BuildReport, *, full: bool
) -> None:
    """Identities, then every output that may differ, written atomically, then the record of it."""
    from publisher import feed, output, pages, urls
    from publisher.store import archives, articles, cache, db

    def label(rel: str) -> str:
        return ingest.display(settings, rel)

    sync = articles.sync_sources(
        conn,
        cache.keys(conn),
        now,
        present_invalid=cache.invalid_paths(conn),
        host=settings.site.host,
        label=label,
    )
    report.new, report.changed, report.renamed, report.removed = (
        sync.new,
        sync.changed,
        sync.renamed,
        sync.removed,
    )
    with db.transaction(conn):
        old = cache.claims(conn)
        cache.set_claims(conn, {p: sync.claims.get(p) for p in old if old[p] != sync.claims.get(p)})
        db.set_meta(
            conn,
            _BUILD_PROBLEMS,
            json.dumps([[p.path, p.field, p.message, p.severity] for p in sync.problems]),
        )
    # Going out now: digests are cut along live_at, archives are filled in live order.
    articles.mark_live(conn, cache.not_yet_live(conn, now), now)
    pending = set(json.loads(db.get_meta(conn, _BUILD_ARCHIVES) or "[]"))
    pending.update(archives.assign(conn, settings, now))
    total = archives.count(conn)
    if full:
        pending.update(range(1, total + 1))
    pending.update(
        n for n in range(1, total + 1) if not (settings.feeds_dir / feed.archive_path(n)).is_file()
    )
    with db.transaction(conn):
        db.set_meta(conn, _BUILD_ARCHIVES, json.dumps(sorted(pending)))

    def published(ids: Sequence[str]) -> list[Published]:
        found = cache.load_articles(conn, ids)
        known = articles.identities(conn, list(found))
        items = [Published(found[i], known[i]) for i in ids if i in found and i in known]
        return sorted(items, key=lambda p: (p.published, p.id), reverse=True)

    def archive_url(number: int) -> str | None:
        return urls.absolute(settings.site, feed.archive_path(number)) if 1 <= number <= total else None

    work = cache.page_work(conn, now, everything=full)
    site = pages.Pages(settings)
    with output.Batch(settings.feeds_dir) as batch:
        for name, data in site.static().items():
            batch.write(name, data)
        # Pages first, feeds after: a reader never follows a feed link to a page not yet there.
        # Each article is loaded once: a page to render that sits in an archive being written is
        # rendered with that archive (on a cold build, nearly all of them).
        todo = {row[0] for row in work.render}
        for number in sorted(pending):
            members = archives.members(conn, number)
            entries = published(sorted(cache.published_among(conn, now, members)))
            for item in entries:
                if item.id in todo:
                    todo.discard(item.id)
                    batch.write(pages.page_path(item.identity.slug), site.article(item))
            data = feed.atom_archive(
                entries,
                settings,
                number=number,
                prev_archive=archive_url(number - 1),
                next_archive=archive_url(number + 1),
            )
            batch.write(feed.archive_path(number), data)
        rest = [row[0] for row in work.render if row[0] in todo]
        for start in range(0, len(rest), 500):
            for item in published(rest[start : start + 500]):
                batch.write(pages.page_path(item.identity.slug), site.article(item))
        newest = cache.newest(conn, now, max(settings.feed.entries, settings.feed.index_entries))
        # atom.xml must also hold every live article not archived yet (store/archives.py).
        waiting = cache.published_among(conn, now, archives.unarchived(conn, now))
        current = published(sorted(set(newest[: settings.feed.entries]) | waiting))
        batch.write(feed.ATOM_FILE, feed.atom_current(current, settings, prev_archive=archive_url(total)))
        batch.write(feed.RSS_FILE, feed.rss(current, settings))
        batch.write(feed.JSON_FILE, feed.json_feed(current, settings))
        batch.write(pages.INDEX, site.index(published(newest[: settings.feed.index_entries])))
        for _, slug in work.delete:
            batch.delete(pages.page_path(slug))
        if full:
            keep = {pages.page_path(slug) for _, slug, _ in work.render}
            for stray in _stray_pages(settings, keep):
                batch.delete(stray)
        report.written = batch.commit()
        report.unchanged = batch.unchanged
    with db.transaction(conn):
        cache.record_pages(conn, work.render, [article_id for article_id, _ in work.delete])
        db.set_meta(conn, _BUILD_ARCHIVES, "[]")
        report.published = cache.published_count(conn, now)
        report.next_embargo = cache.next_embargo(conn, now)
        db.set_meta(conn, _BUILD_PUBLISHED, str(report.published))
        db.set_meta(conn, _BUILD_EMBARGO, report.next_embargo.isoformat() if report.next_embargo else "")


def _stray_pages(settings: Settings, keep: set[str]) -> list[str]:
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


def digest_send(
    settings: Settings,
    now: datetime,
    *,
    transport: mailer.Transport | None = None,
    backfill: int | None = None,
    progress: Callable[[delivery.Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_only: bool = False,
) -> delivery.SendReport:
    """Finish every interrupted digest, then prepare and send the next one if there are new
    articles, each message through the send ledger (publisher.delivery). `should_stop()` is polled
    between messages; the rest stays pending for the next call. `transport`: one caller-owned
    connection instead of `settings.delivery`'s. `resume_only`: start no new digest (the daemon at
    start, between two slots)."""
    from publisher import digest, tokens
    from publisher.store import db

    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe%20"
    links = delivery.token_links(tokens.site_secret(settings), digest.unsubscribe_url(settings, ""), mailto)
    run = delivery.Session(settings, now, links, transport, progress, should_stop)
    conn = db.connect(settings.db_path)
    try:
        for digest_id in digest.unfinished(conn):
            if not run.send(conn, digest.load(conn, digest_id), digest.mark_complete):
                return run.report
        if not resume_only:
            rendered = digest.prepare_next(conn, settings, run.clock.now(), backfill=backfill)
            if rendered is not None:
                run.send(conn, rendered, digest.mark_complete)
    finally:
        conn.close()
    return run.report


def digest_test(
    settings: Settings,
    now: datetime,
    address: str,
    *,
    transport: mailer.Transport | None = None,
    backfill: int | None = None,
) -> str:
    """Send one copy of the next digest to `address` only, outside the ledger, recording nothing
    (its unsubscribe links carry a token that unsubscribes nobody). Returns the server's reply."""
    from publisher import digest
    from publisher.store import db
    from publisher.subscribers import normalise_address

    address = normalise_address(address)
    conn = db.connect(settings.db_path, readonly=True)
    try:
        rendered = digest.render_preview(conn, settings, now, backfill)
    finally:
        conn.close()
    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe%20test"
    links = (digest.unsubscribe_url(settings, "test"), mailto)
    return delivery.send_copy(rendered, settings, address, links, now, transport)
