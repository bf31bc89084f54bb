"""The send ledger: one row per (digest, subscriber), so every subscriber gets a digest once.

A row goes pending → sending → sent | failed | skipped, each transition committed on its own:
`claim` records the intent (sending) before the message is handed to a connection, `record` the
outcome after the server answered. A process killed at any moment leaves at most the rows it had
in flight (one per connection) in `sending`; `recover` puts them back to pending for the next run,
so they are the only messages that can go out twice. A temporary failure puts the row back to
pending with a `retry_at` time; `attempts` counts the answers received.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NewType

from publisher.store.db import from_db_time, joined, to_db_time, transaction

MIGRATIONS: list[str] = [
    """
    CREATE TABLE ledger_digests (
        digest_id TEXT PRIMARY KEY,
        recipients INTEGER NOT NULL,       -- rows enqueued for it
        enqueued_at TEXT NOT NULL
    );
    CREATE TABLE ledger (
        digest_id TEXT NOT NULL REFERENCES ledger_digests (digest_id),
        subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,   -- answers received (sent, refused or deferred)
        reply TEXT NOT NULL DEFAULT '',        -- the server's last reply, or why not sent
        retry_at TEXT NOT NULL,                -- pending rows are not claimed before this
        updated_at TEXT NOT NULL,
        PRIMARY KEY (digest_id, subscriber_id)
    ) WITHOUT ROWID;
    -- Only pending rows are indexed: claiming walks them in subscriber order, and a row leaves
    -- the index for good when it is claimed.
    CREATE INDEX ledger_pending ON ledger (digest_id, subscriber_id) WHERE status = 'pending';
    """,
]

Final = Literal["sent", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row just marked `sending`, with what the message needs from the subscriber."""

    subscriber_id: int
    email: str
    name: str
    token_secret: str
    bounces: int
    attempts: int


def enqueue(conn: sqlite3.Connection, digest_id: str, subscriber_ids: Iterable[int], now: datetime) -> int:
    """Create the pending rows for a digest, once: a second call changes nothing. Returns the count."""
    stamp = to_db_time(now)
    with transaction(conn):
        row = conn.execute(
            "SELECT recipients FROM ledger_digests WHERE digest_id = ?", (digest_id,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        ids = list(subscriber_ids)
        conn.execute(
            "INSERT INTO ledger_digests (digest_id, recipients, enqueued_at) VALUES (?, ?, ?)",
            (digest_id, len(ids), stamp),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO ledger (digest_id, subscriber_id, status, retry_at, updated_at) "
            "VALUES (?, ?, 'pending', ?, ?)",
            ((digest_id, i, stamp, stamp) for i in ids),
        )
    return len(ids)


def enqueued(conn: sqlite3.Connection, digest_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM ledger_digests WHERE digest_id = ?", (digest_id,)).fetchone()
    return row is not None


def recover(conn: sqlite3.Connection, digest_id: str, now: datetime) -> int:
    """Rows left in `sending` by a process that died: back to pending (they may have been sent)."""
    with transaction(conn):
        cursor = conn.execute(
            "UPDATE ledger SET status = 'pending', retry_at = ?, updated_at = ?, "
            "reply = 'interrupted while sending; may have been delivered' "
            "WHERE digest_id = ? AND status = 'sending'",
            (to_db_time(now), to_db_time(now), digest_id),
        )
    return cursor.rowcount


Stamp = NewType("Stamp", str)


def stamp(moment: datetime) -> Stamp:
    """A moment as the ledger stores it; the sending engine formats it once per commit."""
    return Stamp(to_db_time(moment))


# The sending engine runs these once or twice per message: fixed SQL strings, so the sqlite3
# module's statement cache prepares each only once per connection.
_NEXT = (
    "SELECT l.subscriber_id, s.email, s.name, s.token_secret, s.bounces, l.attempts, s.status "
    "FROM ledger l INDEXED BY ledger_pending JOIN subscribers s ON s.id = l.subscriber_id "
    "WHERE l.digest_id = ? AND l.status = 'pending' AND l.retry_at <= ? "
    "ORDER BY l.subscriber_id LIMIT 1"
)
_SENDING = "UPDATE ledger SET status = 'sending', updated_at = ? WHERE digest_id = ? AND subscriber_id = ?"
_SKIPPED = (
    "UPDATE ledger SET status = 'skipped', reply = ?, updated_at = ? "
    "WHERE digest_id = ? AND subscriber_id = ?"
)
_FINISH = (
    "UPDATE ledger SET status = ?, reply = ?, attempts = attempts + ?, updated_at = ? "
    "WHERE digest_id = ? AND subscriber_id = ?"
)
_DEFER = (
    "UPDATE ledger SET status = 'pending', reply = ?, attempts = attempts + ?, retry_at = ?, "
    "updated_at = ? WHERE digest_id = ? AND subscriber_id = ?"
)


# The common step in one statement (its own transaction, committed when it completes): the
# previous message ?1 is sent with reply ?2 and the next due pending row is claimed, with what
# the message needs of its subscriber. One statement instead of five matters because each
# sqlite3 call lets another sending thread take the interpreter lock.
_SENT_AND_CLAIM = (
    "UPDATE ledger SET "
    "status = CASE subscriber_id WHEN ?1 THEN 'sent' ELSE 'sending' END, "
    "reply = CASE subscriber_id WHEN ?1 THEN substr(?2, 1, 1000) ELSE reply END, "
    "attempts = attempts + (subscriber_id = ?1), updated_at = ?3 "
    "WHERE digest_id = ?4 AND subscriber_id IN (?1, ("
    "SELECT subscriber_id FROM ledger INDEXED BY ledger_pending "
    "WHERE digest_id = ?4 AND status = 'pending' AND retry_at <= ?3 ORDER BY subscriber_id LIMIT 1)) "
    "RETURNING subscriber_id, attempts, "
    + ", ".join(
        f"(SELECT {column} FROM subscribers WHERE id = subscriber_id)"
        for column in ("email", "name", "token_secret", "bounces", "status")
    )
)


def sent_and_claim(
    conn: sqlite3.Connection, digest_id: str, sent: int, reply: str, now: Stamp
) -> tuple[Claimed | None, str]:
    """Record row `sent` (0: none) as sent with `reply` and mark the first due pending row
    `sending`, in one statement: its own commit, or part of the caller's open transaction.
    Returns the claimed row (None when none was due) and its subscriber's status: when that is
    not "active" the caller must mark the row skipped (`finish(..., "skipped", ...)`) before
    claiming again; nothing was sent to it."""
    claimed: Claimed | None = None
    status = ""
    rows = conn.execute(_SENT_AND_CLAIM, (sent, reply, now, digest_id)).fetchall()
    for sid, attempts, email, name, secret, bounces, state in rows:
        if sid != sent:
            claimed, status = Claimed(sid, email, name, secret, bounces, attempts), state
    return claimed, status


def claim(conn: sqlite3.Connection, digest_id: str, now: Stamp) -> tuple[Claimed | None, int]:
    """Mark the first due pending row `sending` and return it, or None when no row is due (joins
    the caller's transaction when one is open, so an outcome and the next claim share one commit).

    Rows met on the way whose subscriber is no longer active (unsubscribed or bounced since the
    digest was prepared) become `skipped` instead; the second value counts them.
    """
    skipped = 0
    with joined(conn):
        while True:
            row = conn.execute(_NEXT, (digest_id, now)).fetchone()
            if row is None:
                return None, skipped
            sid, email, name, secret, bounces, attempts, status = row
            if status == "active":
                conn.execute(_SENDING, (now, digest_id, sid))
                return Claimed(sid, email, name, secret, bounces, attempts), skipped
            conn.execute(_SKIPPED, (f"subscriber is {status}", now, digest_id, sid))
            skipped += 1


def finish(
    conn: sqlite3.Connection,
    digest_id: str,
    subscriber_id: int,
    status: Final,
    reply: str,
    now: Stamp,
    *,
    counted: bool = True,
) -> None:
    """Record a row's final outcome (call inside the caller's transaction)."""
    conn.execute(_FINISH, (status, reply[:1000], int(counted), now, digest_id, subscriber_id))


def defer(
    conn: sqlite3.Connection,
    digest_id: str,
    subscriber_id: int,
    reply: str,
    now: Stamp,
    retry_at: datetime,
    *,
    counted: bool = True,
) -> None:
    """Back to pending until `retry_at` (call inside the caller's transaction)."""
    conn.execute(_DEFER, (reply[:1000], int(counted), to_db_time(retry_at), now, digest_id, subscriber_id))


def counts(conn: sqlite3.Connection, digest_id: str) -> dict[str, int]:
    """Rows per status for a digest (every status present)."""
    found = dict.fromkeys(("pending", "sending", "sent", "failed", "skipped"), 0)
    for status, n in conn.execute(
        "SELECT status, COUNT(*) FROM ledger WHERE digest_id = ? GROUP BY status", (digest_id,)
    ):
        found[str(status)] = int(n)
    return found


def next_retry(conn: sqlite3.Connection, digest_id: str) -> datetime | None:
    """When the earliest pending row becomes due, or None when no row is pending."""
    row = conn.execute(
        "SELECT MIN(retry_at) FROM ledger WHERE digest_id = ? AND status = 'pending'", (digest_id,)
    ).fetchone()
    return None if row is None or row[0] is None else from_db_time(str(row[0]))


@dataclass(frozen=True, slots=True)
class Entry:
    subscriber_id: int
    email: str
    status: str
    attempts: int
    reply: str
    retry_at: datetime
    subscriber_status: str  # the subscriber's status now (active, unsubscribed, bounced, ...)


def entries(conn: sqlite3.Connection, digest_id: str) -> list[Entry]:
    """Every row of a digest with the subscriber's address, in subscriber order."""
    rows = conn.execute(
        "SELECT l.subscriber_id, s.email, l.status, l.attempts, l.reply, l.retry_at, s.status "
        "FROM ledger l JOIN subscribers s ON s.id = l.subscriber_id WHERE l.digest_id = ? "
        "ORDER BY l.subscriber_id",
        (digest_id,),
    )
    return [
        Entry(int(a), str(b), str(c), int(d), str(e), from_db_time(str(f)), str(g))
        for a, b, c, d, e, f, g in rows
    ]


def digest_ids(conn: sqlite3.Connection) -> list[str]:
    """Every digest that has ledger rows, the most recently enqueued first."""
    rows = conn.execute("SELECT digest_id FROM ledger_digests ORDER BY enqueued_at DESC, digest_id DESC")
    return [str(row[0]) for row in rows]
