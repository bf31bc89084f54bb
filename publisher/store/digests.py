"""Digests and the send ledger (one row per digest and subscriber)."""

from __future__ import annotations

MIGRATIONS: list[str] = []
