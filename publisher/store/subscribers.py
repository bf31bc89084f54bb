"""Subscribers: address, name, status and the per-subscriber token secret."""

from __future__ import annotations

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
