"""Subscribers: address, name, status and the per-subscriber token secret.

Addresses arrive here already normalised (publisher.subscriptions does that at the door). Functions
that change rows join the caller's transaction when one is open, else run in their own, so the
delivery code can record a bounce in the same transaction as its ledger row.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from publisher.store.db import from_db_time, joined, to_db_time

MIGRATIONS: list[str] = [
    """
    CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,         -- normalised: domain lowercased, NFC
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
        token_secret TEXT NOT NULL,         -- per-subscriber; rotating it voids old links
        bounces INTEGER NOT NULL DEFAULT 0, -- permanent failures in a row
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX subscribers_status ON subscribers (status);
    """,
]

Status = Literal["pending", "active", "unsubscribed", "bounced"]
STATUSES: tuple[Status, ...] = ("pending", "active", "unsubscribed", "bounced")

_INSERT = (
    "INSERT INTO subscribers (email, name, status, token_secret, bounces, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, 0, ?, ?)"
)
_COLUMNS = "id, email, name, status, token_secret, bounces, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str
    token_secret: str
    status: Status
    bounces: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _row(row: sqlite3.Row | tuple[object, ...]) -> Subscriber:
    ident, email, name, status, token_secret, bounces, created, updated = tuple(row)
    return Subscriber(
        id=int(str(ident)),
        email=str(email),
        name=str(name),
        token_secret=str(token_secret),
        status=str(status),  # type: ignore[arg-type]  # the CHECK constraint keeps it a Status
        bounces=int(str(bounces)),
        created_at=from_db_time(str(created)),
        updated_at=from_db_time(str(updated)),
    )


def new_token_secret() -> str:
    return secrets.token_urlsafe(24)


def get(conn: sqlite3.Connection, subscriber_id: int) -> Subscriber | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return None if row is None else _row(row)


def by_email(conn: sqlite3.Connection, email: str) -> Subscriber | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE email = ?", (email,)).fetchone()
    return None if row is None else _row(row)


def all_subscribers(conn: sqlite3.Connection) -> list[Subscriber]:
    """Everyone, by address."""
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM subscribers ORDER BY email")]


def active(conn: sqlite3.Connection) -> list[Subscriber]:
    """The subscribers a digest goes to, in id order (stable across a resumed send)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM subscribers WHERE status = 'active' ORDER BY id")
    return [_row(r) for r in rows]


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Subscribers per status (every status present, zero when none)."""
    found: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for status, n in conn.execute("SELECT status, COUNT(*) FROM subscribers GROUP BY status"):
        found[str(status)] = int(n)
    return found


def token_secret(conn: sqlite3.Connection, subscriber_id: int) -> str | None:
    """For `tokens.verify(..., lookup=lambda i: token_secret(conn, i))`."""
    row = conn.execute("SELECT token_secret FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return None if row is None else str(row[0])


def add(
    conn: sqlite3.Connection, email: str, name: str, now: datetime, *, status: Status = "active"
) -> tuple[Subscriber, str]:
    """Subscribe `email` (already normalised). Returns the row and what happened:

    "added" (new), "reactivated" (was unsubscribed, bounced or pending; bounces reset),
    or "unchanged" (already in that status; a given non-empty name replaces the old one).
    """
    stamp = to_db_time(now)
    with joined(conn):
        known = by_email(conn, email)
        if known is None:
            conn.execute(
                _INSERT,
                (email, name, status, new_token_secret(), stamp, stamp),
            )
            outcome = "added"
        elif known.status != status:
            conn.execute(
                "UPDATE subscribers SET status = ?, bounces = 0, name = ?, updated_at = ? WHERE id = ?",
                (status, name or known.name, stamp, known.id),
            )
            outcome = "reactivated"
        else:
            if name and name != known.name:
                conn.execute(
                    "UPDATE subscribers SET name = ?, updated_at = ? WHERE id = ?", (name, stamp, known.id)
                )
            outcome = "unchanged"
        found = by_email(conn, email)
    assert found is not None
    return found, outcome


def add_many(
    conn: sqlite3.Connection, rows: Iterable[tuple[str, str, Status]], now: datetime
) -> tuple[int, int, int, int]:
    """Import (email, name, status) rows in one transaction. An existing address only ever moves
    out: the file's unsubscribed or bounced is applied to an active or pending one, and nothing
    else changes, so an import never re-subscribes anyone. Returns (added, added with a status
    other than active, existing, existing the file moved out)."""
    stamp = to_db_time(now)
    added = kept_out = existing = moved_out = 0
    with joined(conn):
        for email, name, status in rows:
            cursor = conn.execute(
                _INSERT + " ON CONFLICT (email) DO NOTHING",
                (email, name, status, new_token_secret(), stamp, stamp),
            )
            if cursor.rowcount:
                added += 1
                kept_out += status != "active"
                continue
            existing += 1
            if status in ("unsubscribed", "bounced"):
                moved = conn.execute(
                    "UPDATE subscribers SET status = ?, updated_at = ? "
                    "WHERE email = ? AND status IN ('active', 'pending')",
                    (status, stamp, email),
                )
                moved_out += moved.rowcount
    return added, kept_out, existing, moved_out


def set_status(conn: sqlite3.Connection, subscriber_id: int, status: Status, now: datetime) -> bool:
    """Change one subscriber's status; False when there is no such subscriber."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    with joined(conn):
        cursor = conn.execute(
            "UPDATE subscribers SET status = ?, updated_at = ? WHERE id = ?",
            (status, to_db_time(now), subscriber_id),
        )
    return cursor.rowcount > 0


def delete(conn: sqlite3.Connection, subscriber_id: int) -> int:
    """Erase one subscriber and, through the foreign key, their send-ledger rows; returns how
    many ledger rows went with them."""
    with joined(conn):
        (rows,) = conn.execute(
            "SELECT count(*) FROM ledger WHERE subscriber_id = ?", (subscriber_id,)
        ).fetchone()
        conn.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,))
    return int(rows)


def record_permanent_failure(
    conn: sqlite3.Connection, subscriber_id: int, now: datetime, threshold: int
) -> bool:
    """Count one permanent (5xx) failure in a row; at `threshold` the subscriber becomes bounced.

    Returns True when the subscriber is bounced after this call.
    """
    stamp = to_db_time(now)
    with joined(conn):
        conn.execute(
            "UPDATE subscribers SET bounces = bounces + 1, updated_at = ? WHERE id = ?",
            (stamp, subscriber_id),
        )
        conn.execute(
            "UPDATE subscribers SET status = 'bounced' WHERE id = ? AND bounces >= ? AND status = 'active'",
            (subscriber_id, threshold),
        )
        row = conn.execute("SELECT status FROM subscribers WHERE id = ?", (subscriber_id,)).fetchone()
    return row is not None and row[0] == "bounced"


def reset_failures(conn: sqlite3.Connection, subscriber_id: int, now: datetime) -> None:
    """A message was accepted: the run of permanent failures is over."""
    with joined(conn):
        conn.execute(
            "UPDATE subscribers SET bounces = 0, updated_at = ? WHERE id = ? AND bounces != 0",
            (to_db_time(now), subscriber_id),
        )
