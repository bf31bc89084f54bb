"""The pipeline: the one place that sequences the stages (ingest → store → feeds/pages → digest →
delivery). The CLI and the daemon call these functions and never re-implement the sequence.

Everything below receives `now` (and, for delivery, the transport) from the caller.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from publisher import ingest
from publisher.config import Settings
from publisher.models import Article, Problem

if TYPE_CHECKING:  # imported when a digest is sent: a build should not pay for them at start
    from publisher import inbound, websub
    from publisher.delivery import engine as delivery
    from publisher.delivery import transports
    from publisher.delivery.report import DigestReport

log = logging.getLogger("publisher.pipeline")

P = ParamSpec("P")
R = TypeVar("R")


def _sqlite_errors_named(
    func: Callable[Concatenate[Settings, P], R],
) -> Callable[Concatenate[Settings, P], R]:
    """Any SQLite error below a pipeline step becomes one StateError naming the database file
    and the cause (a full disk, a damaged file), for the CLI and the daemon alike."""

    @functools.wraps(func)
    def wrapper(settings: Settings, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(settings, *args, **kwargs)
        except sqlite3.Error as exc:
            from publisher.store import db

            raise db.describe(settings.db_path, exc) from exc

    return wrapper


class _ProblemCounts:
    """The counts of a report's summary line, from its `problems`."""

    problems: list[Problem]

    @property
    def rejected(self) -> int:
        """Files with at least one error (rejected, not published)."""
        return len({p.path for p in self.problems if p.severity == "error"})

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")


@dataclass
class CheckReport(_ProblemCounts):
    """What `publisher check` found: every problem, and counts for the summary line."""

    files: int = 0
    valid: int = 0
    drafts: int = 0
    scheduled: int = 0
    problems: list[Problem] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)


@_sqlite_errors_named
def check(settings: Settings, now: datetime) -> CheckReport:
    """Validate every file in seeds/ without writing anything anywhere."""
    require_seeds(settings)
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


@_sqlite_errors_named
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
    paths = [folder / digest.PREVIEW_HTML, folder / "next-digest.txt"]
    write_atomic(paths[0], html.encode("utf-8"))
    write_atomic(paths[1], text.encode("utf-8"))
    return paths


@_sqlite_errors_named
def digest_never_sent(settings: Settings) -> bool:
    """True before the first digest (when `--backfill N` decides what the first one holds)."""
    from publisher.store import db, digests

    if not settings.db_path.exists():
        return True
    conn = db.connect(settings.db_path, readonly=True)
    try:
        return digests.last_cutoff(conn) is None
    finally:
        conn.close()


@dataclass
class BuildReport(_ProblemCounts):
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
    unsettled: list[str] = field(default_factory=list)  # changed too recently: left for the next build
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)


def require_seeds(settings: Settings) -> None:
    """A missing or unreadable seeds folder is an error, never "no articles": a typo in
    paths.seeds or an unmounted share must not unpublish the site."""
    from publisher.errors import SourceError

    folder = settings.seeds_dir
    hint = "check paths.seeds in the configuration, or mount the share it names"
    if not folder.exists():
        raise SourceError(f"{folder}: the seeds folder does not exist", hint=hint)
    if not folder.is_dir():
        raise SourceError(f"{folder}: the seeds folder is not a folder", hint=hint)
    try:
        with os.scandir(folder) as entries:
            next(entries, None)
    except OSError as exc:
        raise SourceError(f"{folder}: the seeds folder cannot be read: {exc.strerror or exc}") from exc


# A build that would take more than this share of the published articles offline at once refuses
# unless told otherwise (`--allow-mass-removal`): it is far more often a mistake than an intent.
MASS_REMOVAL_SHARE = 0.5


def _refuse_mass_removal(
    conn: sqlite3.Connection, settings: Settings, files: list[ingest.SeedFile], now: datetime
) -> None:
    from publisher.errors import SourceError
    from publisher.store import visible

    published = visible.published_sources(conn, now)
    present = {seed.rel for seed in files}
    gone = [path for path in published if path not in present]
    if published and len(gone) > MASS_REMOVAL_SHARE * len(published):
        raise SourceError(
            f"{settings.seeds_dir}: {len(gone)} of the {len(published)} published articles' files are "
            "gone; refusing to unpublish more than half of the site at once, nothing was changed",
            hint="if that is what you want, run `publisher build --allow-mass-removal`",
        )


@_sqlite_errors_named
def build(
    settings: Settings,
    now: datetime,
    *,
    full: bool = False,
    settled_before: float | None = None,
    allow_mass_removal: bool = False,
) -> BuildReport:
    """seeds/ → feeds/: parse what changed, keep identities, write every output that differs.

    Incremental (see publisher/build/publish.py): unchanged files come from the parse cache, only pages
    whose article changed are rendered, and when no file changed, no embargo passed and the last
    build completed, nothing is rendered at all. `full` re-renders every output (still writing only
    files whose bytes differ) and deletes stray pages. A build is recorded as complete only after
    its files are in place, so the next build finishes the work of a killed one.

    `settled_before` (a file-system timestamp, seconds): files changed after it are left for a later
    build (`BuildReport.unsettled`), so a file still being copied is never published half-written.
    The daemon passes its wall-clock time less `daemon.settle`; the CLI reads every file.

    Fails closed: a missing or unreadable seeds folder, or files gone for more than half of the
    published articles (unless `allow_mass_removal`), raise SourceError with nothing changed.
    """
    from publisher import digest, output
    from publisher.build import publish
    from publisher.store import db

    started = time.perf_counter()
    report = BuildReport()
    require_seeds(settings)
    files, scan_problems = ingest.scan(settings)
    report.files = len(files)
    phases = {"scan": time.perf_counter() - started}
    conn = db.connect(settings.db_path)
    try:
        state = publish.load_state(conn, settings)  # before the cache marks this build as started
        if not allow_mass_removal:
            _refuse_mass_removal(conn, settings, files, now)
        settled_ns = None if settled_before is None else int(settled_before * 1e9)
        refresh = publish.refresh_cache(conn, settings, files, settled_before_ns=settled_ns, reparse=full)
        report.unsettled = refresh.unsettled
        report.parsed = refresh.parsed
        phases["cache"] = time.perf_counter() - started - sum(phases.values())
        if not full and not refresh.changed and state.up_to_date(settings, now):
            report.skipped = True
            report.published, report.next_embargo = state.published, state.embargo
        else:
            publish.mark_started(conn)
            if not state.complete:
                output.remove_stale_temps(settings.feeds_dir)
            counts = publish.identify(conn, settings, now, refresh, full=full or not state.complete)
            phases["identity"] = time.perf_counter() - started - sum(phases.values())
            report.new, report.changed, report.renamed, report.removed = (
                counts.new,
                counts.changed,
                counts.renamed,
                counts.removed,
            )
            new_look = not state.same_look
            everything = full or new_look or not publish.site_files_in_place(settings)
            written = publish.write_outputs(
                conn, settings, now, full=everything, new_look=new_look, candidates=counts.ids
            )
            report.written, report.unchanged = written.paths, written.unchanged
            report.published, report.next_embargo = written.published, written.next_embargo
            if everything or not (settings.feeds_dir / "digests" / "index.html").is_file():
                # index.html links the digests' archive, so it is there from the first build on.
                for path, changed in digest.write_archive(conn, settings):
                    if changed:
                        report.written.append(path.relative_to(settings.feeds_dir).as_posix())
                    else:
                        report.unchanged += 1
            publish.mark_complete(conn, state, now)
            phases["outputs"] = time.perf_counter() - started - sum(phases.values())
        problems = publish.problems(conn, scan_problems)
        report.problems = sorted(problems, key=lambda p: (p.path, p.severity != "error"))
    finally:
        conn.close()
    report.seconds = time.perf_counter() - started
    log.debug(  # the CLI and the daemon each print their own summary line
        "build: %s; %d parsed, %d written",
        ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()),
        report.parsed,
        len(report.written),
    )
    return report


@_sqlite_errors_named
def websub_ping(
    settings: Settings, now: datetime, written: list[str], post: websub.Poster | None = None
) -> websub.PingReport | None:
    """After a build: tell the WebSub hubs about each feed among `written` (paths relative to
    feeds/) and retry the pings that failed before and are due. None without `websub.hubs`.
    Never raises for a hub's failure (the report says it); `post` replaces the HTTP client."""
    if not settings.websub.hubs:
        return None
    from publisher import websub
    from publisher.store import db

    conn = db.connect(settings.db_path)
    try:
        return websub.notify(conn, settings, now, written, post or websub.post_form)
    finally:
        conn.close()


@_sqlite_errors_named
def inbound_pass(settings: Settings, now: datetime) -> list[inbound.Report]:
    """One pass over each configured mailbox (`inbound.maildir`, then IMAP): unsubscribe requests,
    bounces and complaints acted on (see publisher.inbound). A mailbox that cannot be read raises
    MailboxError before anything of it is changed."""
    from publisher import inbound
    from publisher.store import db

    mailboxes = inbound.mailboxes(settings)  # checked (a Maildir that is none is an error) first
    reports = []
    conn = db.connect(settings.db_path)
    try:
        for mailbox in mailboxes:
            try:
                reports.append(inbound.handle(conn, settings, now, mailbox))
            finally:
                mailbox.close()
    finally:
        conn.close()
    return reports


@_sqlite_errors_named
def digest_send(
    settings: Settings,
    now: datetime,
    *,
    transport: transports.Transport | None = None,
    backfill: int | None = None,
    progress: Callable[[delivery.Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume_only: bool = False,
) -> delivery.SendReport:
    """Finish every interrupted digest, then prepare and send the next one if there are new
    articles, each message through the send ledger (publisher.delivery.engine). `should_stop()` is polled
    between messages; the rest stays pending for the next call. `transport`: one caller-owned
    connection instead of `settings.delivery`'s. `resume_only`: start no new digest (the daemon at
    start, between two slots)."""
    from publisher import digest
    from publisher.delivery import engine as delivery
    from publisher.store import db, keys

    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe%20"
    conn = db.connect(settings.db_path)
    try:
        secret = keys.require(settings, conn)  # refuses a lost secret.key rather than make another
        links = delivery.token_links(secret, digest.unsubscribe_url(settings, ""), mailto)
        run = delivery.Session(settings, now, links, transport, progress, should_stop)
        for digest_id in digest.unfinished(conn):
            if not run.send(conn, digest.load(conn, digest_id), digest.mark_complete):
                return run.report
        if not resume_only:
            rendered = digest.prepare_next(conn, settings, run.clock.now(), backfill=backfill)
            if rendered is not None:
                run.send(conn, rendered, digest.mark_complete)
    finally:
        conn.close()
    _housekeeping(settings, run.clock.now())
    return run.report


def _housekeeping(settings: Settings, now: datetime) -> None:
    """Prune old outbox messages and previews; a failure is logged, never the send's failure."""
    from publisher import housekeeping
    from publisher.errors import PublisherError

    try:
        housekeeping.prune(settings, now)
    except PublisherError as exc:
        log.warning("housekeeping: %s", exc.one_line())


@_sqlite_errors_named
def digest_report(settings: Settings, digest_id: str | None = None) -> DigestReport:
    """Who got one digest and who did not, with the server's answers (the latest digest when
    `digest_id` is None). Reads only."""
    from publisher.delivery import report
    from publisher.errors import DeliveryError
    from publisher.store import db

    conn = db.connect(settings.db_path, readonly=True)
    try:
        chosen = digest_id or report.latest_id(conn)
        if chosen is None:
            raise DeliveryError("no digest has been sent yet")
        found = report.build(conn, chosen)
    finally:
        conn.close()
    if found is None:
        raise DeliveryError(
            f"digest {chosen}: never sent", hint="`publisher digest --report` without an id shows the latest"
        )
    return found


@_sqlite_errors_named
def digest_test(
    settings: Settings,
    now: datetime,
    address: str,
    *,
    transport: transports.Transport | None = None,
    backfill: int | None = None,
) -> tuple[str, str]:
    """Send one test copy to `address` only, outside the ledger, recording nothing (its
    unsubscribe links carry a token that unsubscribes nobody): the next digest when there are new
    articles, else the most recent digest, else a sample of the latest articles; its subject says
    [Test] and its "view in your browser" link works. Returns (what was sent, the server's reply)."""
    from publisher import digest
    from publisher.addresses import normalise_address
    from publisher.delivery import engine as delivery
    from publisher.store import db

    address = normalise_address(address)
    digest.check_sendable(settings)
    conn = db.connect(settings.db_path, readonly=True)
    try:
        proof = digest.render_proof(conn, settings, now, backfill)
    finally:
        conn.close()
    # The web version first: a test whose link would be dead is not sent.
    digest.write_proof_page(settings, proof)
    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe%20test"
    links = (digest.unsubscribe_url(settings, "test"), mailto)
    n = len(proof.digest.article_ids)
    what = {
        "next": f"the next digest ({n} article{'s' if n != 1 else ''})",
        "latest": f"the latest digest, {proof.digest.digest_id}",
        "sample": f"a sample of the {n} latest article{'s' if n != 1 else ''}",
    }[proof.kind]
    return what, delivery.send_copy(proof.digest, settings, address, links, now, transport)
