"""The SQLite database in the state folder: opening it, and its versioned schema.

The schema is made of components (articles, subscribers, digests, …), each owned by one module of
this package that declares `MIGRATIONS: list[str]`, applied in order. The version each component has
reached is kept in the `schema_versions` table, so a later release appends a migration and the next
open applies it; a database written by a newer release is refused rather than misread.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from publisher.errors import PublisherError, StateError

# Components in the order their tables are created. Each names a module of this package.
COMPONENTS: tuple[str, ...] = ("articles", "subscribers", "digests", "ledger", "archives", "cache", "inbound")

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


# A component's name is stored in existing databases' `schema` table, so it outlives module renames.
_MODULES = {"archives": "feed_archives"}


def migrations(component: str) -> list[str]:
    module = importlib.import_module(f"publisher.store.{_MODULES.get(component, component)}")
    found: list[str] = module.MIGRATIONS
    return found


# Left beside the database once it exists: a state folder that has held a database and lost it is
# an error (the database held the subscribers and the send ledger), never a reason to start afresh.
MARKER_SUFFIX = ".exists"
RECREATE_FLAG = "--recreate-database"
_MARKER_TEXT = (
    "publisher keeps its state database {name} in this folder: subscribers, the send ledger, the "
    "identities of published articles. While this file is here and {name} is not, publisher refuses "
    "to start: restore {name} from a backup, or run publisher once with " + RECREATE_FLAG + " to "
    "start over with no subscribers and no history.\n"
)


def marker_path(path: Path) -> Path:
    return path.with_name(path.name + MARKER_SUFFIX)


def refuse_lost(path: Path) -> None:
    """StateError when the database at `path` is an empty file, or gone from a folder that had one.
    `connect` calls it; so does every command that uses the state, before it starts."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError as exc:
        raise StateError(f"{path}: cannot open the state database: {exc.strerror or exc}") from exc
    if size == 0:
        raise StateError(
            f"{path}: the state database is an empty file (0 bytes); refusing to create a new one over it",
            hint=f"restore it from a backup, or run with {RECREATE_FLAG} to start over with no subscribers",
        )
    if size is None and marker_path(path).exists():
        raise StateError(
            f"{path}: the state database is missing, but this state folder held one "
            f"({marker_path(path).name} is there)",
            hint=f"restore it from a backup, or run with {RECREATE_FLAG} to start over with no subscribers",
        )


def forget_lost(path: Path) -> bool:
    """`--recreate-database`: when the database at `path` is missing or empty, remove its marker
    (and the empty file: it holds nothing) so that the next open creates a new one. An existing
    database with data is left alone. True when something was cleared."""
    try:
        size: int | None = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return False
    if size == 0:
        path.unlink()
    marker = marker_path(path)
    had_marker = marker.exists()
    marker.unlink(missing_ok=True)
    return had_marker or size == 0


def _leave_marker(path: Path) -> None:
    marker = marker_path(path)
    if marker.exists():
        return
    from publisher.output import write_atomic

    write_atomic(marker, _MARKER_TEXT.format(name=path.name).encode("utf-8"))


def describe(path: Path, exc: sqlite3.Error) -> StateError:
    """One line for any SQLite failure: the database file and the cause."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    hint = None
    if "full" in cause:
        hint = f"free space on the file system holding {path.parent}; nothing was recorded"
    elif "locked" in cause or "busy" in cause:
        hint = "another process holds the database; try again"
    elif "readonly" in cause or "read-only" in cause:  # permissions, not damage: nothing is lost
        hint = f"this user may not write {path.name} or its folder: check their owner and permissions"
    return StateError(f"{path}: {cause}", hint=hint)


@contextmanager
def guarded(path: Path) -> Iterator[None]:
    """Turn any SQLite error raised inside into `describe`'s StateError."""
    try:
        yield
    except sqlite3.Error as exc:
        raise describe(path, exc) from exc


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating when allowed) the database at `path` and bring its schema up to date.

    Never creates a database over an empty file, nor in a state folder that held one and lost it
    (see `MARKER_SUFFIX`): those are errors naming the file, until the operator says otherwise.
    """
    refuse_lost(path)
    try:
        if readonly:
            if not path.exists():
                raise StateError(f"{path}: no state database yet (run `publisher build` first)")
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            # WAL survives a killed process without losing committed transactions, and lets
            # `publisher status` read while the daemon writes.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            migrate(conn)
    except sqlite3.DatabaseError as exc:
        if "full" in str(exc) or "disk" in str(exc):
            raise describe(path, exc) from exc
        raise StateError(f"{path}: not a usable publisher database: {exc}") from exc
    except OSError as exc:
        raise StateError(f"{path}: cannot open the state database: {exc.strerror or exc}") from exc
    if not readonly:
        try:
            _leave_marker(path)
        except PublisherError:
            conn.close()
            raise
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Apply every migration a component has not had yet, each in its own transaction."""
    conn.executescript(_BOOTSTRAP)
    for component in COMPONENTS:
        steps = migrations(component)
        row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
        current = row[0] if row else 0
        if current > len(steps):
            raise StateError(
                f"state database has {component} schema version {current}, newer than this release "
                f"knows ({len(steps)})",
                hint="upgrade publisher or point paths.state at another folder",
            )
        for version, script in enumerate(steps[current:], start=current + 1):
            with transaction(conn):
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?) "
                    "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (component, version),
                )


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction; split on complete statements instead.
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer
            buffer = ""
    if buffer.strip():
        yield buffer


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        # SQLite may have rolled back already (a full disk does): then ROLLBACK itself would fail
        # ("no transaction is active") and hide the real cause.
        if conn.in_transaction:
            with suppress(sqlite3.Error):  # the original exception says what went wrong
                conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


@contextmanager
def joined(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Join the caller's transaction when one is open, else run in a transaction of our own."""
    if conn.in_transaction:
        yield conn
    else:
        with transaction(conn):
            yield conn


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def to_db_time(moment: datetime) -> str:
    """Datetimes are stored as UTC ISO 8601 strings, which sort as text."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_db_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
