"""What the daemon remembers in the state database (the `meta` table), and what `status` reads back.

Kept in the database rather than in the scheduler's memory so that a restart knows which digest
slot was last handled, and so that `publisher status` (another process) can say when the daemon
last did its work. Every write is its own short transaction.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from publisher.store.db import from_db_time, get_meta, set_meta, to_db_time, transaction

SLOT = "daemon.digest.slot"  # the last digest slot handled (sent, or deliberately skipped)
SLOT_OUTCOME = "daemon.digest.outcome"  # JSON: what happened to that slot, and when
SCHEDULE = "daemon.digest.schedule"  # the schedule and timezone the slot record is kept under
NEXT_SLOT = "daemon.digest.next"  # the slot the running daemon waits for
STARTED = "daemon.started"  # JSON: pid and time of the last start
STOPPED = "daemon.stopped"  # time of the last clean stop
RELOADED = "daemon.reloaded"  # time of the running daemon's last SIGHUP reload
LAST_WORK = "daemon.last_work"  # JSON: the last job run: which, when, outcome, detail


@dataclass(frozen=True)
class Work:
    """One finished job, as `status` shows it."""

    job: str
    at: datetime
    ok: bool
    detail: str


@dataclass(frozen=True)
class DaemonRecord:
    last_slot: datetime | None
    slot_outcome: str | None
    slot_outcome_at: datetime | None
    next_slot: datetime | None
    started: datetime | None
    pid: int | None
    stopped: datetime | None
    reloaded: datetime | None
    last_work: Work | None


def _time(conn: sqlite3.Connection, key: str) -> datetime | None:
    value = get_meta(conn, key)
    return from_db_time(value) if value else None


def _json(conn: sqlite3.Connection, key: str) -> dict[str, Any]:
    value = get_meta(conn, key)
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def last_slot(conn: sqlite3.Connection) -> datetime | None:
    return _time(conn, SLOT)


def load(conn: sqlite3.Connection) -> DaemonRecord:
    outcome = _json(conn, SLOT_OUTCOME)
    started = _json(conn, STARTED)
    work = _json(conn, LAST_WORK)
    return DaemonRecord(
        last_slot=last_slot(conn),
        slot_outcome=outcome.get("outcome"),
        slot_outcome_at=from_db_time(outcome["at"]) if outcome.get("at") else None,
        next_slot=_time(conn, NEXT_SLOT),
        started=from_db_time(started["at"]) if started.get("at") else None,
        pid=started.get("pid"),
        stopped=_time(conn, STOPPED),
        reloaded=_time(conn, RELOADED),
        last_work=Work(work["job"], from_db_time(work["at"]), bool(work.get("ok")), work.get("detail", ""))
        if work.get("job") and work.get("at")
        else None,
    )


def handle_slot(conn: sqlite3.Connection, slot: datetime, outcome: str, now: datetime) -> None:
    """Record that `slot` is dealt with (`outcome`: sent, skipped, …): it is never handled again."""
    with transaction(conn):
        previous = last_slot(conn)
        if previous is None or slot > previous:
            set_meta(conn, SLOT, to_db_time(slot))
            set_meta(conn, SLOT_OUTCOME, json.dumps({"outcome": outcome, "at": to_db_time(now)}))


def schedule(conn: sqlite3.Connection) -> str | None:
    """The schedule the record was kept under (None: recorded before this was kept)."""
    return get_meta(conn, SCHEDULE)


def keep_schedule(conn: sqlite3.Connection, signature: str) -> None:
    with transaction(conn):
        set_meta(conn, SCHEDULE, signature)


def plan(conn: sqlite3.Connection, next_slot: datetime | None) -> None:
    with transaction(conn):
        if next_slot is None:
            conn.execute("DELETE FROM meta WHERE key = ?", (NEXT_SLOT,))
        else:
            set_meta(conn, NEXT_SLOT, to_db_time(next_slot))


def started(conn: sqlite3.Connection, pid: int, now: datetime) -> None:
    with transaction(conn):
        set_meta(conn, STARTED, json.dumps({"pid": pid, "at": to_db_time(now)}))
        conn.execute("DELETE FROM meta WHERE key IN (?, ?)", (STOPPED, RELOADED))


def reloaded(conn: sqlite3.Connection, now: datetime) -> None:
    """A SIGHUP reload: the daemon started earlier (`started` stays) and keeps running."""
    with transaction(conn):
        set_meta(conn, RELOADED, to_db_time(now))


def stopped(conn: sqlite3.Connection, now: datetime) -> None:
    with transaction(conn):
        set_meta(conn, STOPPED, to_db_time(now))
        conn.execute("DELETE FROM meta WHERE key = ?", (NEXT_SLOT,))


def worked(conn: sqlite3.Connection, job: str, now: datetime, ok: bool, detail: str) -> None:
    with transaction(conn):
        set_meta(conn, LAST_WORK, json.dumps({"job": job, "at": to_db_time(now), "ok": ok, "detail": detail}))
