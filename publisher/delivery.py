"""Sending one digest to its recipients over the ledger: exactly once each, through any crash.

`deliver()` runs a dispatcher (this thread, the only one touching SQLite) and `workers` sender
threads, each owning one reusable transport connection. For every message the dispatcher first
commits the row as `sending` (the intent), hands it to an idle worker, and commits the outcome when
the worker reports it; at most `workers` rows are ever `sending`, and those are the only messages a
SIGKILL can make go out twice (the next run puts them back to pending and sends them again).

Outcomes: accepted → sent (a run of bounces is reset). 5xx to the recipient → failed, and counted
toward the subscriber's bounce threshold. 5xx to the message → failed. 4xx, a dropped connection
or a timeout → pending again after an exponential backoff (`retry_backoff * 2**(attempts-1)`),
failed once `max_attempts` answers were all temporary. A server that cannot be reached at all does
not burn attempts: the row goes back to pending, and after `max_attempts` such failures in a row
the run stops with a DeliveryError, leaving the rest pending for the next run. The same happens
when the server refuses the session itself (login, sender). `should_stop()` is polled between
messages: dispatch stops, in-flight messages finish, and the ledger stays consistent.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from publisher import mailer
from publisher.clock import Clock
from publisher.config import DeliverySettings, Settings
from publisher.errors import DeliveryError
from publisher.message import MessageTemplate, Recipient
from publisher.store import ledger, subscribers
from publisher.store.db import transaction

log = logging.getLogger("publisher.delivery")

# How long the dispatcher sleeps at most before looking at should_stop() again.
_POLL = 0.2


@dataclass
class Progress:
    """Where one digest's sending stands; handed to the progress callback after each answer."""

    digest_id: str
    total: int
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    deferred: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped


@dataclass
class Result:
    """What one `deliver()` call did, and what the ledger holds for the digest at its end."""

    digest_id: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    retries: int = 0
    pending: int = 0  # left for a later run (stopped, or the server was unreachable)
    stopped: bool = False

    @property
    def complete(self) -> bool:
        return self.pending == 0


LinkMaker = Callable[[subscribers.Subscriber], tuple[str, str]]
TransportFactory = Callable[[], mailer.Transport]


@dataclass
class SendReport:
    """What `pipeline.digest_send` did over every digest it touched (the CLI's summary line)."""

    digests: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    pending: int = 0  # left for the next run (stopped before the end)
    stopped: bool = False
    seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.digests.append(result.digest_id)
        self.sent += result.sent
        self.failed += result.failed
        self.skipped += result.skipped
        self.bounced += result.bounced
        self.pending += result.pending
        self.stopped = self.stopped or result.stopped


class Digest(Protocol):
    """What delivery needs of a rendered digest (publisher.digest.RenderedDigest has it)."""

    @property
    def digest_id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def placeholders(self) -> Mapping[str, str]: ...


def template_for(rendered: Digest, settings: Settings, date: datetime) -> MessageTemplate:
    """Encode a digest's shared parts once, with the sender and list settings."""
    return MessageTemplate(
        digest_id=rendered.digest_id,
        subject=rendered.subject,
        text=rendered.text,
        html_body=rendered.html,
        from_name=settings.digest.from_name,
        from_address=settings.digest.from_address,
        reply_to=settings.digest.reply_to,
        host=settings.site.host,
        list_name=settings.site.title,
        date=date,
        placeholders=rendered.placeholders,
    )


class _Borrowed:
    """A transport lent by the caller: used, never closed here."""

    def __init__(self, transport: mailer.Transport) -> None:
        self.transport = transport

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        return self.transport.send(sender, recipients, message)

    def close(self) -> None:
        pass


def transports_for(settings: Settings, transport: mailer.Transport | None) -> tuple[TransportFactory, int]:
    """(factory, workers): the caller's transport on one worker, else one SMTP connection per
    `delivery.concurrency` worker, or one outbox writer (local files gain nothing from threads)."""
    if transport is not None:
        lent = _Borrowed(transport)
        return (lambda: lent), 1
    workers = settings.delivery.concurrency if settings.delivery.transport == "smtp" else 1
    return (lambda: mailer.open_transport(settings)), workers


def send_digest(
    conn: sqlite3.Connection,
    rendered: Digest,
    settings: Settings,
    *,
    links: LinkMaker,
    transports: TransportFactory,
    workers: int,
    clock: Clock,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Enqueue the digest for every active subscriber (once: a resumed digest keeps its rows),
    then deliver whatever is still pending."""
    if not ledger.enqueued(conn, rendered.digest_id):
        recipients = [s.id for s in subscribers.active(conn)]
        ledger.enqueue(conn, rendered.digest_id, recipients, clock.now())
        log.info("digest %s: %d recipients", rendered.digest_id, len(recipients))
    return deliver(
        conn,
        rendered.digest_id,
        template_for(rendered, settings, clock.now()),
        links=links,
        transports=transports,
        workers=workers,
        sender=settings.digest.from_address,
        settings=settings.delivery,
        clock=clock,
        progress=progress,
        should_stop=should_stop,
    )


@dataclass(frozen=True)
class _Job:
    row: ledger.Claimed


@dataclass(frozen=True)
class _Answer:
    row: ledger.Claimed
    reply: str = ""
    error: Exception | None = None


class _Worker(threading.Thread):
    """Renders and sends the messages it is handed over one connection, reporting each answer."""

    def __init__(
        self,
        factory: TransportFactory,
        template: MessageTemplate,
        links: LinkMaker,
        sender: str,
        jobs: queue.SimpleQueue[_Job | None],
        answers: queue.SimpleQueue[_Answer],
    ) -> None:
        super().__init__(daemon=True, name="publisher-sender")
        self.factory = factory
        self.template = template
        self.links = links
        self.sender = sender
        self.jobs = jobs
        self.answers = answers

    def run(self) -> None:
        transport: mailer.Transport | None = None
        try:
            while (job := self.jobs.get()) is not None:
                row = job.row
                try:
                    if transport is None:
                        transport = self.factory()
                    subscriber = subscribers.Subscriber(
                        id=row.subscriber_id,
                        email=row.email,
                        name=row.name,
                        token_secret=row.token_secret,
                        status="active",
                        bounces=row.bounces,
                    )
                    https, mailto = self.links(subscriber)
                    data = self.template.render(Recipient(row.email, row.name, https, mailto))
                    reply = transport.send(self.sender, (row.email,), data)
                    self.answers.put(_Answer(row, reply=reply))
                except Exception as exc:  # every failure is reported; a bug must not hang the run
                    self.answers.put(_Answer(row, error=exc))
        finally:
            if transport is not None:
                transport.close()


def deliver(
    conn: sqlite3.Connection,
    digest_id: str,
    template: MessageTemplate,
    *,
    links: LinkMaker,
    transports: TransportFactory,
    workers: int,
    sender: str,
    settings: DeliverySettings,
    clock: Clock,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Result:
    """Send every due pending row of `digest_id` (enqueued beforehand) and record each outcome."""
    recovered = ledger.recover(conn, digest_id, clock.now())
    if recovered:
        log.warning(
            "resuming digest %s: %d message(s) were in flight when the last run stopped; "
            "sending them again (they may arrive twice)",
            digest_id,
            recovered,
            extra={"digest": digest_id},
        )
    counts = ledger.counts(conn, digest_id)
    state = Progress(digest_id, total=sum(counts.values()), sent=counts["sent"], failed=counts["failed"])
    state.skipped = counts["skipped"]
    result = Result(digest_id)
    jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
    answers: queue.SimpleQueue[_Answer] = queue.SimpleQueue()
    pool = [_Worker(transports, template, links, sender, jobs, answers) for _ in range(max(1, workers))]
    for worker in pool:
        worker.start()
    in_flight = 0
    unreachable = 0  # connection failures in a row
    abort: DeliveryError | None = None
    due: datetime | None = clock.now()  # earliest moment a claim can find a row; None: none left
    paused_until = clock.now()  # after a connection failure nothing is dispatched before this
    interval = 1.0 / settings.rate_limit if settings.rate_limit > 0 else 0.0
    next_slot = time.monotonic()
    stop = should_stop or (lambda: False)
    try:
        while True:
            stopping = stop() or abort is not None
            ready = None if due is None else max(due, paused_until)
            wait = _POLL if ready is None else (ready - clock.now()).total_seconds()
            if interval:
                wait = max(wait, next_slot - time.monotonic())
            can_claim = not stopping and ready is not None and wait <= 0
            batch: list[_Answer] = []
            if in_flight:
                if not can_claim or in_flight == len(pool):
                    # Every connection busy: wait for one; else wait until a row becomes due.
                    timeout = _POLL if can_claim or stopping else min(max(wait, 0.001), _POLL)
                    try:
                        batch.append(answers.get(timeout=timeout))
                    except queue.Empty:
                        continue
                while True:
                    try:
                        batch.append(answers.get_nowait())
                    except queue.Empty:
                        break
            elif not can_claim:
                if stopping or ready is None:
                    break
                time.sleep(min(wait, _POLL))
                continue
            in_flight -= len(batch)
            free = len(pool) - in_flight
            if interval:
                free = min(free, 1)
            rows: list[ledger.Claimed] = []
            now = clock.now()
            # One commit holds the outcomes just reported and the intent for the next messages.
            with transaction(conn):
                for answer in batch:
                    before = unreachable
                    retry_at, unreachable, fatal = _record(
                        conn, digest_id, answer, settings, clock, state, unreachable
                    )
                    if fatal is not None and abort is None:
                        abort = fatal
                    if unreachable > before and retry_at is not None:
                        paused_until = max(paused_until, retry_at)
                    if retry_at is not None:
                        result.retries += 1
                        due = retry_at if due is None else min(due, retry_at)
                if can_claim and abort is None and free > 0 and now >= paused_until:
                    rows, skipped = ledger.claim(conn, digest_id, free, now)
                    state.skipped += skipped
                    result.skipped += skipped
                    if len(rows) < free:
                        due = ledger.next_retry(conn, digest_id)
                        if due is not None and due <= now and not rows and not skipped:
                            due = now + timedelta(seconds=_POLL)  # not due yet after all
                    if rows and interval:
                        next_slot = max(next_slot + interval, time.monotonic() - interval)
            # Handed over only once the intent is committed.
            for row in rows:
                jobs.put(_Job(row))
            in_flight += len(rows)
            if progress is not None and (batch or rows):
                progress(state)
    finally:
        for _ in pool:
            jobs.put(None)
        for worker in pool:
            worker.join(timeout=1.0)
    final = ledger.counts(conn, digest_id)
    result.sent = state.sent - counts["sent"]
    result.failed = state.failed - counts["failed"]
    result.bounced = state.bounced
    result.pending = final["pending"] + final["sending"]
    result.stopped = result.pending > 0 and abort is None
    if abort is not None:
        raise DeliveryError(
            f"digest {digest_id}: stopped sending: {abort}; {result.pending} message(s) left pending "
            f"({result.sent} sent in this run)",
            hint="fix the mail server or settings, then run `publisher digest --send` again",
        ) from abort
    return result


def _record(
    conn: sqlite3.Connection,
    digest_id: str,
    answer: _Answer,
    settings: DeliverySettings,
    clock: Clock,
    state: Progress,
    unreachable: int,
) -> tuple[datetime | None, int, DeliveryError | None]:
    """Commit one answer into the ledger (inside the caller's transaction).

    Returns (retry time if deferred, connection failures in a row, the error that must stop the run).
    """
    row, error, now = answer.row, answer.error, clock.now()
    sid = row.subscriber_id
    if error is None:
        ledger.finish(conn, digest_id, sid, "sent", answer.reply, now)
        if row.bounces:
            subscribers.reset_failures(conn, sid, now)
        state.sent += 1
        return None, 0, None
    if isinstance(error, mailer.PermanentFailure) and error.scope == "session":
        ledger.defer(conn, digest_id, sid, str(error), now, now, counted=False)
        return None, unreachable, error
    if isinstance(error, mailer.ConnectionFailure):
        unreachable += 1
        retry_at = now + timedelta(seconds=settings.retry_backoff * 2 ** (unreachable - 1))
        ledger.defer(conn, digest_id, sid, error.reply, now, retry_at, counted=False)
        if unreachable >= settings.max_attempts:
            return retry_at, unreachable, error
        return retry_at, unreachable, None
    if isinstance(error, mailer.PermanentFailure):
        ledger.finish(conn, digest_id, sid, "failed", f"{error.code} {error.reply}", now)
        state.failed += 1
        if error.recipient and subscribers.record_permanent_failure(conn, sid, now, settings.bounce_after):
            state.bounced += 1
            log.warning("%s bounced after %d permanent failures", row.email, settings.bounce_after)
        return None, 0, None
    if isinstance(error, mailer.TemporaryFailure):
        reply = f"{error.code} {error.reply}" if error.code else error.reply
        if row.attempts + 1 >= settings.max_attempts:
            reply = f"gave up after {row.attempts + 1} attempts: {reply}"
            ledger.finish(conn, digest_id, sid, "failed", reply, now)
            state.failed += 1
            return None, 0, None
        retry_at = now + timedelta(seconds=settings.retry_backoff * 2**row.attempts)
        ledger.defer(conn, digest_id, sid, reply, now, retry_at)
        state.deferred += 1
        return retry_at, 0, None
    if isinstance(error, DeliveryError):  # InvalidRecipient and the like: never retried
        ledger.finish(conn, digest_id, sid, "failed", str(error), now, counted=False)
        state.failed += 1
        return None, unreachable, None
    # A bug in rendering or in a transport: keep the row, stop the run, say what happened.
    log.error("sending to %s failed unexpectedly", row.email, exc_info=error)
    ledger.defer(conn, digest_id, sid, f"internal error: {error!r}", now, now, counted=False)
    return None, unreachable, DeliveryError(f"internal error while sending: {error!r}")
