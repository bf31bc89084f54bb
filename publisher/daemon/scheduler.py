"""The daemon's jobs on one APScheduler 3.x scheduler: builds, embargo timers and the digest.

- One worker thread, so jobs never run at the same time (a digest never races a build).
- Every job is a one-off `date` job with explicit options: `misfire_grace_time=None` (a late job
  still runs; whether a late digest is still worth sending is *our* decision, in `catchup`),
  `coalesce=True`, `max_instances=1`. The digest's cron expression is evaluated by `cron`, not by
  APScheduler, and each next slot is planned when the previous one is dealt with.
- APScheduler's clock is the system's; ours may be shifted (PUBLISHER_NOW). Timers are therefore
  set at "now + how long until the moment by our clock".
- A failing job logs what failed and why, and the daemon carries on; the same job failing
  `LOUD_AFTER` times in a row is logged at CRITICAL. The record in the state database
  (`record`) says what ran last and which digest slot was handled.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from publisher import cron, pipeline
from publisher.clock import Clock
from publisher.config import Settings
from publisher.daemon import catchup, record, summaries
from publisher.daemon.sidejobs import SideJobs
from publisher.daemon.watch import wait_until_quiet
from publisher.delivery.transports import Transport
from publisher.errors import ConfigError, PublisherError
from publisher.models import escape_name, grouped
from publisher.store import db, digests

log = logging.getLogger("publisher.daemon")

LOUD_AFTER = 3  # consecutive failures of one job before it is logged at CRITICAL
_TIMER_MARGIN = timedelta(milliseconds=5)  # fire just after the moment, never just before it
_T = TypeVar("_T")
_PREPARE_WAIT = 10.0  # seconds the start-up build waits for seeds/ to be quiet before deferring
_JOB_OPTIONS: dict[str, Any] = {"misfire_grace_time": None, "coalesce": True, "max_instances": 1}


def parse_schedule(settings: Settings) -> cron.Cron:
    try:
        return cron.parse(settings.digest.schedule)
    except ValueError as exc:
        raise ConfigError(f"digest.schedule: {exc}") from exc


class Daemon:
    """The scheduler and its jobs for one configuration. `start()`, then `stop()` from another thread."""

    def __init__(self, settings: Settings, clock: Clock, transport: Transport | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.transport = transport
        self.tz = settings.site.tz
        self.schedule = parse_schedule(settings)
        self.grace = timedelta(seconds=settings.digest.grace_period)
        self.scheduler = BackgroundScheduler(
            timezone=self.tz,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults=_JOB_OPTIONS,
        )
        self.stopping = threading.Event()
        self._job_lock = threading.Lock()  # held by the job at work; see stop()
        self._mu = threading.Lock()
        self._dirty = False
        self._queued = False
        self._ids = itertools.count(1)
        self._failures: dict[str, int] = {}
        self._problems: set[str] = set()
        self._digest_failures = 0
        self._sent_something = False
        self._catching_up = False  # the start job's second build, see _start_job
        self.side = SideJobs(settings, clock, self._at, self._cancel, self._outcome)

    # ----- life cycle (main thread) -----

    def prepare(self, *, reload: bool | None = False) -> None:
        """Record the start (or the reload; None: neither, the previous configuration resuming
        after a reload that failed) and build once, in the calling thread, before `start()`.

        Before any thread exists on purpose: the first build of a big corpus parses in forked
        worker processes, and forking is only safe while the process has a single thread.
        """
        try:
            with self._db() as conn:
                if reload:
                    record.reloaded(conn, self.clock.now())
                elif reload is not None:
                    record.started(conn, os.getpid(), self.clock.now())
        except PublisherError as exc:
            self._outcome("start", False, exc.one_line())
        # Signals wait while this runs, so don't wait long: the start job builds (settled) anyway.
        if wait_until_quiet(self.settings, self.stopping, limit=_PREPARE_WAIT):
            self._build_once()
        else:
            log.info("seeds/ is still changing; the first build waits for it in the background")

    def start(self) -> None:
        self.scheduler.start()
        self._at(None, self._start_job, "start")

    def stop(self, *, reload: bool = False) -> None:
        """Let the running job finish its current step, drop the rest, record the stop (unless
        another configuration takes over: a reload is not a stop)."""
        self.stopping.set()
        # Wait for the running job ourselves: APScheduler's shutdown(wait=True) holds its job-store
        # lock while it waits, and a job that plans its successor needs that lock (a deadlock).
        with self._job_lock:
            pass
        self.scheduler.shutdown(wait=False)  # jobs still queued see `stopping` and return at once
        if reload:
            return
        try:
            with self._db() as conn:
                record.stopped(conn, self.clock.now())
        except PublisherError as exc:
            log.error("could not record the stop: %s", exc.one_line())

    def request_build(self, reason: str) -> None:
        """Ask for a build soon; requests arriving while one is queued or running share one build."""
        with self._mu:
            self._dirty = True
            if self._queued or self.stopping.is_set():
                return
            self._queued = True
        log.debug("build requested: %s", reason)
        self._at(None, self._build_job, "build")

    def files_ready(self, paths: list[Path]) -> None:
        """Called by the watcher once changed files have settled."""
        shown = ", ".join(summaries.rel(self.settings, p) for p in paths[:5]) + (
            " …" if len(paths) > 5 else ""
        )
        log.info("changed: %s", shown, extra={"files": len(paths)})
        self.request_build(f"{len(paths)} changed")

    # ----- plumbing -----

    def _at(self, moment: datetime | None, func: Callable[..., None], kind: str, *args: Any) -> str:
        """Run `func` on the worker at `moment` by our clock (now when None); returns the job id."""
        job_id = f"{kind}-{next(self._ids)}"
        when = None
        if moment is not None:
            delay = moment - self.clock.now()
            when = datetime.now(UTC) + max(delay, timedelta(0)) + _TIMER_MARGIN
        self.scheduler.add_job(self._guarded, "date", run_date=when, args=(func, *args), id=job_id, name=kind)
        return job_id

    def _guarded(self, func: Callable[..., None], *args: Any) -> None:
        """Every job runs through here: one at a time, and not at all once stopping."""
        with self._job_lock:
            if not self.stopping.is_set():
                func(*args)

    def _cancel(self, job_id: str | None) -> None:
        if job_id is None:
            return
        with suppress(JobLookupError):  # it has run already
            self.scheduler.remove_job(job_id)

    @contextmanager
    def _db(self) -> Iterator[Any]:
        with db.guarded(self.settings.db_path):
            conn = db.connect(self.settings.db_path)
            try:
                yield conn
            finally:
                conn.close()

    def _outcome(self, job: str, ok: bool, detail: str) -> None:
        """Log a failure (louder when it persists) or a recovery, and record the job in the database."""
        failures = 0 if ok else self._failures.get(job, 0) + 1
        before = self._failures.get(job, 0)
        self._failures[job] = failures
        if not ok:
            if failures >= LOUD_AFTER:
                log.critical("%s has failed %d times in a row: %s", job, failures, detail)
            else:
                log.error("%s failed: %s", job, detail)
        elif before:
            log.warning("%s works again after %d failure%s", job, before, "s" if before != 1 else "")
        try:
            with self._db() as conn:
                record.worked(conn, job, self.clock.now(), ok, detail)
        except PublisherError as exc:
            log.error("could not record the %s job: %s", job, exc.one_line())

    # ----- jobs (worker thread) -----

    def _start_job(self) -> None:
        # Build again: files that changed during prepare()'s build came before the watcher started.
        # Usually there are none: that build's "nothing changed" is not worth a second log line.
        wait_until_quiet(self.settings, self.stopping)
        with self._mu:
            self._dirty = True
        self._catching_up = True
        try:
            self._build_job(queued=False)
        finally:
            self._catching_up = False
        if not self.stopping.is_set():
            self.side.start()
            self._digest_at_start()

    def _build_job(self, queued: bool = True) -> None:
        if queued:
            with self._mu:
                self._queued = False
        while not self.stopping.is_set():
            with self._mu:
                if not self._dirty:
                    return
                self._dirty = False
            self._build_once()

    def _build_once(self) -> None:
        now = self.clock.now()
        try:
            # Files another process started writing while the watcher waited are left alone until
            # they, too, have settled (the watcher reports them, and asks for the next build).
            report = pipeline.build(
                self.settings, now, settled_before=time.time() - self.settings.daemon.settle
            )
        except PublisherError as exc:
            self._outcome("build", False, exc.one_line())
            return
        except Exception as exc:
            log.debug("build failed", exc_info=True)
            self._outcome("build", False, f"{type(exc).__name__}: {exc}")
            return
        self._log_problems(grouped(report.problems))  # the same problem in many files: one line
        summary = summaries.build(report)
        level = logging.DEBUG if self._catching_up and report.skipped else logging.INFO
        log.log(
            level, "built: %s", summary, extra={"written": len(report.written), "rejected": report.rejected}
        )
        self._outcome("build", True, summary)
        self.side.after_build(report.written)
        self._plan_embargo(report.next_embargo)
        if report.unsettled:
            busy = ", ".join(escape_name(rel) for rel in report.unsettled[:5])
            log.debug("still changing, left for the next build: %s", busy)
            # A safety net besides the watcher: look again once they should have settled.
            self._at(
                self.clock.now() + timedelta(seconds=self.settings.daemon.settle),
                self._recheck_unsettled,
                "build",
            )

    def _recheck_unsettled(self) -> None:
        with self._mu:
            self._dirty = True
        self._build_job(queued=False)

    def _log_problems(self, problems: list[str]) -> None:
        # Every build reports every bad file; say each problem once, when it first appears.
        for line in problems:
            if line not in self._problems:
                log.warning("%s", line)
        self._problems = set(problems)

    _embargo_job: str | None = None

    def _plan_embargo(self, moment: datetime | None) -> None:
        self._cancel(self._embargo_job)
        self._embargo_job = None
        if moment is None:
            return
        self._embargo_job = self._at(moment, self._embargo_fires, "embargo", moment)
        log.info("next embargoed article goes live at %s", moment.astimezone(self.tz).isoformat())

    def _embargo_fires(self, moment: datetime) -> None:
        log.info("embargo ends: %s", moment.astimezone(self.tz).isoformat())
        with self._mu:
            self._dirty = True
        self._build_job(queued=False)

    # ----- the digest (worker thread) -----

    def _digest_read(self, query: Callable[[Any], _T]) -> tuple[bool, _T | None]:
        """Read the digest's state; a database failure is the digest job's failure, logged."""
        try:
            with self._db() as conn:
                return True, query(conn)
        except PublisherError as exc:
            self._outcome("digest", False, exc.one_line())
            return False, None

    def _digest_at_start(self) -> None:
        now = self.clock.now()
        read, kept = self._digest_read(lambda conn: (record.last_slot(conn), record.schedule(conn)))
        if not read or kept is None:
            self._plan_digest(catchup.plan_after(self.schedule, self.tz, None, now))
            return
        last, kept_under = kept
        # Kept under another schedule (a SIGHUP, or an edit while stopped): a new start, not a catch-up.
        signature = f"{self.schedule.expression!r} in {self.settings.site.timezone}"
        change = f"{kept_under} → {signature}" if kept_under not in (None, signature) else ""
        decision = catchup.decide_at_start(self.schedule, self.tz, now, last, self.grace, change)
        log.info("%s", decision.describe(self.tz))
        try:
            with self._db() as conn:
                record.keep_schedule(conn, signature)
        except PublisherError as exc:
            log.error("could not record the digest schedule: %s", exc.one_line())
        if decision.action == "send" and decision.slot is not None:
            self._send(decision.slot)
            return
        if decision.action != "none" and decision.slot is not None:
            self._handle(decision.slot, "skipped" if decision.action == "skip" else "baseline")
        self._resume_interrupted()
        self._plan_digest(decision.next_slot)

    def _resume_interrupted(self) -> None:
        """A digest interrupted by a crash or a stop is finished now, even when no slot is owed."""
        read, pending = self._digest_read(digests.unfinished)
        if read and pending:
            log.info("finishing the interrupted digest %s", pending[0])
            self._deliver(resume_only=True)

    _digest_job: str | None = None

    def _plan_digest(self, slot: datetime | None) -> None:
        self._cancel(self._digest_job)
        self._digest_job = None
        try:
            with self._db() as conn:
                record.plan(conn, slot)
        except PublisherError as exc:
            log.error("could not record the next digest time: %s", exc.one_line())
        if slot is None:
            log.warning("the digest schedule %r fires no more", self.schedule.expression)
            return
        self._digest_job = self._at(slot, self._digest_fires, "digest", slot)
        log.debug("next digest at %s", slot.astimezone(self.tz).isoformat())

    def _digest_fires(self, slot: datetime) -> None:
        now = self.clock.now()
        read, last = self._digest_read(record.last_slot)
        if not read:
            self._retry(slot)
            return
        action = catchup.decide_at_fire(slot, now, last, self.grace)
        shown = slot.astimezone(self.tz).isoformat(timespec="minutes")
        if action == "done":
            log.info("digest due at %s was already handled", shown)
        elif action == "skip":
            log.warning("digest due at %s is more than the grace period late; skipped", shown)
            self._handle(slot, "skipped")
        else:
            self._send(slot)
            return
        self._plan_digest(catchup.plan_after(self.schedule, self.tz, slot, now))

    def _send(self, slot: datetime) -> None:
        outcome = self._deliver()
        handled_as = "sent" if self._sent_something else "nothing new to send"
        if outcome == "stopped":
            return  # interrupted between two messages: the slot stays open; the next start finishes it
        if outcome == "done":
            self._digest_failures = 0
            self._handle(slot, handled_as)
            if not self.stopping.is_set():
                self._plan_digest(catchup.plan_after(self.schedule, self.tz, slot, self.clock.now()))
        elif not self.stopping.is_set():
            self._retry(slot)

    def _deliver(self, *, resume_only: bool = False) -> Literal["done", "failed", "stopped"]:
        """Run digest_send: done when every digest it touched is finished."""
        self._sent_something = False
        now = self.clock.now()
        try:
            report = pipeline.digest_send(
                self.settings,
                now,
                transport=self.transport,
                should_stop=self.stopping.is_set,
                resume_only=resume_only,
            )
        except PublisherError as exc:
            self._outcome("digest", False, exc.one_line())
            return "failed"
        except Exception as exc:
            log.debug("digest failed", exc_info=True)
            self._outcome("digest", False, f"{type(exc).__name__}: {exc}")
            return "failed"
        outbox = self.transport is None and self.settings.delivery.transport == "outbox"
        summary = summaries.send(report, self.settings.outbox_shown if outbox else None)
        self._sent_something = bool(report.digests)
        for line in summaries.not_delivered(self.settings, report):
            log.warning("digest: not delivered: %s", line)
        if report.stopped:
            log.info("digest stopped: %s; the rest goes out at the next start", summary)
            return "stopped"
        if report.pending:
            # Messages deferred after temporary failures: the digest is unfinished; retry it.
            self._outcome("digest", False, f"{summary}; unfinished")
            return "failed"
        log.info("digest: %s", summary, extra={"sent": report.sent, "failed": report.failed})
        self._outcome("digest", True, summary)
        return "done"

    def _retry(self, slot: datetime) -> None:
        self._digest_failures += 1
        now = self.clock.now()
        again = catchup.retry_at(slot, now, self._digest_failures, self.grace)
        shown = slot.astimezone(self.tz).isoformat(timespec="minutes")
        if again is None:
            log.critical("digest due at %s given up after %d attempts", shown, self._digest_failures)
            self._digest_failures = 0
            self._handle(slot, "failed")
            self._plan_digest(catchup.plan_after(self.schedule, self.tz, slot, now))
            return
        log.warning("digest due at %s: trying again at %s", shown, again.astimezone(self.tz).isoformat())
        self._cancel(self._digest_job)
        self._digest_job = self._at(again, self._digest_fires, "digest", slot)

    def _handle(self, slot: datetime, outcome: str) -> None:
        try:
            with self._db() as conn:
                record.handle_slot(conn, slot, outcome, self.clock.now())
        except PublisherError as exc:
            log.error("could not record the digest slot: %s", exc.one_line())
