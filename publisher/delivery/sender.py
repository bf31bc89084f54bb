"""The sending engine behind publisher.delivery.engine: worker threads over the send ledger.

Each worker owns one transport (for SMTP: one connection, reused) and loops: one commit records
the outcome of its previous message and claims (marks `sending`) its next row, then it finishes
that message (publisher.delivery.message.finalise) and sends it outside any lock. So the intent is
always committed before a message leaves and its outcome right after the answer, and at most one
row per worker is ever `sending`: the duplicate window after a crash is `delivery.concurrency`
messages. The short transactions run under one lock on one SQLite connection shared by the
workers: SQLite never sees two writers, and the connection's page cache stays valid from one
commit to the next.

Outcomes: accepted → sent (a run of bounces is reset). 5xx to the recipient → failed, counted
toward the subscriber's bounce threshold. 5xx to the message → failed. 4xx, a dropped connection
or a timeout → pending again after `retry_backoff * 2**(attempts-1)` seconds, failed once
`max_attempts` answers were all temporary.

A server that cannot be reached, greeted or secured is the connection's failure, never the
message's: the row goes back to pending, due at once with no attempt counted (so the next run
starts at once), and every worker pauses for `retry_backoff`, doubling at each
round in which the server stays unreachable; failures of connections that were already under way
when a pause began belong to that round. After `max_attempts` such rounds the run stops with a
DeliveryError, leaving the rest pending. A server that refuses the session itself (login, sender,
an untrusted certificate) stops the run at once. Every wait longer than `_ANNOUNCE` seconds is
logged with its reason and its end. `should_stop()` is polled before each claim and by the calling
thread; the workers then finish the message in hand and claim no more.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from publisher.clock import Clock
from publisher.config import DeliverySettings
from publisher.delivery.message import MessageTemplate, Recipient, finalise
from publisher.delivery.results import Progress, Result
from publisher.delivery.transports import ConnectionFailure, PermanentFailure, TemporaryFailure, Transport
from publisher.errors import DeliveryError, StateError
from publisher.store import ledger, subscribers
from publisher.store.db import joined

log = logging.getLogger("publisher.delivery")

_POLL = 0.1  # longest sleep before looking again at should_stop() or a row becoming due
_ANNOUNCE = 2.0  # a wait longer than this is logged, with its reason and end

LinkMaker = Callable[[subscribers.Subscriber], tuple[str, str]]
TransportFactory = Callable[[], Transport]


@dataclass
class Answer:
    """How one message went: the server's reply, or what went wrong."""

    row: ledger.Claimed
    started: datetime  # when the attempt began (a connection failure's round is told by it)
    reply: str = ""
    error: Exception | None = None


class _Run:
    """What the workers share; every field is read and written under `lock`."""

    def __init__(
        self,
        digest_id: str,
        template: MessageTemplate,
        settings: DeliverySettings,
        clock: Clock,
        state: Progress,
        progress: Callable[[Progress], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.lock = threading.Lock()
        self.digest_id = digest_id
        self.template = template
        self.settings = settings
        self.clock = clock
        self.state = state
        self.progress = progress
        self.should_stop = should_stop
        self.retries = 0
        self.unreachable = 0  # rounds in a row in which the server could not be reached
        self.abort: DeliveryError | None = None
        self.stopping = False
        self.paused_until = clock.now()
        self.announced: datetime | None = None  # the end of the last retry wait logged
        self.interval = 1.0 / settings.rate_limit if settings.rate_limit > 0 else 0.0
        self.next_slot = time.monotonic()


def _shared_connection(database: Path) -> sqlite3.Connection:
    """The workers' connection to the (already migrated) state database, with the settings of
    publisher.store.db.connect, usable from any thread: the workers only touch it under the
    run's lock. Rows come back as plain tuples."""
    try:
        conn = sqlite3.connect(database, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{database}: not a usable publisher database: {exc}") from exc
    return conn


class _Worker(threading.Thread):
    """One transport's share of a run, in its own thread: records the answer to its last message
    and claims its next row in one commit (`step`), then sends that row's message (`_send`)."""

    def __init__(
        self, run: _Run, conn: sqlite3.Connection, transports: TransportFactory, links: LinkMaker, sender: str
    ) -> None:
        super().__init__(daemon=True, name="publisher-sender")
        self.run_state = run
        self.conn = conn
        self.transports = transports
        self.links = links
        self.sender = sender
        self.transport: Transport | None = None

    def run(self) -> None:
        try:
            answer: Answer | None = None
            while True:
                row, wait = self.step(answer)
                answer = None
                if row is not None:
                    answer = self._send(row)
                elif wait is None:
                    return
                else:
                    time.sleep(wait)
        except Exception as exc:
            self.failed(exc)
        finally:
            if self.transport is not None:
                self.transport.close()

    def _send(self, row: ledger.Claimed) -> Answer:
        started = self.run_state.clock.now()
        try:
            if self.transport is None:
                self.transport = self.transports()
            out = finalise(self.run_state.template, self.recipient(row), self.sender)
            return Answer(row, started, reply=self.transport.send(out.sender, (out.recipient,), out.data))
        except Exception as exc:  # every failure is recorded; a bug must not hang the run
            return Answer(row, started, error=exc)

    def recipient(self, row: ledger.Claimed) -> Recipient:
        subscriber = subscribers.Subscriber(
            id=row.subscriber_id,
            email=row.email,
            name=row.name,
            token_secret=row.token_secret,
            status="active",
            bounces=row.bounces,
        )
        https, mailto = self.links(subscriber)
        return Recipient(row.email, row.name, https, mailto)

    def failed(self, exc: Exception) -> None:
        """The database failed under us: stop everyone, say why."""
        log.error("sender thread failed", exc_info=exc)
        with self.run_state.lock:
            if self.run_state.abort is None:
                self.run_state.abort = DeliveryError(f"sending failed: {exc}")

    def step(self, answer: Answer | None) -> tuple[ledger.Claimed | None, float | None]:
        """Record `answer` and claim the next row in one commit. Returns (row, None), or
        (None, seconds to sleep before trying again), or (None, None) when this worker is done."""
        shared, conn = self.run_state, self.conn
        with shared.lock:
            if not shared.stopping and shared.should_stop is not None and shared.should_stop():
                shared.stopping = True  # checked before each claim, not only by the waiting caller
            now = shared.clock.now()
            stamp = ledger.stamp(now)
            row: ledger.Claimed | None = None
            skipped = 0
            wait: float | None = None
            recorded = answer is not None
            inactive: tuple[ledger.Claimed, str] | None = None
            if (
                (answer is None or (answer.error is None and not answer.row.bounces))
                and shared.abort is None
                and not shared.stopping
                and not shared.interval
                and now >= shared.paused_until
            ):
                # The common case, a message accepted and the next one due, in one statement.
                sent = answer.row.subscriber_id if answer is not None else 0
                row, status = ledger.sent_and_claim(
                    conn, shared.digest_id, sent, answer.reply if answer is not None else "", stamp
                )
                if answer is not None:
                    shared.state.sent += 1
                    shared.unreachable = 0
                    answer = None
                if row is not None and status == "active":
                    if shared.progress is not None and recorded:
                        shared.progress(shared.state)
                    return row, None
                inactive = (row, status) if row is not None else None
                row = None
            with joined(conn):
                if inactive is not None:
                    # Unsubscribed or bounced since the digest was prepared: nothing was sent.
                    reply = f"subscriber is {inactive[1]}"
                    ledger.finish(
                        conn,
                        shared.digest_id,
                        inactive[0].subscriber_id,
                        "skipped",
                        reply,
                        stamp,
                        counted=False,
                    )
                    skipped += 1
                if answer is not None:
                    self._record(conn, answer, now, stamp)
                slot_wait = shared.next_slot - time.monotonic() if shared.interval else 0.0
                if shared.stopping or shared.abort is not None:
                    wait = None
                elif now < shared.paused_until or slot_wait > 0:
                    pause = max((shared.paused_until - now).total_seconds(), slot_wait)
                    wait = min(max(pause, 0.001), _POLL)
                else:
                    row, more = ledger.claim(conn, shared.digest_id, stamp)
                    skipped += more
                    if row is not None and shared.interval:
                        shared.next_slot = max(shared.next_slot, time.monotonic()) + shared.interval
                    elif row is None:
                        due = ledger.next_retry(conn, shared.digest_id)
                        if due is not None:
                            wait = min(max((due - now).total_seconds(), 0.001), _POLL)
                            self._announce_retry(conn, now, due)
            shared.state.skipped += skipped
            if shared.progress is not None and (recorded or skipped):
                shared.progress(shared.state)
        return row, wait

    def _pause(self, error: ConnectionFailure, now: datetime) -> None:
        """The server could not be reached: every worker waits, longer at each round in a row,
        and the run stops after `max_attempts` rounds."""
        shared, settings = self.run_state, self.run_state.settings
        shared.unreachable += 1
        if shared.unreachable >= settings.max_attempts:
            shared.abort = shared.abort or error
            return
        seconds = settings.retry_backoff * 2 ** (shared.unreachable - 1)
        shared.paused_until = now + timedelta(seconds=seconds)
        log.warning(
            "%s; waiting %.1f s, until %s, before trying again (round %d of %d)",
            error,
            seconds,
            shared.paused_until.isoformat(timespec="seconds"),
            shared.unreachable,
            settings.max_attempts,
        )

    def _announce_retry(self, conn: sqlite3.Connection, now: datetime, due: datetime) -> None:
        """Log a wait for deferred messages once, when it is longer than `_ANNOUNCE`."""
        shared = self.run_state
        if (due - now).total_seconds() <= _ANNOUNCE or shared.announced == due:
            return
        shared.announced = due
        log.info(
            "digest %s: waiting until %s to retry %d message(s) the server deferred",
            shared.digest_id,
            due.isoformat(timespec="seconds"),
            ledger.counts(conn, shared.digest_id)["pending"],
        )

    def _record(self, conn: sqlite3.Connection, answer: Answer, now: datetime, stamp: ledger.Stamp) -> None:
        """Commit one answer into the ledger (inside the transaction, under the lock)."""
        shared, settings = self.run_state, self.run_state.settings
        row, error, digest_id, state = answer.row, answer.error, shared.digest_id, shared.state
        sid = row.subscriber_id
        if error is None:
            ledger.finish(conn, digest_id, sid, "sent", answer.reply, stamp)
            if row.bounces:
                subscribers.reset_failures(conn, sid, now)
            state.sent += 1
            shared.unreachable = 0
        elif isinstance(error, PermanentFailure) and error.scope == "session":
            ledger.defer(conn, digest_id, sid, str(error), stamp, now, counted=False)
            shared.abort = shared.abort or error
        elif isinstance(error, ConnectionFailure):
            # Nothing left this machine: the row goes back to pending, due at once, uncounted.
            ledger.defer(conn, digest_id, sid, error.reply, stamp, now, counted=False)
            shared.retries += 1
            if answer.started >= shared.paused_until:  # else one more failure of the last round
                self._pause(error, now)
        elif isinstance(error, PermanentFailure):
            ledger.finish(conn, digest_id, sid, "failed", f"{error.code} {error.reply}", stamp)
            state.failed += 1
            shared.unreachable = 0
            if error.recipient and subscribers.record_permanent_failure(
                conn, sid, now, settings.bounce_after
            ):
                state.bounced += 1
                log.warning("%s bounced after %d permanent failures", row.email, settings.bounce_after)
        elif isinstance(error, TemporaryFailure):
            shared.unreachable = 0
            reply = f"{error.code} {error.reply}" if error.code else error.reply
            if row.attempts + 1 >= settings.max_attempts:
                reply = f"gave up after {row.attempts + 1} attempts: {reply}"
                ledger.finish(conn, digest_id, sid, "failed", reply, stamp)
                state.failed += 1
            else:
                retry_at = now + timedelta(seconds=settings.retry_backoff * 2**row.attempts)
                ledger.defer(conn, digest_id, sid, reply, stamp, retry_at)
                state.deferred += 1
                shared.retries += 1
        elif isinstance(error, DeliveryError):  # InvalidRecipient and the like: never retried
            ledger.finish(conn, digest_id, sid, "failed", str(error), stamp, counted=False)
            state.failed += 1
        else:
            # A bug in rendering or in a transport: keep the row, stop the run, say what happened.
            log.error("sending to %s failed unexpectedly", row.email, exc_info=error)
            ledger.defer(conn, digest_id, sid, f"internal error: {error!r}", stamp, now, counted=False)
            shared.abort = shared.abort or DeliveryError(f"internal error while sending: {error!r}")


def deliver(
    conn: sqlite3.Connection,
    database: Path,
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
    """Send every pending row of `digest_id` (enqueued beforehand) and record each outcome.

    `conn` is the caller's connection to `database`; the workers share one more."""
    recovered = ledger.recover(conn, digest_id, clock.now())
    if recovered:
        log.warning(
            "resuming digest %s: %d message(s) were in flight when the last run stopped; "
            "sending them again (they may arrive twice)",
            digest_id,
            recovered,
        )
    before = ledger.counts(conn, digest_id)
    state = Progress(digest_id, total=sum(before.values()), sent=before["sent"], failed=before["failed"])
    state.skipped = before["skipped"]
    shared = _Run(digest_id, template, settings, clock, state, progress, should_stop)
    worker_conn = _shared_connection(database)
    pool = [_Worker(shared, worker_conn, transports, links, sender) for _ in range(max(1, workers))]
    try:
        for worker in pool:
            worker.start()
        for worker in pool:
            while worker.is_alive():
                worker.join(_POLL)
                if should_stop is not None and not shared.stopping and should_stop():
                    shared.stopping = True  # while every worker sleeps (paused, rate limit)
    except BaseException:
        # Ctrl-C without our handler: let the threads finish their message (on their connection,
        # left open for them).
        shared.stopping = True
        raise
    worker_conn.close()
    after = ledger.counts(conn, digest_id)
    result = Result(
        digest_id,
        sent=after["sent"] - before["sent"],
        failed=after["failed"] - before["failed"],
        skipped=after["skipped"] - before["skipped"],
        bounced=state.bounced,
        retries=shared.retries,
        pending=after["pending"] + after["sending"],
    )
    result.stopped = result.pending > 0 and shared.abort is None
    if shared.abort is not None:
        raise DeliveryError(
            f"digest {digest_id}: stopped sending: {shared.abort}; {result.pending} message(s) left "
            f"pending ({result.sent} sent in this run)",
            hint="fix the mail server or settings, then run `publisher digest --send` again",
        ) from shared.abort
    return result
