"""The sending engine behind publisher.delivery.engine: slots over the send ledger.

A slot is one connection's share of a run. It loops: one commit records the outcome of its
previous message and claims (marks `sending`) its next row, then it renders and sends that
message outside any lock. So the intent is always committed before a message leaves and its
outcome right after the answer, and at most one row per slot is ever `sending`. SMTP slots are
all driven by one thread over non-blocking sockets (publisher.delivery.multiplex): with a thread per
connection, the hand-offs of the interpreter lock between senders cost about a fifth of the CPU.
Other transports (the outbox, a transport lent by the caller) get a `_Worker` thread each. The
short transactions run under one lock on one SQLite connection shared by the slots: SQLite never
sees two writers, and the connection's page cache stays valid from one commit to the next.

Outcomes: accepted → sent (a run of bounces is reset). 5xx to the recipient → failed, counted
toward the subscriber's bounce threshold. 5xx to the message → failed. 4xx, a dropped connection
or a timeout → pending again after `retry_backoff * 2**(attempts-1)` seconds, failed once
`max_attempts` answers were all temporary. A server that cannot be reached at all does not burn
attempts: the row goes back to pending, dispatch pauses with the same backoff, and after
`max_attempts` such failures in a row the run stops with a DeliveryError, leaving the rest pending.
The same happens when the server refuses the session itself (login, sender). `should_stop()` is
polled by the calling thread; the workers then finish the message in hand and claim no more.
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
from publisher.delivery import mailer
from publisher.delivery.message import MessageTemplate, Recipient
from publisher.errors import DeliveryError, StateError
from publisher.store import ledger, subscribers
from publisher.store.db import joined

log = logging.getLogger("publisher.delivery")

_POLL = 0.1  # longest sleep before looking again at should_stop() or a row becoming due

LinkMaker = Callable[[subscribers.Subscriber], tuple[str, str]]
TransportFactory = Callable[[], mailer.Transport]


@dataclass
class Progress:
    """Where one digest's sending stands; handed to the progress callback after each answer
    (from a sender thread, one call at a time)."""

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


@dataclass
class Answer:
    """How one message went: the server's reply, or what went wrong."""

    row: ledger.Claimed
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
    ) -> None:
        self.lock = threading.Lock()
        self.digest_id = digest_id
        self.template = template
        self.settings = settings
        self.clock = clock
        self.state = state
        self.progress = progress
        self.retries = 0
        self.unreachable = 0  # connection failures in a row
        self.abort: DeliveryError | None = None
        self.stopping = False
        self.paused_until = clock.now()
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


class Slot:
    """One connection's share of a run: records the answer to its last message and claims its
    next row (`step`), and says whom a row's message goes to (`recipient`). Driven by a `_Worker` thread
    (blocking transports) or by publisher.delivery.multiplex (SMTP, all connections in one thread)."""

    def __init__(self, run: _Run, conn: sqlite3.Connection, links: LinkMaker, sender: str) -> None:
        self.run_state = run
        self.conn = conn
        self.links = links
        self.sender = sender

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
            with joined(conn):  # the multiplexer may batch several slots' steps in one commit
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
            shared.state.skipped += skipped
            if shared.progress is not None and (recorded or skipped):
                shared.progress(shared.state)
        return row, wait

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
        elif isinstance(error, mailer.PermanentFailure) and error.scope == "session":
            ledger.defer(conn, digest_id, sid, str(error), stamp, now, counted=False)
            shared.abort = shared.abort or error
        elif isinstance(error, mailer.ConnectionFailure):
            shared.unreachable += 1
            retry_at = now + timedelta(seconds=settings.retry_backoff * 2 ** (shared.unreachable - 1))
            ledger.defer(conn, digest_id, sid, error.reply, stamp, retry_at, counted=False)
            shared.paused_until = max(shared.paused_until, retry_at)
            shared.retries += 1
            if shared.unreachable >= settings.max_attempts:
                shared.abort = shared.abort or error
        elif isinstance(error, mailer.PermanentFailure):
            ledger.finish(conn, digest_id, sid, "failed", f"{error.code} {error.reply}", stamp)
            state.failed += 1
            shared.unreachable = 0
            if error.recipient and subscribers.record_permanent_failure(
                conn, sid, now, settings.bounce_after
            ):
                state.bounced += 1
                log.warning("%s bounced after %d permanent failures", row.email, settings.bounce_after)
        elif isinstance(error, mailer.TemporaryFailure):
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


class _Worker(Slot, threading.Thread):
    """A slot with its own thread and blocking transport (the outbox, a lent transport)."""

    def __init__(
        self, run: _Run, conn: sqlite3.Connection, transports: TransportFactory, links: LinkMaker, sender: str
    ) -> None:
        Slot.__init__(self, run, conn, links, sender)
        threading.Thread.__init__(self, daemon=True, name="publisher-sender")
        self.transports = transports
        self.transport: mailer.Transport | None = None

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
        try:
            if self.transport is None:
                self.transport = self.transports()
            message = self.run_state.template.render(self.recipient(row))
            return Answer(row, reply=self.transport.send(self.sender, (row.email,), message))
        except Exception as exc:  # every failure is recorded; a bug must not hang the run
            return Answer(row, error=exc)


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

    `conn` is the caller's connection to `database`; each worker opens its own."""
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
    shared = _Run(digest_id, template, settings, clock, state, progress)
    worker_conn = _shared_connection(database)
    first = transports()
    pool: list[threading.Thread]
    if isinstance(first, mailer.SmtpTransport):
        # Every SMTP connection in one thread: no lock or GIL hand-offs between senders.
        from publisher.delivery.multiplex import Multiplexer

        smtp = [first] + [transports() for _ in range(max(1, workers) - 1)]
        pool = [Multiplexer(shared, worker_conn, links, sender, smtp)]  # type: ignore[arg-type]
    else:
        pool = [_Worker(shared, worker_conn, transports, links, sender) for _ in range(max(1, workers))]
        pool[0].transport = first  # type: ignore[attr-defined]
    try:
        for worker in pool:
            worker.start()
        for worker in pool:
            while worker.is_alive():
                worker.join(_POLL)
                if should_stop is not None and not shared.stopping and should_stop():
                    shared.stopping = True
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
