"""Subscriber management over the store: add, remove, delete, and CSV import/export.

Addresses and names pass through the rules of publisher.addresses.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from publisher.addresses import clean_name, normalise_address
from publisher.errors import SubscriberError
from publisher.store import subscribers as store
from publisher.store.subscribers import Subscriber


@dataclass
class ImportReport:
    """Every data row is one of: added, already present, a repeat of an earlier row, or bad."""

    added: int = 0  # of which `kept_out` were added unsubscribed, bounced or pending (never mailed)
    kept_out: int = 0
    existing: int = 0  # of which `moved_out` were active or pending, and the file moved them out
    moved_out: int = 0
    duplicates: int = 0  # rows repeating an address given earlier in the same file
    problems: list[str] = field(default_factory=list)

    @property
    def bad(self) -> int:
        return len(self.problems)


@dataclass
class ParsedCsv:
    rows: list[tuple[str, str, store.Status]]  # (email, name, status), first occurrence of each address
    problems: list[str]  # one line per bad row: `FILE: line N: …`
    duplicates: int  # rows repeating an earlier row's address


def parse_csv(data: str, origin: str) -> ParsedCsv:
    """Every row of a subscriber CSV, accounted for.

    The header row must have an `email` column and may have `name`; other columns are ignored
    (exports of other tools have them). Blank rows are skipped; a repeat of an address counts as a
    duplicate. A file the parser cannot read to its end (an unclosed quote, which would swallow
    the rows after it) is a SubscriberError naming the line, and nothing is imported; so is a value
    running over several lines that hold what look like rows (an address, a comma).
    """
    reader = csv.reader(io.StringIO(data, newline=""), strict=True)
    problems: list[str] = []
    try:
        header = next(reader)
    except StopIteration:
        raise SubscriberError(f"{origin}: empty file; expected a header row with an email column") from None
    except csv.Error as exc:
        raise SubscriberError(f"{origin}: line 1: {exc}") from exc
    columns = [h.strip().lower() for h in header]
    if "email" not in columns:
        raise SubscriberError(f"{origin}: line 1: the header row has no email column")
    email_at = columns.index("email")
    name_at = columns.index("name") if "name" in columns else None
    status_at = columns.index("status") if "status" in columns else None
    rows: dict[str, tuple[str, store.Status]] = {}
    duplicates = 0
    line = reader.line_num
    while True:
        start = line + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            too_long = "field larger than field limit" in str(exc)  # the csv module's 128 KiB cap
            raise SubscriberError(
                f"{origin}: line {start}: "
                + ("a value longer than 131,072 characters" if too_long else str(exc))
                + "; the file cannot be read to its end, nothing was imported",
                hint="no address or name is that long: look for an unclosed quote or a stray value "
                "on that line"
                if too_long
                else "an unclosed quote swallows the rows after it: fix that line",
            ) from exc
        line = reader.line_num
        if line > start and _swallowed_rows(record):
            raise SubscriberError(
                f"{origin}: line {start}: a quoted value runs on to line {line} over what look like "
                "rows; nothing was imported",
                hint="an unclosed quote swallows the rows after it: fix that line",
            )
        if not any(cell.strip() for cell in record):
            continue
        if email_at >= len(record):
            problems.append(f"{origin}: line {start}: no email value")
            continue
        try:
            email = normalise_address(record[email_at])
            name = _csv_unsafe(
                clean_name(record[name_at] if name_at is not None and name_at < len(record) else "")
            )
            status = _status(record[status_at] if status_at is not None and status_at < len(record) else "")
        except SubscriberError as exc:
            problems.append(f"{origin}: line {start}: {exc.message}")
            continue
        if email in rows:
            duplicates += 1
            continue
        rows[email] = (name, status)
    return ParsedCsv([(email, name, status) for email, (name, status) in rows.items()], problems, duplicates)


def _status(value: str) -> store.Status:
    """A status column (as `export` writes it): an address that unsubscribed, bounced or never
    confirmed is imported as such, so moving a list never mails someone who opted out."""
    status = value.strip().lower() or "active"
    if status not in store.STATUSES:
        raise SubscriberError(f"status: {value.strip()!r} is not one of {', '.join(store.STATUSES)}")
    return status


def _swallowed_rows(record: list[str]) -> bool:
    """A value running over lines whose later lines look like rows (a name may span lines)."""
    return any(("@" in part or "," in part) for cell in record for part in cell.split("\n")[1:])


def import_csv(conn: sqlite3.Connection, data: bytes, origin: str, now: datetime) -> ImportReport:
    """Import every good row (idempotent: known addresses are left untouched) and report the bad."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SubscriberError(f"{origin}: not UTF-8 (byte offset {exc.start})") from exc
    parsed = parse_csv(text, origin)
    added, kept_out, existing, moved_out = store.add_many(conn, parsed.rows, now)
    return ImportReport(
        added=added,
        kept_out=kept_out,
        existing=existing,
        moved_out=moved_out,
        duplicates=parsed.duplicates,
        problems=parsed.problems,
    )


def export_csv(subscribers: Iterable[Subscriber]) -> str:
    """CSV with a header row `email,name,status`; import reads it back (status is ignored there)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "name", "status"])
    for sub in subscribers:
        writer.writerow([sub.email, _csv_safe(sub.name), sub.status])
    return out.getvalue()


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ is run as a formula by spreadsheets (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _csv_unsafe(value: str) -> str:
    # Undo _csv_safe, so that export then import gives back the same names.
    return value[1:] if value[:1] == "'" and value[1:2] and value[1:2] in "=+-@" else value


def add(conn: sqlite3.Connection, address: str, name: str | None, now: datetime) -> tuple[Subscriber, str]:
    """Subscribe one address as active (an explicit add re-activates an unsubscribed address)."""
    return store.add(conn, normalise_address(address), clean_name(name), now)


def remove(conn: sqlite3.Connection, address: str, now: datetime) -> Subscriber:
    """Mark an address unsubscribed. The row is kept so that a later import cannot re-add it."""
    email = normalise_address(address)
    known = store.by_email(conn, email)
    if known is None:
        raise SubscriberError(f"{email}: not a subscriber")
    store.set_status(conn, known.id, "unsubscribed", now)
    found = store.get(conn, known.id)
    assert found is not None
    return found


def delete(conn: sqlite3.Connection, address: str) -> tuple[str, int]:
    """Erase an address and its send records (a person's request to be forgotten): unlike
    `remove`, nothing is kept, so a later import or subscription can add it again. Returns the
    address and how many send records went."""
    email = normalise_address(address)
    known = store.by_email(conn, email)
    if known is None:
        raise SubscriberError(f"{email}: not a subscriber")
    return email, store.delete(conn, known.id)
