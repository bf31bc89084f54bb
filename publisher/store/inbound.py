"""What `publisher inbound` did with each message it handled, so a second pass does nothing twice.

`inbound_handled` has one row per handled message (keyed by the SHA-256 of its bytes): what it
was and whom it concerned. `inbound_bounces` holds one row per (subscriber, digest) with a
permanent failure reported, so two reports of one failure (a DSN delivered twice, or by two
relays) count once toward `delivery.bounce_after`.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from publisher.store.db import joined, to_db_time

MIGRATIONS: list[str] = [
    """
    CREATE TABLE inbound_handled (
        key TEXT PRIMARY KEY,            -- sha256 of the message's bytes
        kind TEXT NOT NULL,              -- unsubscribe | bounce | delay | complaint
        subscriber_id INTEGER,
        digest_id TEXT,
        detail TEXT NOT NULL,
        handled_at TEXT NOT NULL
    );
    CREATE TABLE inbound_bounces (
        subscriber_id INTEGER NOT NULL,
        digest_id TEXT NOT NULL,
        reported_at TEXT NOT NULL,
        PRIMARY KEY (subscriber_id, digest_id)
    ) WITHOUT ROWID;
    """,
]


def handled(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM inbound_handled WHERE key = ?", (key,)).fetchone() is not None


def record(
    conn: sqlite3.Connection,
    key: str,
    kind: str,
    subscriber_id: int | None,
    digest_id: str | None,
    detail: str,
    now: datetime,
) -> None:
    with joined(conn):
        conn.execute(
            "INSERT OR IGNORE INTO inbound_handled (key, kind, subscriber_id, digest_id, detail, handled_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (key, kind, subscriber_id, digest_id, detail, to_db_time(now)),
        )


def first_bounce(conn: sqlite3.Connection, subscriber_id: int, digest_id: str, now: datetime) -> bool:
    """Note a permanent failure of `digest_id` to the subscriber; False when already noted."""
    with joined(conn):
        cursor = conn.execute(
            "INSERT OR IGNORE INTO inbound_bounces (subscriber_id, digest_id, reported_at) VALUES (?, ?, ?)",
            (subscriber_id, digest_id, to_db_time(now)),
        )
    return cursor.rowcount > 0


def failed_digests(conn: sqlite3.Connection, subscriber_id: int) -> int:
    """How many digests a permanent failure was reported for, for this subscriber."""
    (count,) = conn.execute(
        "SELECT count(*) FROM inbound_bounces WHERE subscriber_id = ?", (subscriber_id,)
    ).fetchone()
    return int(count)
