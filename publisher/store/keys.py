"""The site secret's record in the state database: a site that has signed links refuses to make a
new secret in place of a lost one.

publisher/tokens.py holds the secret (from the environment, else `state/secret.key`, made on first
use). Every unsubscribe and confirmation link already mailed is signed with it, so a secret.key that
is gone must never be quietly replaced: that voids every one of those links. The database keeps a
fingerprint of the secret in use (meta `tokens.secret`; "" once the operator asked for a new one);
a database from before that record has signed links once its send ledger holds a message.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3

from publisher import tokens
from publisher.config import Settings
from publisher.errors import StateError
from publisher.store import db

log = logging.getLogger("publisher.store")

NEW_SECRET_FLAG = "--new-secret-key"  # noqa: S105 - an option, not a password
_META = "tokens.secret"


def _fingerprint(secret: bytes) -> str:
    # Names the secret without giving it away: the database may be copied where the key is not.
    return hashlib.sha256(b"publisher-secret-fingerprint|" + secret).hexdigest()[:32]


def _signed_before(conn: sqlite3.Connection, recorded: str | None) -> bool:
    if recorded is not None:
        return recorded != ""
    return conn.execute("SELECT 1 FROM ledger LIMIT 1").fetchone() is not None


def require(settings: Settings, conn: sqlite3.Connection) -> bytes:
    """The site secret (tokens.site_secret), recorded in the database; StateError instead of a new
    secret.key when this site has signed links with a secret that is now gone."""
    path = settings.state_dir / tokens.SECRET_FILE
    recorded = db.get_meta(conn, _META)
    if settings.secret is None and not path.exists() and _signed_before(conn, recorded):
        raise StateError(
            f"{path}: the token secret is missing, but this site has signed links with one (every "
            "unsubscribe and confirmation link already mailed needs it); refusing to make a new one",
            hint=f"restore it from a backup, or set {settings.serve.secret_env} to the secret it held; "
            f"run with {NEW_SECRET_FLAG} to make a new one, which voids those links",
        )
    secret = tokens.site_secret(settings)
    mark = _fingerprint(secret)
    if recorded != mark:
        if recorded:
            log.warning("%s: not the token secret last used: links mailed before no longer work", path)
        with db.joined(conn):
            db.set_meta(conn, _META, mark)
    return secret


def require_at_start(settings: Settings) -> bytes:
    """`require` with a connection of its own: the server and the daemon before they start."""
    conn = db.connect(settings.db_path)
    try:
        with db.guarded(settings.db_path):
            return require(settings, conn)
    finally:
        conn.close()


def allow_new(settings: Settings) -> bool:
    """`--new-secret-key`: when state/secret.key is gone (and no secret is set in the environment),
    let the next use make a new one. True when something changed."""
    path = settings.state_dir / tokens.SECRET_FILE
    if settings.secret is not None or path.exists() or not settings.db_path.exists():
        return False
    conn = db.connect(settings.db_path)
    try:
        with db.guarded(settings.db_path), db.transaction(conn):
            db.set_meta(conn, _META, "")
    finally:
        conn.close()
    tokens.forget_cached()
    return True
