"""What publisher keeps only for a while, pruned: messages in the outbox Maildir and digest previews.

Both grow with every send or preview (the outbox holds one file per message: about 40 KB each, so
3,000 subscribers add 120 MB a week) and nothing reads them after the fact but a person checking
what went out. Files older than `delivery.outbox_keep_days` (by their modification time, against the
`now` passed in) are removed; 0 keeps everything. The ledger in the database is never pruned: it is
the record of who got what.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from publisher.config import Settings
from publisher.errors import StateError

log = logging.getLogger("publisher.housekeeping")

OUTBOX = "outbox"
PREVIEW = "preview"
# Maildir's folders; tmp/ holds only messages being written, which a crash may leave behind.
_MAILDIR = ("new", "cur", "tmp")


@dataclass
class Pruned:
    files: int = 0
    bytes: int = 0


def folders(settings: Settings) -> list[Path]:
    """The folders whose old files are pruned."""
    outbox = settings.state_dir / OUTBOX
    return [*(outbox / sub for sub in _MAILDIR), settings.state_dir / PREVIEW]


def prune(settings: Settings, now: datetime) -> Pruned:
    """Remove outbox messages and previews older than `delivery.outbox_keep_days`."""
    pruned = Pruned()
    days = settings.delivery.outbox_keep_days
    if days == 0:
        return pruned
    cutoff = (now - timedelta(days=days)).timestamp()
    for folder in folders(settings):
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StateError(f"{folder}: cannot be read for pruning: {exc.strerror or exc}") from exc
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if not entry.is_file(follow_symlinks=False) or info.st_mtime >= cutoff:
                    continue
                Path(entry.path).unlink()
            except FileNotFoundError:
                continue  # gone already: a mail reader moved it
            except OSError as exc:
                raise StateError(f"{entry.path}: cannot be removed: {exc.strerror or exc}") from exc
            pruned.files += 1
            pruned.bytes += info.st_size
    if pruned.files:
        log.info(
            "removed %d file(s), %.1f MB, older than %d day%s, from %s",
            pruned.files,
            pruned.bytes / 1e6,
            days,
            "" if days == 1 else "s",
            settings.state_dir,
        )
    return pruned
